import DropsImage
import DropsLab
import DropsModel
import DropsPXE
import DropsProcess
import DropsQEMU
import DropsRunner
import DropsTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension SimulatedLabPC {
    /// drops-run --host inside the lab namespace, as on the lab's server.
    /// `pointer`: how drops-run points the PC (its own server on br0, or --control PATH).
    func command(_ tree: String, _ arguments: [String], pointer: [String] = ["--interface", "br0"]) throws -> [String] {
        let tool = try #require(CommandLineTests.executable("drops-run"))
        return ["/usr/sbin/ip", "netns", "exec", lab.lab, tool, tree, "--host", "lab-pc1", "--hosts", hostsFile, "--json"] + pointer + arguments
    }

    func run(_ tree: String, _ arguments: [String], holds: String, pointer: [String] = ["--interface", "br0"]) throws -> DropsRunTool.Result {
        try DropsRunTool.run(try command(tree, arguments, pointer: pointer), environment: ["DROPS_KVM": "off", "DROPS_HOLDS_DIR": holds], direct: true)
    }
}

@Suite(.serialized, .enabled(if: SimulatedLabPC.available, "needs root, iproute2, dnsmasq-base, openipmi, ipmitool and ser2net (make deps)"))
struct LabPCTests {
    func tree() throws -> (String, Manifest) {
        let root = try LabBootTests.trees.get()
        return (root + "/selftest", try TreeVerifier.loadManifest(directory: root + "/selftest"))
    }

    /// From the hosts file to a verdict: held, pointed, switched on through IPMI, read through
    /// ser2net, every module verified, switched off.
    @Test func selftestIsVerifiedOnALabPC() throws {
        let (tree, manifest) = try tree()
        let pc = try SimulatedLabPC(manifest: manifest)
        let holds = TemporaryDirectory("drops-holds")
        let run = try pc.run(tree, [], holds: holds.path)
        #expect(run.status == 0, "\(run.stderr.suffix(4000))")
        #expect(run.verifiedModules == 15, "\(run.failedModules)")
        #expect(run.summary["host"] as? String == "lab-pc1")
        #expect(run.stderr.contains("switching lab-pc1 on through IPMI 127.0.0.1:\(pc.bmcPort)"), "\(run.stderr.prefix(3000))")
        #expect(run.stderr.contains("switched lab-pc1 off"))
        usleep(3_000_000)
        #expect(!pc.guestRuns, "the PC is off after the run")
        #expect(heldMachines(holds.path).isEmpty, "the machine is free again")
    }

    /// The console through the BMC's Serial-over-LAN (ipmitool sol activate), as on a server
    /// board without a serial cable; the session is ended with the run, so the next one opens.
    @Test func selftestIsVerifiedThroughSerialOverLAN() throws {
        let (tree, manifest) = try tree()
        // The hosts file says UEFI of this BIOS guest: the run says so when the PC asks.
        let pc = try SimulatedLabPC(manifest: manifest, serialOverLAN: true, firmware: "uefi")
        let holds = TemporaryDirectory("drops-holds")
        let run = try pc.run(tree, [], holds: holds.path)
        #expect(run.status == 0, "\(run.stderr.suffix(4000))")
        #expect(run.verifiedModules == 15, "\(run.failedModules)")
        #expect(run.stderr.contains("reading lab-pc1's console (IPMI Serial-over-LAN)"), "\(run.stderr.prefix(3000))")
        #expect(!run.stderr.contains("| [SOL Session"), "ipmitool's banner is not the PC's console")
        #expect(run.stderr.contains("lab-pc1 asks as x86 BIOS") && run.stderr.contains("says firmware = \"uefi\""), "\(run.stderr.prefix(3000))")
        let ipmitool = "/usr/bin/ipmitool -I lanplus -C 3 -H 127.0.0.1 -p \(pc.bmcPort) -U lab -f \(pc.lab.work.path)/bmc.password"
        // On a terminal (script), as a person runs it: ipmitool holds back what it writes to a file.
        let again = try pc.lab.run(["/bin/sh", "-c", "sleep 5 | timeout 4 script -q -c '\(ipmitool) sol activate' /dev/null; exit 0"], in: pc.lab.lab)
        #expect(again.contains("SOL Session operational"), "the run ended its session: \(again)")

        // No BMC, no console: a console failure, before anything is switched.
        pc.stopBMC()
        let unreachable = try pc.run(tree, [], holds: holds.path)
        #expect(unreachable.status == 8, "\(unreachable.stderr.suffix(2000))")
        #expect((unreachable.summary["message"] as? String ?? "").contains("the BMC 127.0.0.1:\(pc.bmcPort) does not answer ipmitool sol deactivate"), "\(unreachable.summary)")
    }

    /// The other chains on a lab PC: PXELINUX on BIOS, GRUB 2 on UEFI (OVMF), every module verified.
    @Test(arguments: [("pxelinux", false), ("grub", true)])
    func selftestIsVerifiedOverOtherChains(chain: String, uefi: Bool) throws {
        if uefi { try #require(FileManager.default.fileExists(atPath: MachineOptions.ovmfCode), "install ovmf (make deps)") }
        let (tree, manifest) = try tree()
        let pc = try SimulatedLabPC(manifest: manifest, chain: chain, uefi: uefi)
        let holds = TemporaryDirectory("drops-holds")
        let run = try pc.run(tree, [], holds: holds.path)
        #expect(run.status == 0, "\(chain): \(run.stderr.suffix(4000))")
        #expect(run.verifiedModules == 15, "\(chain): \(run.failedModules)")
        #expect(run.summary["chain"] as? String == chain)
        #expect(run.summary["firmware"] as? String == (uefi ? "uefi" : "bios"))
        #expect(!run.stderr.contains("lab-pc1 asks as"), "the hosts file says what the PC is: \(run.stderr.prefix(2000))")
    }

    /// Test failures on a lab PC are the QEMU path's: a reset mid-run is a reboot (5), a
    /// milestone that never comes a timeout (3); the PC is switched off after each.
    @Test func testFailuresKeepTheirVerdictsOnALabPC() throws {
        let (tree, manifest) = try tree()
        let pc = try SimulatedLabPC(manifest: manifest)
        let holds = TemporaryDirectory("drops-holds")
        let errors = holds.path + "/reboot.err"
        let runner = try ChildProcess(try pc.command(tree, ["--no-milestones", "--expect", "DROPS-PROBE hello", "--expect", "never comes", "--timeout", "150"]),
                                      output: holds.path + "/reboot.out", errors: errors, environment: ["DROPS_KVM": "off", "DROPS_HOLDS_DIR": holds.path])
        var greeted = false
        for _ in 0..<900 where !greeted {
            usleep(100_000)
            greeted = ((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "").contains("matched 1/2")
        }
        #expect(greeted)
        // Someone presses reset: the BMC cycles the PC, which boots again from the network.
        _ = try pc.lab.run(["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", String(pc.bmcPort), "-U", "lab",
                            "-f", pc.lab.work.path + "/bmc.password", "chassis", "power", "cycle"], in: pc.lab.lab)
        let status = runner.wait(seconds: 150)
        #expect(status == 5, "\((try? String(contentsOfFile: errors, encoding: .utf8))?.suffix(3000) ?? "")")
        usleep(3_000_000)
        #expect(!pc.guestRuns)

        let late = try pc.run(tree, ["--expect", "never comes", "--timeout", "40"], holds: holds.path)
        #expect(late.status == 3, "\(late.stderr.suffix(2000))")
        usleep(3_000_000)
        #expect(!pc.guestRuns)
    }

    /// A file the manifest lists but the tree lacks: named as soon as the PC asks for it.
    @Test func aFileMissingFromTheTreeIsNamedAtOnce() throws {
        let (tree, manifest) = try tree()
        let copy = TemporaryDirectory("drops-lab-copy")
        _ = try ChildProcess.run(["/bin/cp", "-a", tree, copy.path + "/selftest"])
        try FileManager.default.removeItem(atPath: copy.path + "/selftest/bin/names")
        let pc = try SimulatedLabPC(manifest: manifest)
        let holds = TemporaryDirectory("drops-holds")
        let run = try pc.run(copy.path + "/selftest", ["--no-verify"], holds: holds.path)
        #expect(run.status == 1, "\(run.stderr.suffix(2000))")
        #expect((run.summary["message"] as? String ?? "").contains("asked for bin/names, which the manifest lists but the tree does not have"), "\(run.summary)")
        usleep(3_000_000)
        #expect(!pc.guestRuns)
    }

    /// Command hooks switch the PC (here through the same BMC, as a PDU's tool would) and
    /// the selftest is verified; a Wake-on-LAN host gets its magic packet on the lab bridge.
    @Test func powerHooksAndWakeOnLAN() throws {
        let (tree, manifest) = try tree()
        let pc = try SimulatedLabPC(manifest: manifest)
        let work = pc.lab.work
        let ipmitool = "/usr/bin/ipmitool -I lanplus -C 3 -H 127.0.0.1 -p \(pc.bmcPort) -U lab -f \(work.path)/bmc.password chassis power"
        work.write("power.sh", text: "#!/bin/sh\nexec \(ipmitool) \"$1\" 2>/dev/null\n")
        work.write("status.sh", text: "#!/bin/sh\n\(ipmitool) status 2>/dev/null | awk '{ print $NF }'\n")
        chmod(work.path + "/power.sh", 0o755)
        chmod(work.path + "/status.sh", 0o755)
        work.write("hooks.toml", text: """
            [[host]]
            mac = "\(pc.mac)"
            name = "lab-pc1"
            profile = "selftest"
            power = { on = ["\(work.path)/power.sh", "on"], off = ["\(work.path)/power.sh", "off"], status = ["\(work.path)/status.sh"], deadline = 15 }
            console = "tcp://127.0.0.1:\(pc.consolePort)"

            [[host]]
            mac = "52:54:00:77:01:02"
            name = "lab-pc2"
            profile = "selftest"
            power = { wol = { broadcast = "10.77.0.255" } }
            console = "tcp://127.0.0.1:\(pc.consolePort)"
            """)
        let holds = TemporaryDirectory("drops-holds")
        let tool = try #require(CommandLineTests.executable("drops-run"))
        let hooked = try DropsRunTool.run(["/usr/sbin/ip", "netns", "exec", pc.lab.lab, tool, tree, "--host", "lab-pc1", "--hosts", work.path + "/hooks.toml",
                                           "--interface", "br0", "--json"], environment: ["DROPS_KVM": "off", "DROPS_HOLDS_DIR": holds.path], direct: true)
        #expect(hooked.status == 0, "\(hooked.stderr.suffix(3000))")
        #expect(hooked.verifiedModules == 15)
        #expect(hooked.stderr.contains("on through power commands"), "\(hooked.stderr.prefix(1500))")
        usleep(3_000_000)
        #expect(!pc.guestRuns, "the off hook switched it off")

        // The magic packet, as the bridge sees it: 6 bytes 0xff, then the MAC 16 times.
        let capture = try pc.lab.start(in: pc.lab.lab, ["/usr/bin/tcpdump", "-l", "-n", "-i", "br0", "-c", "1", "-x", "udp", "port", "9"], log: "wol")
        #expect(pc.lab.waitFor("listening on br0", in: "wol"), "\(pc.lab.log("wol"))")
        let woken = try DropsRunTool.run(["/usr/sbin/ip", "netns", "exec", pc.lab.lab, tool, tree, "--host", "lab-pc2", "--hosts", work.path + "/hooks.toml",
                                          "--interface", "br0", "--json", "--boot-deadline", "5"], environment: ["DROPS_KVM": "off", "DROPS_HOLDS_DIR": holds.path], direct: true)
        #expect(woken.status == 9, "no PC answers this MAC: \(woken.stderr.suffix(2000))")
        _ = capture.wait(seconds: 10)
        // tcpdump -x: lines of "0x0010:  hex hex …"; the bytes after the offsets, joined.
        let hex = pc.lab.log("wol").split(separator: "\n").filter { $0.contains("0x0") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map(String.init) ?? "" }.joined().filter { !$0.isWhitespace }
        #expect(hex.contains("ffffffffffff" + String(repeating: "525400770102", count: 16)), "\(pc.lab.log("wol"))")
    }

    /// Each infrastructure failure with its own verdict and exit status; the PC is never left on.
    @Test func infrastructureFailuresHaveTheirOwnVerdicts() throws {
        let (tree, manifest) = try tree()
        let pc = try SimulatedLabPC(manifest: manifest)
        let holds = TemporaryDirectory("drops-holds")

        pc.stopConsoleServer()
        let console = try pc.run(tree, ["--junit", holds.path + "/junit.xml"], holds: holds.path)
        #expect(console.status == 8, "\(console.stderr.suffix(2000))")
        #expect(console.summary["infrastructure"] as? String == "console", "\(console.stdout)")
        let junit = (try? String(contentsOfFile: holds.path + "/junit.xml", encoding: .utf8)) ?? ""
        #expect(junit.contains(#"<error type="infrastructure.console""#) && junit.contains(#"errors="1""#), "an error, not a failure: \(junit.prefix(1500))")
        #expect(!pc.guestRuns, "not switched on without a console")
        try pc.startConsoleServer()

        pc.stopBMC()
        let power = try pc.run(tree, [], holds: holds.path)
        #expect(power.status == 7, "\(power.stderr.suffix(2000))")
        #expect(power.summary["infrastructure"] as? String == "power")
        #expect((power.summary["message"] as? String ?? "").contains("ipmitool chassis power"), "\(power.summary)")
    }

    /// A console that stays silent after power-on (the PC's serial port leads elsewhere) is a
    /// console failure; --retries tries infrastructure failures again, and says so.
    @Test func aSilentConsoleIsAConsoleFailureAndIsRetried() throws {
        let (tree, manifest) = try tree()
        let pc = try SimulatedLabPC(manifest: manifest, serialConnected: false)
        let holds = TemporaryDirectory("drops-holds")
        let run = try pc.run(tree, ["--boot-deadline", "25", "--retries", "1"], holds: holds.path)
        #expect(run.status == 8, "\(run.stderr.suffix(2000))")
        #expect((run.summary["message"] as? String ?? "").contains("stayed silent for 25 s after power-on"), "\(run.summary)")
        #expect(run.stderr.contains("trying again (1 of 1 retries)"), "\(run.stderr.suffix(3000))")
        usleep(3_000_000)
        #expect(!pc.guestRuns)
    }

    /// A PC that never asks for DHCP (its card is not the hosts file's) is a network-boot
    /// failure, after the boot deadline; the PC is switched off again.
    @Test func aPCThatNeverAsksForDHCPIsANetworkBootFailure() throws {
        let (tree, manifest) = try tree()
        let pc = try SimulatedLabPC(manifest: manifest, mac: "52:54:00:77:01:99")
        let holds = TemporaryDirectory("drops-holds")
        let run = try pc.run(tree, ["--boot-deadline", "20"], holds: holds.path)
        #expect(run.status == 9, "\(run.stderr.suffix(2000))")
        #expect((run.summary["message"] as? String ?? "").contains("never asked for DHCP/PXE within 20 s"), "\(run.summary)")
        usleep(3_000_000)
        #expect(!pc.guestRuns)
    }

    /// A second run for a held machine fails at once, naming the holder.
    @Test func aHeldMachineIsRefusedNamingTheHolder() throws {
        let (tree, manifest) = try tree()
        let pc = try SimulatedLabPC(manifest: manifest)
        let holds = TemporaryDirectory("drops-holds")
        let holder = try ChildProcess(["/usr/bin/flock", "-x", "-o", holds.path + "/lab-pc1.hold", "/bin/sleep", "60"])
        defer { holder.stop(SIGKILL) }
        usleep(300_000)
        let run = try pc.run(tree, [], holds: holds.path)
        #expect(run.status == 1)
        #expect(run.stderr.contains("lab-pc1 is held by") && run.stderr.contains("--wait"), "\(run.stderr.suffix(1000))")
        #expect(!pc.guestRuns)
        let tool = try #require(CommandLineTests.executable("drops-run"))
        let who = try ChildProcess.run([tool, "--who", "--json", "--hosts", pc.hostsFile], environment: ["DROPS_HOLDS_DIR": holds.path])
        let rows = (try? JSONSerialization.jsonObject(with: Data(who.stdout.utf8))) as? [[String: Any]] ?? []
        #expect(rows.count == 1 && rows.first?["host"] as? String == "lab-pc1" && rows.first?["held"] as? Bool == true, "\(who.stdout) \(who.stderr)")
    }
}

/// drops-serve pxe already runs for the lab: drops-run asks it through the control socket,
/// and what it asked reverts when the run ends, also when the run is killed.
@Suite(.serialized, .enabled(if: SimulatedLabPC.available, "needs root, iproute2, dnsmasq-base, openipmi, ipmitool and ser2net (make deps)"))
struct LabControlSocketTests {
    func overrides(_ path: String) throws -> [PXEControlReply.Override] {
        let client = try PXEControlClient(path: path)
        defer { client.close() }
        return try client.send(PXEControlRequest(request: "status")).overrides ?? []
    }

    @Test func aRunningServerBootsThePCForTheRunOnly() throws {
        let root = try LabBootTests.trees.get()
        let manifest = try TreeVerifier.loadManifest(directory: root + "/selftest")
        let pc = try SimulatedLabPC(manifest: manifest)
        // The lab's server knows no machine: only the run's request makes the PC boot.
        try LabBootTests().serve(pc.lab, root: root, hosts: "unknown = \"refuse\"\n", log: "pxe")
        let control = pc.lab.work.path + "/pxe.sock"
        let info = try FileManager.default.attributesOfItem(atPath: control)
        #expect((info[.posixPermissions] as? Int) == 0o600, "owner only: \(info)")
        let holds = TemporaryDirectory("drops-holds")
        let run = try pc.run(root + "/selftest", [], holds: holds.path, pointer: ["--control", control])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(run.verifiedModules == 15)
        #expect(run.stderr.contains("boots it with selftest over ipxe for this run"), "\(run.stderr.prefix(1500))")
        #expect(try overrides(control).isEmpty, "the request ended with the run")
    }

    /// A runner killed with SIGKILL: the machine is free and unpointed at once, and the next
    /// run boots it (cycling it, since the dead run left it on).
    @Test func aKilledRunnerLeavesTheMachineFreeAndUnpointed() throws {
        let root = try LabBootTests.trees.get()
        let manifest = try TreeVerifier.loadManifest(directory: root + "/selftest")
        let pc = try SimulatedLabPC(manifest: manifest)
        try LabBootTests().serve(pc.lab, root: root, hosts: "unknown = \"refuse\"\n", log: "pxe")
        let control = pc.lab.work.path + "/pxe.sock"
        let holds = TemporaryDirectory("drops-holds")
        let errors = holds.path + "/run.err"
        let runner = try ChildProcess(try pc.command(root + "/selftest", ["--expect", "never comes"], pointer: ["--control", control]),
                                      output: holds.path + "/run.out", errors: errors, environment: ["DROPS_KVM": "off", "DROPS_HOLDS_DIR": holds.path])
        var switching = false
        for _ in 0..<300 where !switching {
            usleep(100_000)
            switching = ((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "").contains("switching lab-pc1 on")
        }
        #expect(switching, "\((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")")
        #expect(try overrides(control).map(\.mac) == [pc.mac])
        #expect(heldMachines(holds.path) == ["lab-pc1"])
        let serve = try #require(CommandLineTests.executable("drops-serve"))
        let status = try ChildProcess.run([serve, "status", "--control", control, "--json"], environment: ["DROPS_HOLDS_DIR": holds.path])
        let object = (try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8))) as? [String: Any] ?? [:]
        let pointed = ((object["servers"] as? [[String: Any]])?.first?["pointed"] as? [[String: Any]]) ?? []
        let held = (object["holds"] as? [[String: Any]]) ?? []
        #expect(pointed.first?["mac"] as? String == pc.mac && pointed.first?["profile"] as? String == "selftest", "\(status.stdout) \(status.stderr)")
        #expect(held.first?["host"] as? String == "lab-pc1" && held.first?["pid"] as? Int != nil, "\(status.stdout)")
        runner.stop(SIGKILL)
        usleep(500_000)
        #expect(try overrides(control).isEmpty, "the PC is unpointed when its runner dies")
        #expect(heldMachines(holds.path).isEmpty, "the machine is free when its runner dies")
        let next = try pc.run(root + "/selftest", [], holds: holds.path, pointer: ["--control", control])
        #expect(next.status == 0, "\(next.stderr.suffix(3000))")
        #expect(next.verifiedModules == 15)
    }
}

/// The machines a holds folder says are held now, as `drops-run --who` reads them.
func heldMachines(_ folder: String) -> [String] {
    MachineHold.who(folder: folder).filter(\.held).map(\.host)
}
