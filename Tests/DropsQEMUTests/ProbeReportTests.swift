import DropsModel
import Testing

@testable import DropsQEMU

@Suite struct ProbeReportTests {
    let transcript = """
        SeaBIOS (version 1.16.2-debian-1.16.2-1)\r
        DROPS-PROBE hello version=1\r
        DROPS-PROBE boot magic=0x2badb002 flags=0x0000024f cmdline="probe -serial"\r
        DROPS-PROBE loader name="GRUB 2.06"\r
        DROPS-PROBE mem lower=639 upper=129920\r
        DROPS-PROBE module 0 start=0x00106000 size=5 sha256=aa cmdline="sigma0 -v"\r
        DROPS-PROBE module 1 start=0x00107000 size=7 sha256=bb cmdline="roottask task modname \\"names\\" a\\\\b \\x09tab \\xc3\\xa9"\r
        DROPS-PROBE end modules=2\r

        """

    @Test func parsesEveryLine() {
        let report = ProbeReport.parse(transcript)
        #expect(report.started)
        #expect(report.magic == 0x2BAD_B002)
        #expect(report.flags == 0x24F)
        #expect(report.cmdline == "probe -serial")
        #expect(report.loaderName == "GRUB 2.06")
        #expect(report.memLower == 639 && report.memUpper == 129920)
        #expect(report.modules.count == 2)
        #expect(report.modules[0] == ProbeReport.Module(index: 0, start: 0x106000, size: 5, sha256: "aa", cmdline: "sigma0 -v"))
        #expect(report.endCount == 2)
        #expect(report.isComplete)
    }

    @Test func unescapesQuotesBackslashesAndBytes() {
        let report = ProbeReport.parse(transcript)
        #expect(report.modules[1].cmdline == "roottask task modname \"names\" a\\b \ttab é")
    }

    @Test func incompleteReportIsNotComplete() {
        let cut = transcript.components(separatedBy: "DROPS-PROBE module 1")[0]
        let report = ProbeReport.parse(cut)
        #expect(!report.isComplete)
        #expect(report.modules.count == 1)
    }

    @Test func errorLineIsKept() {
        let report = ProbeReport.parse("DROPS-PROBE hello version=1\nDROPS-PROBE boot magic=0x12345678 error=\"not loaded by a multiboot loader\"\n")
        #expect(report.magic == 0x1234_5678)
        #expect(report.error == "not loaded by a multiboot loader")
        #expect(report.isComplete)
    }

    @Test func linesWithOtherTextAroundTheMarkerStillCount() {
        let report = ProbeReport.parse("noise DROPS-PROBE end modules=0\n")
        #expect(report.endCount == 0)
    }
}

@Suite struct ProbeCheckTests {
    func manifest() -> Manifest {
        func module(_ name: String, _ size: Int, _ sha: String, _ cmdline: String) -> Manifest.Module {
            Manifest.Module(name: name, role: .server, delivery: .boot, path: "bin/\(name)", size: size, sha256: sha,
                            cmdline: cmdline, source: "generated", inspection: "data", modaddr: nil)
        }
        return Manifest(
            format: 1, tool: "drops test",
            profile: .init(name: "t", description: "", api: .multiboot, arch: .ia32, sha256: ""),
            variables: [:], firstStage: module("probe", 10, "00", "probe -serial"),
            modules: [module("sigma0", 5, "aa", "sigma0 -v"), module("roottask", 7, "bb", "roottask x")],
            runtimeFiles: [], bootPaths: [], milestones: [], files: [])
    }

    let good = """
        DROPS-PROBE hello version=1
        DROPS-PROBE boot magic=0x2badb002 flags=0x0000024f cmdline="probe -serial"
        DROPS-PROBE module 0 start=0x00106000 size=5 sha256=aa cmdline="sigma0 -v"
        DROPS-PROBE module 1 start=0x00107000 size=7 sha256=bb cmdline="roottask x"
        DROPS-PROBE end modules=2
        """

    @Test func matchingReportPasses() {
        let check = ProbeCheck(manifest: manifest(), report: ProbeReport.parse(good))
        #expect(check.ok)
        #expect(check.rows.count == 2)
        #expect(check.table().contains("roottask"))
    }

    @Test func eachKindOfMismatchIsNamed() {
        let bad = good
            .replacingOccurrences(of: "size=5", with: "size=6")
            .replacingOccurrences(of: "sha256=bb", with: "sha256=cc")
            .replacingOccurrences(of: "cmdline=\"probe -serial\"", with: "cmdline=\"bin/probe -serial\"")
        let check = ProbeCheck(manifest: manifest(), report: ProbeReport.parse(bad))
        #expect(!check.ok)
        #expect(check.rows[0].problems == ["size 6 != 5"])
        #expect(check.rows[1].problems == ["sha256 differs"])
        #expect(check.problems.contains { $0.contains("first stage command line") })
    }

    @Test func missingModulesAndWrongCountFail() {
        let lines = good.split(separator: "\n").filter { !$0.contains("module 1") }.joined(separator: "\n")
            .replacingOccurrences(of: "modules=2", with: "modules=1")
        let check = ProbeCheck(manifest: manifest(), report: ProbeReport.parse(lines))
        #expect(!check.ok)
        #expect(check.rows[1].problems == ["not reported by the probe"])
        #expect(check.problems.contains { $0.contains("received 1 modules") })
    }

    @Test func anUnfinishedReportFails() {
        let check = ProbeCheck(manifest: manifest(), report: ProbeReport.parse("DROPS-PROBE hello version=1\n"))
        #expect(!check.ok)
    }
}

@Suite struct QEMUCommandTests {
    @Test func multibootCommandRunsInBinWithPlainNames() {
        let module = Manifest.Module(name: "roottask", role: .roottask, delivery: .boot, path: "bin/roottask", size: 3 << 20,
                                     sha256: "", cmdline: "roottask a,b", source: "", inspection: "", modaddr: nil)
        let sigma0 = Manifest.Module(name: "sigma0", role: .sigma0, delivery: .boot, path: "bin/sigma0", size: 100,
                                     sha256: "", cmdline: "sigma0", source: "", inspection: "", modaddr: nil)
        let first = Manifest.Module(name: "probe", role: .bootstrap, delivery: .boot, path: "bin/probe", size: 100,
                                    sha256: "", cmdline: "probe -serial", source: "", inspection: "", modaddr: nil)
        let manifest = Manifest(format: 1, tool: "", profile: .init(name: "t", description: "", api: .l4env, arch: .ia32, sha256: ""),
                                variables: [:], firstStage: first, modules: [sigma0, module], runtimeFiles: [], bootPaths: [],
                                milestones: [], files: [])
        let command = QEMUCommand.multiboot(manifest: manifest, treeDirectory: "/t/out/x")
        #expect(command.executable == "qemu-system-i386")
        #expect(command.workingDirectory == "/t/out/x/bin")
        let args = command.arguments
        #expect(args[args.firstIndex(of: "-kernel")! + 1] == "probe")
        #expect(args[args.firstIndex(of: "-append")! + 1] == "-serial")
        // A comma inside a command line is doubled, items are separated by single commas.
        #expect(args[args.firstIndex(of: "-initrd")! + 1] == "sigma0,roottask a,,b")
        #expect(args.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"))
        #expect(args.starts(with: ["-accel", "tcg"]))
        #expect(args.contains("-no-reboot"))
        #expect(!args.contains("-smp"))
        // Twice the 3 MiB of modules plus 64, rounded up to 64 MiB, at least 128.
        #expect(args[args.firstIndex(of: "-m")! + 1] == "128")
    }

    func manifest() -> Manifest {
        let first = Manifest.Module(name: "probe", role: .bootstrap, delivery: .boot, path: "bin/probe", size: 100,
                                    sha256: "", cmdline: "probe", source: "", inspection: "", modaddr: nil)
        return Manifest(format: 1, tool: "", profile: .init(name: "t", description: "", api: .l4env, arch: .amd64, sha256: ""),
                        variables: [:], firstStage: first, modules: [], runtimeFiles: [], bootPaths: [], milestones: [], files: [])
    }

    @Test func machineOptionsReachEveryChain() {
        let machine = MachineOptions(memoryMiB: 256, cpus: 2, nic: "rtl8139", kvm: true, extraArguments: ["-vga", "std"])
        let network = QEMUCommand.network(manifest: manifest(), entry: "boot.ipxe", port: 40000, machine: machine)
        #expect(network.executable == "qemu-system-x86_64")
        #expect(network.arguments.starts(with: ["-accel", "kvm"]))
        #expect(network.arguments.contains("user,id=n0,bootfile=tftp://10.0.2.2:40000/boot.ipxe"))
        #expect(network.arguments.contains("rtl8139,netdev=n0"))
        #expect(network.arguments[network.arguments.firstIndex(of: "-smp")! + 1] == "2")
        #expect(network.arguments[network.arguments.firstIndex(of: "-m")! + 1] == "256")
        // --qemu-arg goes last, so it can override what came before.
        #expect(network.arguments.suffix(2) == ["-vga", "std"])
        let multiboot = QEMUCommand.multiboot(manifest: manifest(), treeDirectory: "/t", machine: machine)
        #expect(multiboot.arguments.suffix(2) == ["-vga", "std"])
        #expect(!multiboot.arguments.contains("-initrd"))
        // Without KVM the same command runs under TCG.
        let tcg = network.withKVM(false)
        #expect(tcg.arguments.starts(with: ["-accel", "tcg"]))
        #expect(tcg.arguments.filter { $0 == "-accel" }.count == 1)
    }

    @Test func builtinServerServesTheTreeItself() {
        let command = QEMUCommand.builtinNetwork(manifest: manifest(), entry: "lpxelinux.0", treeDirectory: "/srv/a,b")
        #expect(command.arguments.contains("user,id=n0,tftp=/srv/a,,b,bootfile=lpxelinux.0"))
        #expect(command.arguments.contains("e1000,netdev=n0"))
    }
}

/// What roottask would parse, from the probe's report: the file -configfile takes and the
/// rest of its command line.
@Suite struct ConfigurationViewTests {
    let configuration = RootTaskConfiguration(
        owner: "roottask", ownerModule: 1, firstOptionModule: 2, header: "#!roottask",
        text: #"task modname "names" allow_cli"#, delivery: "module", module: "bin/roottask.cfg", reason: "")

    func manifest() -> Manifest {
        func module(_ name: String, _ cmdline: String) -> Manifest.Module {
            Manifest.Module(name: name, role: .server, delivery: .boot, path: "bin/\(name)", size: 1, sha256: "aa",
                            cmdline: cmdline, source: "generated", inspection: "data", modaddr: nil)
        }
        return Manifest(
            format: 1, tool: "drops test",
            profile: .init(name: "t", description: "", api: .l4env, arch: .ia32, sha256: ""),
            variables: [:], firstStage: module("probe", "probe"),
            modules: [module("fiasco", "fiasco"), module("roottask", "roottask -configfile"), module("roottask.cfg", "roottask.cfg")],
            runtimeFiles: [], bootPaths: [], milestones: [], rootTaskConfiguration: configuration, files: [])
    }

    func report(roottask: String, text: String?) -> ProbeReport {
        var lines = [
            "DROPS-PROBE hello version=1",
            "DROPS-PROBE boot magic=0x2badb002 flags=0x0000024f cmdline=\"probe\"",
            "DROPS-PROBE module 0 start=0x1 size=1 sha256=aa cmdline=\"fiasco\"",
            "DROPS-PROBE module 1 start=0x2 size=1 sha256=aa cmdline=\"\(roottask)\"",
            "DROPS-PROBE module 2 start=0x3 size=1 sha256=aa cmdline=\"roottask.cfg\"",
        ]
        if let text { lines.append("DROPS-PROBE text 2 text=\"\(text)\"") }
        lines.append("DROPS-PROBE end modules=3")
        return ProbeReport.parse(lines.joined(separator: "\n"))
    }

    @Test func theFileAfterItsHeaderIsWhatRoottaskParses() throws {
        let probe = report(roottask: "roottask -configfile", text: #"#!roottask\x0atask modname \"names\" allow_cli\x0a"#)
        #expect(probe.texts[2] == "#!roottask\ntask modname \"names\" allow_cli\n")
        let check = ProbeCheck(manifest: manifest(), report: probe)
        let view = try #require(check.configuration)
        #expect(view.ok, "\(view.problems)")
        #expect(view.seen == #"task modname "names" allow_cli"#)
        #expect(view.source == "roottask from module 2 (-configfile)")
        #expect(check.ok)
    }

    @Test func aMissingOrHeaderlessFileIsNamed() {
        let none = ProbeCheck(manifest: manifest(), report: report(roottask: "roottask -configfile", text: nil))
        #expect(none.problems.contains { $0.contains("module 2, which -configfile takes, is not a configuration file") }, "\(none.problems)")
        let headerless = ProbeCheck(manifest: manifest(), report: report(roottask: "roottask -configfile", text: #"#!rmgr\x0atask"#))
        #expect(headerless.problems.contains { $0.contains("does not start with #!roottask") }, "\(headerless.problems)")
    }

    @Test func aCommandLineGRUB2RewroteIsNamedWithTheFix() throws {
        var cmdline = manifest()
        cmdline.rootTaskConfiguration?.delivery = "cmdline"
        cmdline.modules[1].cmdline = #"roottask task modname "names" allow_cli"#
        let rewritten = #"roottask task modname \\\"names\\\" allow_cli"#
        let check = ProbeCheck(manifest: cmdline, report: report(roottask: rewritten, text: nil))
        let view = try #require(check.configuration)
        #expect(view.seen == #"task modname \"names\" allow_cli"#)
        #expect(view.problems.contains { $0.contains("GRUB 2 put a backslash before each quote") && $0.contains("config_delivery") }, "\(view.problems)")
    }
}
