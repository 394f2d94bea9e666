import DropsImage
import DropsModel
import DropsQEMU
import DropsTestSupport
import Foundation
import Testing

/// Runs drops-run as a person does and returns its exit status and output.
enum DropsRunTool {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String

        /// The `--json` summary.
        var summary: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any] ?? [:]
        }

        /// Files our TFTP server delivered, from the `--json` summary, as paths in the tree
        /// (menus ask for /PROFILE/bin/NAME).
        var served: Set<String> {
            let records = summary["served"] as? [[String: Any]] ?? []
            let profile = (summary["profile"] as? String ?? "") + "/"
            return Set(records.filter { $0["outcome"] as? String == "ok" }.compactMap { $0["file"] as? String }.map { name in
                var path = Substring(name)
                while path.hasPrefix("/") { path = path.dropFirst() }
                if path.hasPrefix(profile) { path = path.dropFirst(profile.count) }
                return String(path)
            })
        }

        /// Files delivered over one protocol (`tftp` or `http`), as paths in the tree.
        func served(via protocolName: String) -> Set<String> {
            let records = summary["served"] as? [[String: Any]] ?? []
            let profile = (summary["profile"] as? String ?? "") + "/"
            return Set(records.filter { $0["outcome"] as? String == "ok" && $0["via"] as? String == protocolName }.compactMap { $0["file"] as? String }.map { name in
                var path = Substring(name)
                while path.hasPrefix("/") { path = path.dropFirst() }
                if path.hasPrefix(profile) { path = path.dropFirst(profile.count) }
                return String(path)
            })
        }

        var failedModules: [String] {
            (summary["modules"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool == false }.compactMap { $0["name"] as? String }
        }

        var verifiedModules: Int {
            (summary["modules"] as? [[String: Any]] ?? []).filter { $0["ok"] as? Bool == true }.count
        }
    }

    /// Runs drops-run with `arguments`; `direct` runs `arguments` as the whole command line
    /// (drops-run inside `ip netns exec`, for instance).
    static func run(_ arguments: [String], environment: [String: String] = ["DROPS_KVM": "off"], direct: Bool = false) throws -> Result {
        let tool = try #require(CommandLineTests.executable("drops-run"), "build the tools first (make build)")
        let run = try ChildProcess.run(direct ? arguments : [tool] + arguments, environment: environment)
        #expect(!run.timedOut, "drops-run ran past its time: \(run.stderr.suffix(3000))")
        return Result(status: run.status, stdout: run.stdout, stderr: run.stderr)
    }
}

/// The selftest image booted the way a PC boots it, through drops-run: QEMU's PXE ROM gets
/// its boot loader from our own TFTP server, the loader fetches every module from it, and
/// the probe's report is compared with the manifest. Each chain, a second NIC model, and
/// the failures drops-run must name.
@Suite(.serialized) struct NetworkBootTests {
    func selftest(_ out: TemporaryDirectory) throws -> BuildResult {
        try #require(SelftestBootTests.ready, "run `make probe` and install qemu-system-x86 first")
        let plan = try Planner.plan(try ProfileLoader(directory: Repository.profiles).load("selftest"), options: PlanOptions())
        let result = try ImageBuilder().build(plan, outputRoot: out.path)
        try #require(result.manifest.bootPaths.first { $0.name == "pxelinux" }?.usable == true, "install pxelinux and syslinux-common (make deps)")
        return result
    }

    /// Three probe images without quotes (see shortChain).
    static let shortProfile = """
        description = "three probe images"
        api = "multiboot"
        search_path = ["\(Repository.probeBuild)"]
        milestones = [{ pattern = "DROPS-PROBE hello", timeout = 60 }, { pattern = "DROPS-PROBE end", timeout = 30 }]
        [loader]
        name = "probe"
        role = "multiboot"
        args = "-serial"
        [[module]]
        name = "fiasco"
        role = "kernel"
        args = "-nokdb -comport 1"
        [[module]]
        name = "sigma0"
        role = "sigma0"
        [[module]]
        name = "names"
        role = "server"
        args = "--verbose=0"
        """

    /// Three probe images without quotes: small enough for iPXE's own multiboot loader, and a
    /// command line GRUB 2 passes unchanged.
    func shortChain(_ out: TemporaryDirectory) throws -> BuildResult {
        try #require(SelftestBootTests.ready, "run `make probe` and install qemu-system-x86 first")
        out.write("profiles/short.toml", text: Self.shortProfile)
        let plan = try Planner.plan(try ProfileLoader(directory: out.path + "/profiles").load("short"), options: PlanOptions())
        return try ImageBuilder().build(plan, outputRoot: out.path + "/out")
    }

    /// Boots `result` with `arguments`, expects every module verified and fetched from our
    /// server, with the loader files in `also`, and returns the run for more checks.
    func bootVerified(_ result: BuildResult, _ arguments: [String], also: [String],
                      sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> DropsRunTool.Result {
        let run = try DropsRunTool.run([result.directory] + arguments + ["--json"])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))", sourceLocation: sourceLocation)
        #expect(run.verifiedModules == result.manifest.modules.count, sourceLocation: sourceLocation)
        expectEveryModuleServed(run, result, also: also, sourceLocation: sourceLocation)
        return run
    }

    func expectEveryModuleServed(_ run: DropsRunTool.Result, _ result: BuildResult, also: [String],
                                 sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let served = run.served
        for path in [result.manifest.firstStage.path] + result.manifest.modules.map(\.path) + also {
            #expect(served.contains(path), "\(path) was not fetched from our server: \(served.sorted())", sourceLocation: sourceLocation)
        }
    }

    @Test func ipxeChainHandsTheLargeSelftestToPXELinux() throws {
        let out = TemporaryDirectory("drops-net")
        let result = try selftest(out)
        let run = try bootVerified(result, ["--chain", "ipxe"], also: ["boot.ipxe", "lpxelinux.0", "pxelinux.cfg/default", "mboot.c32"])
        #expect(run.stderr.contains("has its DHCP lease and asks our server for"))
        #expect(run.stderr.contains("served bin/ramdisk.img (4.0 MiB"))
        Self.expectConfiguration(run, from: "roottask from module 3 (-configfile)")
    }

    @Test func ipxeLoadsASmallChainItself() throws {
        let out = TemporaryDirectory("drops-net")
        let result = try shortChain(out)
        let run = try bootVerified(result, ["--chain", "ipxe"], also: ["boot.ipxe"])
        #expect(!run.served.contains("lpxelinux.0"))
        // iPXE passes each image's URI as the first word of its command line.
        let modules = run.summary["modules"] as? [[String: Any]] ?? []
        #expect((modules.first?["cmdline"] as? String)?.hasPrefix("tftp://10.0.2.2:") == true, "\(modules)")
    }

    @Test func pxelinuxChainOnASecondNICModel() throws {
        let out = TemporaryDirectory("drops-net")
        let result = try selftest(out)
        let run = try bootVerified(result, ["--chain", "pxelinux", "--nic", "rtl8139"], also: ["lpxelinux.0", "ldlinux.c32", "mboot.c32"])
        #expect(run.stderr.contains("rtl8139"))
        Self.expectConfiguration(run, from: "roottask from module 3 (-configfile)")
    }

    /// The selftest's roottask configuration has quotes (task modname "names"), which GRUB 2
    /// would pass with a backslash before each: the tree delivers it as bin/roottask.cfg with
    /// -configfile, and what roottask would parse is checked from the probe's report.
    @Test func grubChainDeliversTheRoottaskConfigurationAsAFile() throws {
        try #require(GrubNetImage.unavailableReason() == nil, "install grub-pc-bin (make deps)")
        let out = TemporaryDirectory("drops-net")
        let result = try selftest(out)
        #expect(result.manifest.rootTaskConfiguration?.module == "bin/roottask.cfg")
        let run = try bootVerified(result, ["--chain", "grub"], also: [GrubNetImage.Platform.bios.entry, Grub2Config.fileName])
        Self.expectConfiguration(run, from: "roottask from module 3 (-configfile)")
    }

    /// The same configuration on the command line (config_delivery = "cmdline"): GRUB 2's
    /// backslashes are named, for the module and for what roottask would parse.
    @Test func grubChainShowsWhatACommandLineConfigurationBecomes() throws {
        try #require(GrubNetImage.unavailableReason() == nil, "install grub-pc-bin (make deps)")
        let out = TemporaryDirectory("drops-net")
        out.write("profiles/cmdline.toml", text: """
            include = "\(Repository.profiles)/selftest.toml"
            config_delivery = "cmdline"
            """)
        let plan = try Planner.plan(try ProfileLoader(directory: out.path + "/profiles").load("cmdline"), options: PlanOptions())
        let result = try ImageBuilder().build(plan, outputRoot: out.path + "/out")
        let run = try DropsRunTool.run([result.directory, "--chain", "grub", "--json"])
        #expect(run.status == 1, "\(run.stderr.suffix(3000))")
        #expect(run.failedModules == ["roottask"])
        #expect(run.verifiedModules == result.manifest.modules.count - 1)
        #expect(run.stderr.contains("GRUB 2 put a backslash before each quote"))
        let problems = run.summary["problems"] as? [String] ?? []
        #expect(problems.contains { $0.contains("roottask would parse") && $0.contains("config_delivery") }, "\(problems)")
        expectEveryModuleServed(run, result, also: [GrubNetImage.Platform.bios.entry, Grub2Config.fileName])
    }

    /// The run's `--json` says the configuration was verified and where it came from.
    static func expectConfiguration(_ run: DropsRunTool.Result, from source: String,
                                    sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let configuration = run.summary["configuration"] as? [String: Any] ?? [:]
        #expect(configuration["ok"] as? Bool == true, "\(configuration)", sourceLocation: sourceLocation)
        #expect(configuration["source"] as? String == source, "\(configuration)", sourceLocation: sourceLocation)
        #expect(configuration["seen"] as? String == #"task modname "names" boot_priority 0xA0 task modname "l4linux" allow_cli"#, sourceLocation: sourceLocation)
    }

    @Test func grubChainPassesAQuoteFreeChain() throws {
        try #require(GrubNetImage.unavailableReason() == nil, "install grub-pc-bin (make deps)")
        let out = TemporaryDirectory("drops-net")
        let result = try shortChain(out)
        _ = try bootVerified(result, ["--chain", "grub", "--nic", "virtio"], also: [GrubNetImage.Platform.bios.entry, Grub2Config.fileName])
    }

    @Test func moduleDeletedAfterTheBuildIsNamed() throws {
        let out = TemporaryDirectory("drops-net")
        let result = try selftest(out)
        try FileManager.default.removeItem(atPath: result.directory + "/bin/sigma0")
        // Before booting: the tree is checked against its manifest.
        let before = try DropsRunTool.run([result.directory, "--chain", "pxelinux"])
        #expect(before.status == 1)
        #expect(before.stderr.contains("bin/sigma0"), "\(before.stderr)")
        #expect(!before.stderr.contains("starting qemu"))
        // While booting (--no-verify): the guest's request for it ends the run at once, by name.
        let during = try DropsRunTool.run([result.directory, "--chain", "pxelinux", "--no-verify", "--timeout", "100"])
        #expect(during.status == 1, "\(during.stderr.suffix(3000))")
        #expect(during.stderr.contains("the guest asked for bin/sigma0, which the manifest lists but the tree does not have"), "\(during.stderr.suffix(2000))")
        #expect(!during.stderr.contains("timed out"))
    }

    @Test func qemusBuiltInServerForComparison() throws {
        let out = TemporaryDirectory("drops-net")
        let result = try selftest(out)
        let run = try DropsRunTool.run([result.directory, "--chain", "pxelinux", "--tftp", "qemu", "--json"])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(run.verifiedModules == result.manifest.modules.count)
        #expect(run.served.isEmpty)
    }

    @Test func kvmAutoFindsAWayToBoot() throws {
        let out = TemporaryDirectory("drops-net")
        let result = try selftest(out)
        let cache = TemporaryDirectory("drops-cache")
        // $DROPS_KVM says auto for both runs (the flag would do the same).
        let environment = ["XDG_CACHE_HOME": cache.path, "DROPS_KVM": "auto"]
        let first = try DropsRunTool.run([result.directory, "--chain", "pxelinux", "--json"], environment: environment)
        #expect(first.status == 0, "\(first.stderr.suffix(3000))")
        #expect(first.verifiedModules == result.manifest.modules.count)
        guard first.stderr.contains("trying again under TCG") else { return }
        // KVM failed here: the next run goes to TCG at once and says why.
        #expect(FileManager.default.fileExists(atPath: cache.path + "/drops/kvm-failures"))
        let second = try DropsRunTool.run([result.directory, "--chain", "pxelinux", "--json"], environment: environment)
        #expect(second.status == 0)
        #expect(second.stderr.contains("KVM failed here before"))
        #expect(!second.stderr.contains("(KVM,"))
    }
}

/// drops-run's checks and exit statuses on the quick QEMU chain.
@Suite(.serialized) struct RunOutcomeTests {
    func selftest(_ out: TemporaryDirectory) throws -> BuildResult {
        try #require(SelftestBootTests.ready, "run `make probe` and install qemu-system-x86 first")
        let plan = try Planner.plan(try ProfileLoader(directory: Repository.profiles).load("selftest"), options: PlanOptions())
        return try ImageBuilder().build(plan, outputRoot: out.path)
    }

    @Test func tapReportsEveryPatternAndModule() throws {
        let out = TemporaryDirectory("drops-run")
        let result = try selftest(out)
        let run = try DropsRunTool.run([result.directory, "--chain", "qemu", "--tap"])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let count = result.manifest.milestones.count + result.manifest.modules.count
        #expect(lines.first == "TAP version 13")
        #expect(lines.contains("1..\(count)"))
        #expect(lines.filter { $0.hasPrefix("ok ") }.count == count)
        #expect(lines.contains { $0.hasPrefix("ok 1 - 'DROPS-PROBE hello' at ") })
    }

    @Test func aPatternThatNeverComesIsATimeoutWithTheConsoleTail() throws {
        let out = TemporaryDirectory("drops-run")
        let result = try selftest(out)
        // -S keeps the virtual CPU stopped: the guest never says anything.
        let run = try DropsRunTool.run([result.directory, "--chain", "qemu", "--timeout", "3", "--qemu-arg", "-S"])
        #expect(run.status == 3, "\(run.stderr)")
        #expect(run.stderr.contains("timed out after 3 s waiting for pattern 1 of 3, 'DROPS-PROBE hello'"), "\(run.stderr)")
        #expect(run.stderr.contains("the guest wrote nothing"))
    }

    @Test func qemuEndingEarlyIsItsOwnFailure() throws {
        let out = TemporaryDirectory("drops-run")
        let result = try selftest(out)
        // The probe ends QEMU after its report; a pattern after that can never come.
        let run = try DropsRunTool.run([result.directory, "--chain", "qemu", "--no-milestones", "--expect", "after the end"])
        #expect(run.status == 4, "\(run.stderr)")
        #expect(run.stderr.contains("QEMU ended with status 33 while waiting for pattern 1 of 1, /after the end/"), "\(run.stderr)")
        #expect(run.stderr.contains("DROPS-PROBE end modules=15"))
    }

    @Test func aFailurePatternEndsTheRunAtOnceWithItsVerdict() throws {
        let out = TemporaryDirectory("drops-run")
        let result = try selftest(out)
        #expect(result.manifest.failures?.contains { $0.verdict == "kernel debugger entered" } == true)
        let run = try DropsRunTool.run([result.directory, "--chain", "qemu", "--fail-on", "DROPS-PROBE module 3 ", "--json"])
        #expect(run.status == 6, "\(run.stderr)")
        let message = run.summary["message"] as? String ?? ""
        #expect(message.hasPrefix(#"failure pattern matched: the console showed "DROPS-PROBE module 3 start="#), "\(message)")
        #expect(message.contains(#"cmdline="roottask.cfg"" (failure pattern /DROPS-PROBE module 3 /) while waiting for pattern 3 of 3"#), "\(message)")
        // The probe writes its report in one burst, so later lines may be read with that one;
        // they count for nothing.
        #expect((run.summary["patterns"] as? [[String: Any]])?.compactMap { $0["seconds"] as? Double }.count == 2, "\(run.summary)")
    }

    /// An --expect of a milestone's own text is not waited for twice; one that came before
    /// its turn is named as such.
    @Test func anExpectThatCameEarlyIsNamed() throws {
        let out = TemporaryDirectory("drops-run")
        let result = try selftest(out)
        let same = try DropsRunTool.run([result.directory, "--chain", "qemu", "--expect", "DROPS-PROBE end", "--json"])
        #expect(same.status == 0, "\(same.stderr)")
        #expect((same.summary["patterns"] as? [Any])?.count == 3)
        // The probe ends QEMU after its last line, so a pattern it printed first can never come again.
        let early = try DropsRunTool.run([result.directory, "--chain", "qemu", "--expect", "PROBE hello"])
        #expect(early.status == 4, "\(early.stderr)")
        #expect(early.stderr.range(of: #"it was on the console already \(serial line [0-9]+ at [0-9]+\.[0-9] s, before"#, options: .regularExpression) != nil, "\(early.stderr)")
        #expect(early.stderr.contains("before pattern 3 ('DROPS-PROBE end') matched") && early.stderr.contains("--no-milestones"), "\(early.stderr)")
    }

    @Test func firstPatternSeenAgainIsAReboot() throws {
        let out = TemporaryDirectory("drops-run")
        let result = try selftest(out)
        // Every module line matches the first pattern: to the watcher the console started over.
        let run = try DropsRunTool.run([result.directory, "--chain", "qemu", "--no-milestones",
                                        "--expect", "DROPS-PROBE module [0-9]+", "--expect", "never"])
        #expect(run.status == 5, "\(run.stderr)")
        #expect(run.stderr.contains("the guest rebooted"))
    }

    @Test func tcgIsTheDefault() throws {
        let out = TemporaryDirectory("drops-run")
        let result = try selftest(out)
        let run = try DropsRunTool.run([result.directory, "--chain", "qemu", "--dry-run"], environment: ["DROPS_KVM": ""])
        #expect(run.status == 0)
        #expect(run.stdout.contains(" -accel tcg "), "\(run.stdout)")
        let kvm = try DropsRunTool.run([result.directory, "--chain", "qemu", "--dry-run", "--kvm", "on"], environment: ["DROPS_KVM": ""])
        #expect(kvm.stdout.contains(" -accel kvm "), "\(kvm.stdout)")
    }

    @Test func badRegularExpressionIsAUsageError() throws {
        let run = try DropsRunTool.run(["/nonexistent", "--expect", "([x"])
        #expect(run.status == 2)
        #expect(run.stderr.contains("--expect '([x' is not a valid regular expression"))
        let nic = try DropsRunTool.run(["/nonexistent", "--nic", "3c509"])
        #expect(nic.status == 2)
        #expect(nic.stderr.contains("e1000"))
    }

    @Test func buildFirstThenBoot() throws {
        try #require(SelftestBootTests.ready, "run `make probe` and install qemu-system-x86 first")
        let out = TemporaryDirectory("drops-run")
        // drops-run hands its environment to drops-build, which finds the profiles by it.
        let tool = try #require(CommandLineTests.executable("drops-run"))
        let scratch = TemporaryDirectory("drops-run-out")
        let child = try ChildProcess([tool, "selftest", "--build", "--out", out.path, "--chain", "qemu", "-q"],
                                     output: scratch.path + "/stdout", errors: scratch.path + "/stderr",
                                     environment: ["DROPS_KVM": "off", "DROPS_PROFILES_DIR": Repository.profiles])
        let status = child.wait()
        let stdout = (try? String(contentsOfFile: scratch.path + "/stdout", encoding: .utf8)) ?? ""
        #expect(status == 0, "\((try? String(contentsOfFile: scratch.path + "/stderr", encoding: .utf8)) ?? "")")
        #expect(stdout.contains("verified 15 modules"))
        #expect(FileManager.default.fileExists(atPath: out.path + "/selftest/manifest.json"))
    }
}

@Suite struct CommandLineFormTests {
    @Test func pathFormComparesTheFirstWordByItsLastComponent() throws {
        let first = Manifest.Module(name: "probe", role: .bootstrap, delivery: .boot, path: "bin/probe", size: 1, sha256: "aa",
                                    cmdline: "probe -serial", source: "", inspection: "", modaddr: nil)
        let module = Manifest.Module(name: "sigma0", role: .sigma0, delivery: .boot, path: "bin/sigma0", size: 2, sha256: "bb",
                                     cmdline: "sigma0 -v a/b", source: "", inspection: "", modaddr: nil)
        let manifest = Manifest(format: 1, tool: "", profile: .init(name: "t", description: "", api: .l4env, arch: .ia32, sha256: ""),
                                variables: [:], firstStage: first, modules: [module], runtimeFiles: [], bootPaths: [],
                                milestones: [], files: [])
        let transcript = """
            DROPS-PROBE hello version=1
            DROPS-PROBE boot magic=0x2badb002 flags=0x0000026d cmdline="bin/probe -serial"
            DROPS-PROBE module 0 start=0x00106000 size=2 sha256=bb cmdline="bin/sigma0 -v a/b"
            DROPS-PROBE end modules=1
            """
        #expect(ProbeCheck(manifest: manifest, report: ProbeReport.parse(transcript), form: .path).ok)
        // The exact form does not accept the path, and the path form does not accept another name.
        #expect(!ProbeCheck(manifest: manifest, report: ProbeReport.parse(transcript), form: .name).ok)
        let renamed = transcript.replacingOccurrences(of: "bin/sigma0 -v", with: "bin/sigma1 -v")
        #expect(!ProbeCheck(manifest: manifest, report: ProbeReport.parse(renamed), form: .path).ok)
        // iPXE's form: the image's full URI as the first word.
        let uri = transcript.replacingOccurrences(of: "\"bin/", with: "\"tftp://10.0.2.2:40000/bin/")
        #expect(ProbeCheck(manifest: manifest, report: ProbeReport.parse(uri), form: .path).ok)
    }

    @Test func networkCommandPointsTheFirmwareAtOurPort() {
        let first = Manifest.Module(name: "probe", role: .bootstrap, delivery: .boot, path: "bin/probe", size: 1, sha256: "",
                                    cmdline: "probe", source: "", inspection: "", modaddr: nil)
        let manifest = Manifest(format: 1, tool: "", profile: .init(name: "t", description: "", api: .l4env, arch: .ia32, sha256: ""),
                                variables: [:], firstStage: first, modules: [], runtimeFiles: [], bootPaths: [], milestones: [], files: [])
        let command = QEMUCommand.network(manifest: manifest, entry: "lpxelinux.0", port: 40123, machine: MachineOptions(nic: "rtl8139"))
        #expect(command.arguments.contains("user,id=n0,bootfile=tftp://10.0.2.2:40123/lpxelinux.0"))
        #expect(command.arguments.contains("rtl8139,netdev=n0"))
        #expect(command.arguments.suffix(2) == ["-boot", "n"])
        #expect(!command.arguments.contains("-kernel"))
    }
}
