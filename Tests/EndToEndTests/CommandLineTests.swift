import DropsModel
import DropsTestSupport
import Foundation
import Testing

/// Runs the built executables the way a person does and checks exit status, the one-line
/// error, and that a failed build leaves the output tree alone.
@Suite struct CommandLineTests {
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func executable(_ name: String) -> String? {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        for folder in [testBinary, Repository.root + "/.build/debug", Repository.root + "/.build/release"] {
            if FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") { return "\(folder)/\(name)" }
        }
        return nil
    }

    func run(_ name: String, _ arguments: [String], in directory: String, environment: [String: String] = [:]) throws -> Run {
        let path = try #require(Self.executable(name), "build the tools first (make build)")
        // The variables a user may have set are removed (an empty value removes).
        var merged = ["DROPS_SEARCH_PATH": "", "DROPS_PROFILES_DIR": ""]
        for (key, value) in environment { merged[key] = value }
        let result = try ChildProcess.run([path] + arguments, directory: directory, environment: merged)
        #expect(!result.timedOut, "\(name) \(arguments) ran past its time")
        return Run(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    /// A work folder with profiles/, fake components and an existing out/NAME tree with a marker.
    func workspace() -> (TemporaryDirectory, String) {
        let work = TemporaryDirectory("drops-cli")
        let components = Repository.fakeComponents(in: work)
        try? FileManager.default.createDirectory(atPath: work.path + "/profiles", withIntermediateDirectories: true)
        for name in ["v2", "l4env"] {
            try? FileManager.default.copyItem(atPath: "\(Repository.profiles)/\(name).toml", toPath: "\(work.path)/profiles/\(name).toml")
        }
        work.write("out/v2/marker", text: "the old tree\n")
        return (work, components)
    }

    func expectOneLineFailure(_ run: Run, mentioning words: [String], sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(run.status == 1, "stderr: \(run.stderr)", sourceLocation: sourceLocation)
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(run.stderr)", sourceLocation: sourceLocation)
        #expect(run.stderr.hasPrefix("drops-build: error: "), sourceLocation: sourceLocation)
        for word in words {
            #expect(run.stderr.contains(word), "missing '\(word)' in: \(run.stderr)", sourceLocation: sourceLocation)
        }
    }

    func expectOldTreeUntouched(_ work: TemporaryDirectory, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: work.path + "/out/v2")) ?? []
        #expect(entries == ["marker"], sourceLocation: sourceLocation)
        let hidden = ((try? FileManager.default.contentsOfDirectory(atPath: work.path + "/out")) ?? []).filter { $0.hasPrefix(".") }
        #expect(hidden.isEmpty, "leftover staging folders: \(hidden)", sourceLocation: sourceLocation)
    }

    @Test func buildsAndReplacesTheOldTree() throws {
        let (work, components) = workspace()
        let result = try run("drops-build", ["profile", "v2", "--search-path", components, "--json"], in: work.path)
        #expect(result.status == 0, "\(result.stderr)")
        struct Summary: Decodable { var directory: String; var manifest: Manifest }
        let summary = try JSONDecoder().decode(Summary.self, from: Data(result.stdout.utf8))
        #expect(summary.manifest.profile.name == "v2")
        #expect(summary.manifest.modules.map(\.name) == ["fiasco", "sigma0", "l4linux", "ramdisk.img"])
        #expect(!FileManager.default.fileExists(atPath: work.path + "/out/v2/marker"))
        let verify = try run("drops-build", ["verify", "out/v2"], in: work.path)
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("match the manifest"))
    }

    @Test func unknownProfileListsKnownOnes() throws {
        let (work, components) = workspace()
        let result = try run("drops-build", ["profile", "l4emv", "--search-path", components], in: work.path)
        expectOneLineFailure(result, mentioning: ["'l4emv'", "known profiles: l4env, v2"])
    }

    @Test func tomlErrorGivesFileLineColumn() throws {
        let (work, components) = workspace()
        work.write("profiles/v2.toml", text: "api = \"v2\"\n[loader]\nname = \"rmgr\"\nrole = \n")
        let result = try run("drops-build", ["profile", "v2", "--search-path", components], in: work.path)
        expectOneLineFailure(result, mentioning: ["profiles/v2.toml:4:", "TOML"])
        expectOldTreeUntouched(work)
    }

    @Test func wrongValueNamesTheKey() throws {
        let (work, components) = workspace()
        work.write("profiles/v2.toml", text: "api = \"v2\"\n[loader]\nname = \"rmgr\"\nrole = \"rmgr\"\n[[module]]\nname = \"fiasco\"\nrole = \"kernal\"\n")
        let result = try run("drops-build", ["profile", "v2", "--search-path", components], in: work.path)
        expectOneLineFailure(result, mentioning: ["v2.toml:7:1", "module.0.role", "'kernal'"])
        expectOldTreeUntouched(work)
    }

    @Test func missingComponentNamesItAndTheFolders() throws {
        let (work, components) = workspace()
        try FileManager.default.removeItem(atPath: components + "/sigma0")
        let result = try run("drops-build", ["profile", "v2", "--search-path", components], in: work.path)
        expectOneLineFailure(result, mentioning: ["component 'sigma0'", components])
        expectOldTreeUntouched(work)
    }

    @Test func duplicateModuleNamesFail() throws {
        let (work, components) = workspace()
        work.write("profiles/v2.toml", text: "api = \"v2\"\n[loader]\nname = \"rmgr\"\nrole = \"rmgr\"\n[[module]]\nname = \"fiasco\"\nrole = \"kernel\"\n[[module]]\nname = \"fiasco\"\nrole = \"sigma0\"\n")
        let result = try run("drops-build", ["profile", "v2", "--search-path", components], in: work.path)
        expectOneLineFailure(result, mentioning: ["v2.toml:8", "'fiasco' is used twice"])
        expectOldTreeUntouched(work)
    }

    @Test func searchPathThatDoesNotExistFails() throws {
        let (work, _) = workspace()
        let result = try run("drops-build", ["profile", "v2", "--search-path", "/nonexistent/drops-bin"], in: work.path)
        expectOneLineFailure(result, mentioning: ["/nonexistent/drops-bin", "--search-path", "does not exist"])
        expectOldTreeUntouched(work)
    }

    @Test func variableWithNoValueFails() throws {
        let (work, components) = workspace()
        work.write("profiles/v2.toml", text: "api = \"v2\"\n[loader]\nname = \"rmgr\"\nrole = \"rmgr\"\nargs = \"-sigma0 ${rmgr_opts}\"\n[[module]]\nname = \"fiasco\"\nrole = \"kernel\"\n[[module]]\nname = \"sigma0\"\nrole = \"sigma0\"\n")
        let result = try run("drops-build", ["profile", "v2", "--search-path", components], in: work.path)
        expectOneLineFailure(result, mentioning: ["${rmgr_opts}", "--set rmgr_opts=VALUE"])
        expectOldTreeUntouched(work)
        let fixed = try run("drops-build", ["profile", "v2", "--search-path", components, "--set", "rmgr_opts=-verbose"], in: work.path)
        #expect(fixed.status == 0, "\(fixed.stderr)")
    }

    @Test func wrongBinaryIsRefusedBeforeAnythingIsWritten() throws {
        let (work, components) = workspace()
        work.write("components/fiasco", SyntheticBinary.elf(elfClass: 2, machine: 62))
        let result = try run("drops-build", ["profile", "v2", "--search-path", components], in: work.path)
        expectOneLineFailure(result, mentioning: ["'fiasco'", "ELF64 x86-64", "ELF32 i386"])
        expectOldTreeUntouched(work)
    }

    @Test func usageErrorsExitTwo() throws {
        let (work, _) = workspace()
        #expect(try run("drops-build", ["profile"], in: work.path).status == 2)
        #expect(try run("drops-build", ["profile", "v2", "--set", "novalue"], in: work.path).status == 2)
        #expect(try run("drops-build", ["frobnicate"], in: work.path).status == 2)
        #expect(try run("drops-run", ["x", "--timeout", "-1"], in: work.path).status == 2)
    }

    /// --network and --tftp-port: combinations that cannot work are refused, each naming why.
    @Test func networkOptionsThatCannotWorkAreRefused() throws {
        let (work, _) = workspace()
        for (arguments, words) in [
            (["--network", "private", "--tap-device", "tap9"], "makes its own tap device"),
            (["--network", "private", "--chain", "qemu"], "boots from the network"),
            (["--network", "private", "--tftp-port", "6969"], "on the private network drops-serve listens on port 69"),
            (["--tftp-port", "0"], "--tftp-port must be 1 to 65535"),
            (["--tftp-port", "6969", "--iso"], "--tftp-port sets the port of our own server"),
            (["--network", "wide"], "wide"),
        ] {
            let result = try run("drops-run", ["x"] + arguments, in: work.path)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.contains(words), "\(arguments): \(result.stderr)")
        }
    }

    /// HTTP options that cannot work: named, exit status 2, nothing built or served.
    @Test func httpOptionsThatCannotWorkAreRefused() throws {
        let (work, _) = workspace()
        for (tool, arguments, words) in [
            ("drops-build", ["profile", "selftest", "--http-base", "https://10.0.0.1"], "is not an http:// URL"),
            ("drops-build", ["profile", "selftest", "--set", "http_base=ftp://x"], "is not an http:// URL"),
            ("drops-run", ["x", "--http", "--chain", "qemu"], "--http serves HTTP beside drops-run's own TFTP server"),
            ("drops-run", ["x", "--http", "--network", "private"], "--http serves HTTP"),
            ("drops-serve", ["tftp", "--http-address", "127.0.0.1"], "--http-address goes with --http-port"),
            ("drops-serve", ["http", "--http-port", "70000"], "--http-port must be 1 to 65535"),
        ] {
            let result = try run(tool, arguments, in: work.path)
            #expect(result.status == 2, "\(tool) \(arguments)")
            #expect(result.stderr.contains(words), "\(tool) \(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: work.path + "/out/selftest"))
    }

    @Test func helpIsThereForEveryCommand() throws {
        let (work, _) = workspace()
        for (tool, args) in [("drops-build", ["--help"]), ("drops-build", ["profile", "--help"]), ("drops-run", ["--help"]), ("drops-serve", ["--help"])] {
            let result = try run(tool, args, in: work.path)
            #expect(result.status == 0)
            #expect(result.stdout.contains("USAGE"))
        }
    }

    @Test func importedMenuBuildsWithItsComponentsFromAnArchive() throws {
        let (work, components) = workspace()
        work.write("menu.lst", text: """
            default 0
            timeout 3
            title v2 from a menu
              kernel (nd)/tftpboot/me/rmgr -sigma0
              module (nd)/tftpboot/me/fiasco -nokdb
              module (nd)/tftpboot/me/sigma0
              modaddr 0x02000000
              module (nd)/tftpboot/me/vmlinuz mem=64M
            """)
        let imported = try run("drops-build", ["import", "menu.lst", "-o", "profiles/mine.toml"], in: work.path)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.contains("menu.lst:2: timeout 3:"))
        #expect(try run("drops-build", ["import", "menu.lst", "-o", "profiles/mine.toml"], in: work.path).stderr.contains("--force"))
        // -q: the notes are only in the profile's comments.
        let quiet = try run("drops-build", ["import", "menu.lst", "-o", "profiles/quiet.toml", "-q"], in: work.path)
        #expect(quiet.status == 0 && quiet.stderr.isEmpty && quiet.stdout.isEmpty, "\(quiet.stderr)")
        #expect(try String(contentsOfFile: work.path + "/profiles/quiet.toml", encoding: .utf8).contains("line 2: timeout 3:"))
        // The components come out of a tar.xz given with --source; nothing in the search path.
        let archive = work.path + "/components.tar.xz"
        let tar = try ChildProcess.run(["/usr/bin/bsdtar", "-c", "-J", "-f", archive, "-C", components, "rmgr", "fiasco", "sigma0", "vmlinuz"])
        #expect(tar.status == 0, "\(tar.stderr)")
        let cache = work.path + "/cache"
        let built = try run("drops-build", ["profile", "mine", "--source", archive, "--json"], in: work.path,
                            environment: ["DROPS_CACHE_DIR": cache])
        #expect(built.status == 0, "\(built.stderr)")
        let menu = try String(contentsOfFile: work.path + "/out/mine/menu.lst", encoding: .utf8)
        #expect(menu.contains("modaddr 0x02000000\nmodule (nd)/mine/bin/vmlinuz mem=64M"))
        #expect(built.stdout.contains("\(archive) (member fiasco)"))
        let show = try run("drops-build", ["show", "mine", "--source", archive], in: work.path)
        #expect(show.stdout.contains("'fiasco' from \(archive)"))
    }

    @Test func fetchWithoutTheNetworkNamesTheMissingPin() throws {
        let (work, _) = workspace()
        let pin = String(repeating: "0", count: 64)
        work.write("profiles/remote.toml", text: """
            api = "multiboot"
            [loader]
            name = "probe"
            role = "multiboot"
            url = "http://127.0.0.1:9/probe"
            sha256 = "\(pin)"
            """)
        let offline = try run("drops-build", ["fetch", "remote", "--offline"], in: work.path,
                              environment: ["DROPS_CACHE_DIR": work.path + "/cache"])
        expectOneLineFailure(offline, mentioning: ["component 'probe'", "--offline", pin, "drops-build fetch"])
        let refused = try run("drops-build", ["fetch", "remote", "--retries", "0"], in: work.path,
                              environment: ["DROPS_CACHE_DIR": work.path + "/cache"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("cannot fetch http://127.0.0.1:9/probe"))
    }

    @Test func listShowsEveryProfileWithItsAPI() throws {
        let (work, _) = workspace()
        let result = try run("drops-build", ["list"], in: work.path)
        #expect(result.status == 0)
        #expect(result.stdout.split(separator: "\n").map { $0.split(separator: " ").prefix(2).joined(separator: " ") } == ["l4env l4env", "v2 v2"])
    }

    @Test func verifyNamesEveryDifference() throws {
        let (work, components) = workspace()
        #expect(try run("drops-build", ["profile", "v2", "--search-path", components], in: work.path).status == 0)
        work.write("out/v2/bin/sigma0", text: "changed")
        try FileManager.default.removeItem(atPath: work.path + "/out/v2/menu.lst")
        let result = try run("drops-build", ["verify", "out/v2", "--json"], in: work.path)
        #expect(result.status == 1)
        #expect(result.stdout.contains("changed: bin/sigma0"))
        #expect(result.stdout.contains("missing: menu.lst"))
    }

    @Test func runDryRunPrintsTheQEMUCommand() throws {
        let (work, components) = workspace()
        #expect(try run("drops-build", ["profile", "v2", "--search-path", components], in: work.path).status == 0)
        let result = try run("drops-run", ["v2", "--dry-run", "--chain", "qemu"], in: work.path)
        #expect(result.status == 0)
        #expect(result.stdout.contains("qemu-system-i386"))
        #expect(result.stdout.contains("-kernel rmgr"))
        let network = try run("drops-run", ["v2", "--dry-run", "--kvm", "off"], in: work.path)
        #expect(network.status == 0)
        #expect(network.stdout.contains("-accel tcg"))
        #expect(network.stdout.contains("bootfile=tftp://10.0.2.2:"))
        #expect(network.stdout.contains("/boot.ipxe"))
        // A module deleted after the build is named before QEMU starts.
        try FileManager.default.removeItem(atPath: work.path + "/out/v2/bin/sigma0")
        let deleted = try run("drops-run", ["v2"], in: work.path)
        #expect(deleted.status == 1)
        #expect(deleted.stderr.contains("missing: bin/sigma0"), "\(deleted.stderr)")
        let missing = try run("drops-run", ["nosuch"], in: work.path)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("out/nosuch"))
    }
}
