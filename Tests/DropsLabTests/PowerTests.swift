import DropsLab
import DropsModel
import DropsTestSupport
import Foundation
import Testing

/// A BMC simulator for one test: OpenIPMI's ipmi_sim on a loopback port, whose chassis
/// power starts and stops `machine` (a stand-in for the PC), driven through ipmitool.
final class SimulatedBMC {
    static var available: Bool {
        ["/usr/bin/ipmi_sim", "/usr/bin/ipmitool"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    let work: TemporaryDirectory
    let port: Int
    let access: IPMIAccess
    let marker: String
    private var process: ChildProcess?

    init(password: String = "lab-secret") throws {
        work = TemporaryDirectory("drops-bmc")
        port = Int.random(in: 30_000...39_999)
        // The stand-in PC: a shell running this script, which only this BMC starts.
        marker = work.path + "/pc.sh"
        work.write("pc.sh", text: "#!/bin/sh\nwhile :; do sleep 1; done\n")
        chmod(work.path + "/pc.sh", 0o755)
        IPMISimulatorFiles.write(into: work, name: "dropstest", port: port, startCommand: work.path + "/pc.sh", password: password, powerOffSeconds: 1)
        work.write("password", text: "lab-secret\n")
        chmod(work.path + "/password", 0o600)
        try FileManager.default.createDirectory(atPath: work.path + "/state", withIntermediateDirectories: true)
        access = IPMIAccess(host: "127.0.0.1", port: port, user: "lab", passwordFile: work.path + "/password",
                            location: SourceLocation(file: "hosts.toml", line: 3))
        try start()
    }

    func start() throws {
        process = try ChildProcess(["/usr/bin/ipmi_sim", "-c", work.path + "/lan.conf", "-f", work.path + "/sim.emu", "-n", "-s", work.path + "/state"],
                                   output: work.path + "/sim.log", errors: work.path + "/sim.log")
        // Ready when it answers a status request.
        for _ in 0..<50 {
            if (try? IPMIPowerSwitch(host: "pc", access: access).state()) != nil { return }
            usleep(100_000)
        }
    }

    func stop() {
        process?.stop(SIGKILL)
        process = nil
    }

    /// Whether the stand-in PC runs.
    var machineRuns: Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.contains { pid in
            Int(pid) != nil && (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self).contains(marker) } ?? false)
        }
    }

    deinit {
        stop()
        // What the simulator started goes with it.
        _ = try? ChildProcess(["/usr/bin/pkill", "-f", marker]).wait()
    }
}

@Suite(.enabled(if: SimulatedBMC.available, "needs openipmi and ipmitool (make deps)"))
struct IPMIPowerTests {
    @Test func switchesThePCOnAndOffAndSeesItTake() throws {
        let bmc = try SimulatedBMC()
        let controller = PowerController(host: "pc07", power: IPMIPowerSwitch(host: "pc07", access: bmc.access), deadline: 10)
        #expect(try controller.power.state() == .off)
        try controller.powerOnFresh()
        #expect(try controller.power.state() == .on)
        #expect(bmc.machineRuns)
        // On already: a fresh start cycles it.
        try controller.powerOnFresh()
        #expect(try controller.power.state() == .on)
        try controller.powerOff()
        #expect(try controller.power.state() == .off)
        usleep(500_000)
        #expect(!bmc.machineRuns)
    }

    @Test func aBMCThatDoesNotAnswerIsAPowerFailure() throws {
        let bmc = try SimulatedBMC()
        bmc.stop()
        var power = IPMIPowerSwitch(host: "pc07", access: bmc.access)
        power.commandSeconds = 8
        let controller = PowerController(host: "pc07", power: power, deadline: 5)
        do {
            try controller.powerOnFresh()
            Issue.record("switched on with no BMC")
        } catch {
            guard case let .power(host, action, reason) = error else { Issue.record("\(error)"); return }
            #expect(host == "pc07" && action == "status" && reason.contains("ipmitool chassis power status against IPMI 127.0.0.1:\(bmc.port)"), "\(reason)")
        }
    }

    @Test func aWrongPasswordIsAPowerFailure() throws {
        let bmc = try SimulatedBMC()
        bmc.work.write("wrong", text: "not-it\n")
        chmod(bmc.work.path + "/wrong", 0o600)
        var access = bmc.access
        access.passwordFile = bmc.work.path + "/wrong"
        var power = IPMIPowerSwitch(host: "pc07", access: access)
        power.commandSeconds = 8
        #expect(throws: LabError.self) { try power.on() }
        #expect(!bmc.machineRuns)
    }

    @Test func aPasswordFileOthersCanReadIsRefusedBeforeAnyCommand() throws {
        let bmc = try SimulatedBMC()
        chmod(bmc.access.passwordFile, 0o644)
        do {
            try IPMIPowerSwitch(host: "pc07", access: bmc.access).on()
            Issue.record("switched with a readable password file")
        } catch {
            #expect(error.description.contains("chmod 600"), "\(error.description)")
        }
        #expect(!bmc.machineRuns)
    }
}

/// Command hooks and Wake-on-LAN, with programs and sockets of this machine.
@Suite struct PowerHookTests {
    /// Hooks that keep the state in a file, the way a PDU's command-line tool would.
    func hooks(_ work: TemporaryDirectory, statusWord: String? = nil) -> PowerControl {
        let state = work.path + "/state"
        work.write("set.sh", text: "#!/bin/sh\necho \"$1\" > \(state)\n")
        work.write("status.sh", text: statusWord.map { "#!/bin/sh\necho \($0)\n" } ?? "#!/bin/sh\ncat \(state) 2>/dev/null || echo off\n")
        chmod(work.path + "/set.sh", 0o755)
        chmod(work.path + "/status.sh", 0o755)
        return PowerControl(on: [work.path + "/set.sh", "on"], off: [work.path + "/set.sh", "off"], status: [work.path + "/status.sh"],
                            deadline: 2, location: SourceLocation(file: "hosts.toml", line: 1))
    }

    @Test func hooksSwitchAndReport() throws {
        let work = TemporaryDirectory("drops-hooks")
        let controller = PowerController(host: "pc", power: CommandPowerSwitch(host: "pc", power: hooks(work)), deadline: 2)
        try controller.powerOnFresh()
        #expect(try controller.power.state() == .on)
        try controller.powerOnFresh()
        #expect(try controller.power.state() == .on, "on again: switched off and on, no cycle command")
        try controller.powerOff()
        #expect(try controller.power.state() == .off)
    }

    @Test func aStateThatNeverChangesIsAPowerFailure() throws {
        let work = TemporaryDirectory("drops-hooks")
        var controller = PowerController(host: "pc", power: CommandPowerSwitch(host: "pc", power: hooks(work, statusWord: "off")), deadline: 1)
        controller.pollInterval = 0.1
        do {
            try controller.powerOnFresh()
            Issue.record("the state never changed, yet it passed")
        } catch {
            #expect(error.description.contains("still reports off 1 s after on"), "\(error.description)")
        }
    }

    @Test func aFailingHookNamesItsOutput() throws {
        let work = TemporaryDirectory("drops-hooks")
        work.write("pdu.sh", text: "#!/bin/sh\necho 'outlet 7: no such outlet' >&2\nexit 3\n")
        chmod(work.path + "/pdu.sh", 0o755)
        let power = PowerControl(on: [work.path + "/pdu.sh", "on", "7"], location: SourceLocation(file: "hosts.toml", line: 1))
        do {
            try CommandPowerSwitch(host: "pc", power: power).on()
            Issue.record("a failing hook passed")
        } catch {
            #expect(error.description.contains("exit status 3: outlet 7: no such outlet"), "\(error.description)")
        }
        #expect(throws: LabError.self) { try CommandPowerSwitch(host: "pc", power: power).off() }
    }

    /// The switch a hosts file entry describes: IPMI, Wake-on-LAN alone, or hooks (with
    /// Wake-on-LAN switching on when there is no on command).
    @Test func hostsFileEntriesPickTheirSwitch() throws {
        let table = try HostTable.decode(text: """
            [[host]]
            mac = "52:54:00:00:00:01"
            profile = "p"
            power = { wol = {} }
            [[host]]
            mac = "52:54:00:00:00:02"
            profile = "p"
            power = { wol = {}, off = ["true"] }
            [[host]]
            mac = "52:54:00:00:00:03"
            profile = "p"
            power = { ipmi = { host = "h", user = "u", password_file = "/x" } }
            [[host]]
            mac = "52:54:00:00:00:04"
            profile = "p"
            """, path: "/lab/hosts.toml")
        #expect(try PowerController.forHost(table.hosts[0]).power is WakeOnLANSwitch)
        let hooked = try #require(try PowerController.forHost(table.hosts[1]).power as? CommandPowerSwitch)
        #expect(hooked.wake != nil)
        #expect(throws: Never.self) { try hooked.off() }
        #expect(try PowerController.forHost(table.hosts[2]).power is IPMIPowerSwitch)
        #expect(throws: LabError.self) { try PowerController.forHost(table.hosts[3]) }
    }

    @Test func wakeOnLANSendsTheMagicPacket() throws {
        let receiver = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(receiver) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(receiver, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(receiver, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let wake = WakeOnLANSwitch(host: "pc", mac: "52:54:00:ab:cd:ef", wake: WakeOnLAN(broadcast: "127.0.0.1", port: port))
        try wake.on()
        var buffer = [UInt8](repeating: 0, count: 200)
        let count = recv(receiver, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(count == 102)
        #expect(Array(buffer[0..<6]) == [UInt8](repeating: 0xFF, count: 6))
        #expect(Array(buffer[6..<12]) == [0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF] && Array(buffer[96..<102]) == [0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF])
        #expect(throws: LabError.self) { try wake.off() }
        #expect(try wake.state() == nil)
    }
}
