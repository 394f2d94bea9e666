import DropsModel
import DropsTestSupport
import Foundation
import Testing

/// The hosts file's power and console entries: what drops-run needs to drive a lab PC.
@Suite struct HostPowerTests {
    let header = "[[host]]\nmac = \"52:54:00:12:34:56\"\nprofile = \"selftest\"\n"

    @Test func readsEachKindOfPowerAndConsole() throws {
        let text = """
            [[host]]
            mac = "52:54:00:12:34:01"
            profile = "selftest"
            firmware = "uefi"
            power = { ipmi = { host = "10.0.0.50", user = "admin", password_file = "pc1.ipmi", port = 9001, cipher_suite = 17 }, deadline = 20 }
            console = "ipmi-sol"

            [[host]]
            mac = "52:54:00:12:34:02"
            profile = "selftest"
            power = { wol = { broadcast = "10.0.0.255" } }
            console = { url = "/dev/ttyUSB0", baud = 57600 }

            [[host]]
            mac = "52:54:00:12:34:03"
            profile = "selftest"
            power = { on = ["pdu", "on", "3"], off = ["pdu", "off", "3"], status = ["pdu", "status", "3"] }
            console = "tcp://127.0.0.1:7003"
            """
        let table = try HostTable.decode(text: text, path: "/lab/hosts.toml")
        let ipmi = try #require(table.hosts[0].power?.ipmi)
        #expect(ipmi.host == "10.0.0.50" && ipmi.port == 9001 && ipmi.user == "admin" && ipmi.interface == "lanplus" && ipmi.cipherSuite == 17)
        #expect(ipmi.passwordFile == "/lab/pc1.ipmi", "relative to the hosts file")
        #expect(table.hosts[0].power?.deadline == 20)
        #expect(table.hosts[0].console == .ipmiSOL && table.hosts[0].firmware == "uefi")
        #expect(table.hosts[1].power?.wakeOnLAN == WakeOnLAN(broadcast: "10.0.0.255", port: 9))
        #expect(table.hosts[1].power?.canSwitchOff == false)
        #expect(table.hosts[1].console == .tty(path: "/dev/ttyUSB0", baud: 57600))
        #expect(table.hosts[2].power?.off == ["pdu", "off", "3"] && table.hosts[2].power?.canSwitchOff == true)
        #expect(table.hosts[2].console == .tcp(host: "127.0.0.1", port: 7003))
    }

    @Test(arguments: [
        ("power = {}\n", "hosts.toml:4:1: 'host.0.power': has no way to switch the machine on"),
        ("power = { wol = {}, ipmi = { host = \"h\", user = \"u\", password_file = \"p\" } }\n", "hosts.toml:4:1: 'host.0.power': names both ipmi and wol"),
        ("power = { ipmi = { host = \"h\", user = \"u\", password = \"secret\" } }\n", "hosts.toml:4:1: 'host.0.power.ipmi.password': a password never goes into the hosts file"),
        ("power = { ipmi = { host = \"h\", user = \"u\" } }\n", "hosts.toml:4:1: 'host.0.power.ipmi': has no password_file"),
        ("power = { on = \"pdu on 3\" }\n", "hosts.toml:4:1: 'host.0.power.on'"),
        ("power = { on = [] }\n", "hosts.toml:4:1: 'host.0.power.on': is empty"),
        ("power = { wol = {}, relay = 3 }\n", "hosts.toml:4:1: unknown key 'host.0.power.relay'"),
        ("console = \"telnet://h:23\"\n", "hosts.toml:4:1: 'host.0.console': 'telnet://h:23' is not a console"),
        ("console = \"tcp://h\"\n", "hosts.toml:4:1: 'host.0.console': 'tcp://h' has no port"),
        ("console = { url = \"/dev/ttyS0\", baud = 12345 }\n", "hosts.toml:4:1: 'host.0.console.baud': must be one of"),
        ("console = \"ipmi-sol\"\n", "hosts.toml:4:1: 'host.0.console': ipmi-sol reads the console through the BMC"),
        ("firmware = \"coreboot\"\n", "hosts.toml:4:1: 'host.0.firmware': 'coreboot' is not a firmware"),
    ])
    func badEntriesNameFileAndLine(line: String, expected: String) {
        do {
            _ = try HostTable.decode(text: header + line, path: "hosts.toml")
            Issue.record("accepted: \(line)")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }

    /// The example every admin starts from reads as it says.
    @Test func exampleHostsFileReads() throws {
        let table = try HostTable.load(path: Repository.root + "/services/hosts.example.toml")
        #expect(table.hosts.count == 5)
        #expect(table.hosts.filter { $0.power != nil }.count == 3)
        #expect(table.hosts.contains { $0.console == .ipmiSOL } && table.hosts.contains { $0.console == .tcp(host: "10.0.0.9", port: 7011) })
    }

    /// A password file others can read is refused before anything is switched.
    @Test func passwordFileMustBeTheOwnersOnly() throws {
        let work = TemporaryDirectory("drops-hosts")
        work.write("pc.ipmi", text: "secret\n")
        let access = IPMIAccess(host: "h", user: "u", passwordFile: work.path + "/pc.ipmi", location: SourceLocation(file: "hosts.toml", line: 7))
        chmod(work.path + "/pc.ipmi", 0o644)
        #expect(throws: ModelError.self) { try access.checkPasswordFile() }
        do { try access.checkPasswordFile() } catch {
            #expect(error.description.hasPrefix("hosts.toml:7") && error.description.contains("mode 644") && error.description.contains("chmod 600"), "\(error.description)")
        }
        chmod(work.path + "/pc.ipmi", 0o600)
        #expect(throws: Never.self) { try access.checkPasswordFile() }
        let missing = IPMIAccess(host: "h", user: "u", passwordFile: work.path + "/none", location: SourceLocation(file: "hosts.toml", line: 7))
        #expect(throws: ModelError.self) { try missing.checkPasswordFile() }
    }
}
