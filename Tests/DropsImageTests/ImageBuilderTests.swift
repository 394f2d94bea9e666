import DropsModel
import DropsTestSupport
import Foundation
import Testing

@testable import DropsImage

/// Building the shipped profiles into trees: what lands on disk and what the manifest says.
@Suite struct ImageBuilderTests {
    let folder = TemporaryDirectory("drops-builder")

    var components: String { folder.path + "/components" }
    var out: String { folder.path + "/out" }

    init() {
        _ = Repository.fakeComponents(in: folder)
    }

    /// A manifest entry as the profile defines it; `file` is the component file, nil when generated.
    struct Row: Equatable, CustomStringConvertible {
        var name: String
        var role: Role
        var cmdline: String
        var file: String?
        var modaddr: String? = nil

        var description: String { "\(name) (\(role.rawValue)) '\(cmdline)'" }
    }

    struct Expected {
        var firstStage: Row
        var modules: [Row]
        var runtime: [Row] = []
    }

    static let linuxArgs = "mem=64M console=ttyS0,115200 root=/dev/ram0 ramdisk_size=16384 load_ramdisk=1"
    static let fiascoArgs = "-nokdb -serial_esc -comport 1 -comspeed 115200"

    static let expected: [String: Expected] = [
        "v2": Expected(
            firstStage: Row(name: "rmgr", role: .rmgr, cmdline: "rmgr -sigma0", file: "rmgr"),
            modules: [
                Row(name: "fiasco", role: .kernel, cmdline: "fiasco \(fiascoArgs)", file: "fiasco"),
                Row(name: "sigma0", role: .sigma0, cmdline: "sigma0", file: "sigma0"),
                Row(name: "l4linux", role: .l4linux, cmdline: "l4linux \(linuxArgs)", file: "vmlinuz", modaddr: "0x02000000"),
                Row(name: "ramdisk.img", role: .ramdisk, cmdline: "ramdisk.img", file: "ramdisk.img"),
            ]),
        "x0": Expected(
            firstStage: Row(name: "rmgr", role: .rmgr, cmdline: "rmgr -sigma0", file: "rmgr"),
            modules: [
                Row(name: "hazelnut", role: .kernel, cmdline: "hazelnut", file: "hazelnut"),
                Row(name: "sigma0", role: .sigma0, cmdline: "sigma0", file: "sigma0"),
                Row(name: "l4linux", role: .l4linux, cmdline: "l4linux \(linuxArgs)", file: "vmlinuz", modaddr: "0x02000000"),
                Row(name: "ramdisk.img", role: .ramdisk, cmdline: "ramdisk.img", file: "ramdisk.img"),
            ]),
        "x2": Expected(
            firstStage: Row(name: "kickstart", role: .kickstart, cmdline: "kickstart", file: "kickstart"),
            modules: [
                Row(name: "pistachio", role: .kernel, cmdline: "pistachio", file: "ia32-kernel"),
                Row(name: "sigma0", role: .sigma0, cmdline: "sigma0", file: "sigma0"),
                Row(name: "l4linux", role: .l4linux, cmdline: "l4linux \(linuxArgs)", file: "vmlinuz"),
                Row(name: "ramdisk.img", role: .ramdisk, cmdline: "ramdisk.img", file: "ramdisk.img"),
            ]),
        "l4env": Expected(
            firstStage: Row(name: "bootstrap", role: .bootstrap, cmdline: "bootstrap -serial", file: "bootstrap"),
            modules: [
                Row(name: "fiasco", role: .kernel, cmdline: "fiasco \(fiascoArgs)", file: "fiasco"),
                Row(name: "sigma0", role: .sigma0, cmdline: "sigma0", file: "sigma0"),
                Row(name: "roottask", role: .roottask, cmdline: "roottask", file: "roottask", modaddr: "0x02000000"),
                Row(name: "names", role: .names, cmdline: "names", file: "names"),
                Row(name: "log", role: .log, cmdline: "log", file: "log"),
                Row(name: "dm_phys", role: .dm_phys, cmdline: "dm_phys", file: "dm_phys"),
                Row(name: "simple_ts", role: .simple_ts, cmdline: "simple_ts", file: "simple_ts"),
                Row(name: "l4io", role: .l4io, cmdline: "l4io", file: "l4io"),
                Row(name: "tftp", role: .tftp, cmdline: "tftp --server=10.0.2.2", file: "tftp"),
                Row(name: "loader", role: .loader, cmdline: "loader --fprov=TFTP /l4env/bin/l4linux.cfg", file: "loader"),
                Row(name: "l4con", role: .l4con, cmdline: "l4con", file: "l4con"),
            ],
            runtime: [
                Row(name: "l4linux.cfg", role: .config, cmdline: "l4linux.cfg", file: nil),
                Row(name: "vmlinuz", role: .l4linux, cmdline: "vmlinuz", file: "vmlinuz"),
                Row(name: "ramdisk.img", role: .ramdisk, cmdline: "ramdisk.img", file: "ramdisk.img"),
            ]),
        "l4re": Expected(
            firstStage: Row(name: "bootstrap", role: .bootstrap, cmdline: "bootstrap -serial", file: "bootstrap"),
            modules: [
                Row(name: "fiasco", role: .kernel, cmdline: "fiasco -serial_esc", file: "fiasco"),
                Row(name: "sigma0", role: .sigma0, cmdline: "sigma0", file: "sigma0"),
                Row(name: "moe", role: .moe, cmdline: "moe rom/drops.cfg", file: "moe"),
                Row(name: "l4re", role: .server, cmdline: "l4re", file: "l4re"),
                Row(name: "ned", role: .ned, cmdline: "ned", file: "ned"),
                Row(name: "drops.cfg", role: .config, cmdline: "drops.cfg", file: nil),
                Row(name: "io", role: .io, cmdline: "io", file: "io"),
                Row(name: "x86-legacy.devs", role: .config, cmdline: "x86-legacy.devs", file: "x86-legacy.devs"),
                Row(name: "l4lx-x86.io", role: .config, cmdline: "l4lx-x86.io", file: "l4lx-x86.io"),
                Row(name: "vmlinuz", role: .l4linux, cmdline: "vmlinuz", file: "vmlinuz"),
                Row(name: "ramdisk.img", role: .ramdisk, cmdline: "ramdisk.img", file: "ramdisk.img"),
            ]),
    ]

    static let shipped = ["v2", "x0", "x2", "l4env", "l4re"]

    func plan(_ name: String, options: PlanOptions = PlanOptions()) throws -> BuildPlan {
        try shippedPlan(name, components: components, options: options)
    }

    func build(_ plan: BuildPlan, into root: String? = nil) throws -> BuildResult {
        try quietBuilder().build(plan, outputRoot: root ?? out)
    }

    func row(_ module: Manifest.Module) -> Row {
        let file: String? = module.source == "generated" ? nil : String(module.source.split(separator: "/").last ?? "")
        return Row(name: module.name, role: module.role, cmdline: module.cmdline, file: file, modaddr: module.modaddr)
    }

    // MARK: the manifest of every shipped profile

    @Test(arguments: shipped)
    func manifestListsTheChainInProfileOrder(name: String) throws {
        let expected = try #require(Self.expected[name])
        let result = try build(try plan(name))
        let manifest = result.manifest
        #expect(result.directory == out + "/" + name)
        #expect(row(manifest.firstStage) == expected.firstStage)
        #expect(manifest.modules.map(row) == expected.modules)
        #expect(manifest.runtimeFiles.map(row) == expected.runtime)
        #expect(manifest.firstStage.delivery == .boot)
        #expect(manifest.modules.allSatisfy { $0.delivery == .boot })
        #expect(manifest.runtimeFiles.allSatisfy { $0.delivery == .runtime })
        for module in [manifest.firstStage] + manifest.modules + manifest.runtimeFiles {
            #expect(module.path == "bin/" + module.name)
            if module.source != "generated" {
                #expect(module.source == components + "/" + (row(module).file ?? ""))
            }
        }
    }

    @Test(arguments: shipped)
    func manifestOnDiskIsTheOneReturned(name: String) throws {
        let result = try build(try plan(name))
        let data = try #require(FileManager.default.contents(atPath: result.directory + "/manifest.json"))
        #expect(try Manifest.decode(data) == result.manifest)
        #expect(data == (try result.manifest.encoded()))
        #expect(data.last == 0x0A)
        let manifest = result.manifest
        #expect(manifest.format == 1)
        #expect(manifest.tool == "drops \(DropsVersion.current)")
        let profile = try ProfileLoader(directory: Repository.profiles).load(name)
        #expect(manifest.profile.name == name)
        #expect(manifest.profile.description == profile.description)
        #expect(manifest.profile.api.rawValue == name)
        #expect(manifest.profile.arch == .ia32)
        #expect(manifest.milestones == profile.milestones)
        #expect(manifest.variables["profile"] == name)
        #expect(manifest.variables["tftp_prefix"] == "/" + name)
    }

    @Test(.enabled(if: sha256sumAvailable), arguments: shipped)
    func modulesAreTheComponentBytesWithTheirSizeAndHash(name: String) throws {
        let result = try build(try plan(name))
        let manifest = result.manifest
        let modules = [manifest.firstStage] + manifest.modules + manifest.runtimeFiles
        let hashes = try coreutilsSHA256(modules.map { result.directory + "/" + $0.path })
        for module in modules {
            let onDisk = try #require(FileManager.default.contents(atPath: result.directory + "/" + module.path))
            #expect(module.size == onDisk.count, "\(module.name)")
            #expect(module.sha256 == hashes[result.directory + "/" + module.path], "\(module.name)")
            if module.source != "generated" {
                #expect(onDisk == FileManager.default.contents(atPath: module.source), "\(module.name)")
            }
        }
    }

    @Test(arguments: shipped)
    func inspectionSummariesFollowTheRoles(name: String) throws {
        let manifest = try build(try plan(name)).manifest
        #expect(manifest.firstStage.inspection == "ELF32 i386, Multiboot header at 0x54 flags 0x3")
        for module in manifest.modules + manifest.runtimeFiles {
            let expected = module.role.defaultInspection == .elf && module.source != "generated" ? "ELF32 i386" : "data"
            #expect(module.inspection == expected, "\(module.name)")
        }
    }

    @Test(.enabled(if: sha256sumAvailable), arguments: shipped)
    func fileListCoversEveryFileButTheManifest(name: String) throws {
        let result = try build(try plan(name))
        let onDisk = snapshot(result.directory)
        #expect(Set(result.manifest.files.map(\.path)) == Set(onDisk.keys).subtracting(["manifest.json"]))
        #expect(result.manifest.files.map(\.path) == result.manifest.files.map(\.path).sorted())
        let hashes = try coreutilsSHA256(result.manifest.files.map { result.directory + "/" + $0.path })
        for file in result.manifest.files {
            #expect(file.size == onDisk[file.path]?.count, "\(file.path)")
            #expect(file.sha256 == hashes[result.directory + "/" + file.path], "\(file.path)")
        }
        var required = ["boot.ipxe", "pxelinux.cfg/default", "grub/grub.cfg", "menu.lst"]
        if pxelinuxInstalled { required += BootLoaderFiles.pxelinux.map(\.treePath) }
        for path in required {
            #expect(result.manifest.files.contains { $0.path == path }, "\(path)")
        }
    }

    @Test(arguments: shipped)
    func menusInTheTreeAreTheRenderedOnes(name: String) throws {
        let plan = try plan(name)
        let result = try build(plan)
        let menu = BootMenu(plan: plan)
        let rendered = [
            "boot.ipxe": IPXEScript.render(menu),
            "pxelinux.cfg/default": PXELinuxConfig.render(menu),
            "grub/grub.cfg": Grub2Config.render(menu),
            "menu.lst": GrubLegacyMenu.render(menu),
        ]
        for (path, text) in rendered {
            let onDisk = try #require(FileManager.default.contents(atPath: result.directory + "/" + path))
            #expect(String(decoding: onDisk, as: UTF8.self) == text, "\(path)")
        }
    }

    @Test(arguments: shipped)
    func bootPathsArePresent(name: String) throws {
        let result = try build(try plan(name))
        let paths = result.manifest.bootPaths
        #expect(paths.map(\.name) == ["qemu-multiboot", "ipxe", "pxelinux", "grub2", "grub-legacy"])
        #expect(paths[0].entry == result.manifest.firstStage.path)
        #expect(paths[2].usable == pxelinuxInstalled)
        for path in paths {
            #expect(FileManager.default.fileExists(atPath: result.directory + "/" + path.entry) || !path.usable, "\(path.name)")
            #expect(!path.reason.isEmpty)
        }
    }

    @Test func largeChainsChainToPXELinux() throws {
        // l4env and l4re have 11 boot modules: more than iPXE's multiboot loader keeps.
        for name in ["l4env", "l4re"] {
            let result = try build(try plan(name))
            let script = try String(contentsOfFile: result.directory + "/boot.ipxe", encoding: .utf8)
            #expect(script.contains("\nchain lpxelinux.0 || goto failed\n"), "\(name)")
            let ipxe = try #require(result.manifest.bootPaths.first { $0.name == "ipxe" })
            #expect(ipxe.usable == pxelinuxInstalled)
        }
        let v2 = try build(try plan("v2"))
        let script = try String(contentsOfFile: v2.directory + "/boot.ipxe", encoding: .utf8)
        #expect(script.contains("\nkernel --name rmgr bin/rmgr -sigma0 || goto failed\n"))
    }

    // MARK: the profile hash

    @Test func profileHashCoversTheTextButNotTheFolder() throws {
        let text = try String(contentsOfFile: Repository.profiles + "/v2.toml", encoding: .utf8)
        let a = TemporaryDirectory("drops-hash-a")
        let b = TemporaryDirectory("drops-hash-b")
        defer { withExtendedLifetime((a, b)) {} }
        let options = PlanOptions(searchPath: [components])
        let inA = try writtenPlan(text, name: "v2", in: a, options: options)
        let inB = try writtenPlan(text, name: "v2", in: b, options: options)
        let changed = try writtenPlan(text + "\n# one more comment\n", name: "v2", in: b, options: options)
        let hashA = try build(inA, into: a.path + "/out").manifest.profile.sha256
        let hashB = try build(inB, into: b.path + "/out").manifest.profile.sha256
        let hashChanged = try build(changed, into: b.path + "/out2").manifest.profile.sha256
        #expect(hashA == hashB)
        #expect(hashA == FileDigest.sha256(Array(text.utf8) + [0]))
        #expect(hashChanged != hashA)
    }

    @Test func profileHashFollowsTheIncludeChain() throws {
        let base = try String(contentsOfFile: Repository.profiles + "/v2.toml", encoding: .utf8)
        let mine = "include = \"v2\"\ndescription = \"mine\"\n"
        let profiles = TemporaryDirectory("drops-include")
        defer { withExtendedLifetime(profiles) {} }
        profiles.write("profiles/v2.toml", text: base)
        let plan = try writtenPlan(mine, name: "mine", in: profiles, options: PlanOptions(searchPath: [components]))
        let manifest = try build(plan).manifest
        #expect(manifest.profile.name == "mine")
        #expect(manifest.profile.description == "mine")
        #expect(manifest.profile.sha256 == FileDigest.sha256(Array(mine.utf8) + [0] + Array(base.utf8) + [0]))
    }

    // MARK: determinism

    @Test(arguments: shipped)
    func sameInputGivesTheSameBytes(name: String) throws {
        let plan = try plan(name)
        let first = try build(plan, into: out + "/a")
        let second = try build(plan, into: out + "/b")
        let a = snapshot(first.directory)
        let b = snapshot(second.directory)
        #expect(!a.isEmpty)
        #expect(a.keys.sorted() == b.keys.sorted())
        for (path, bytes) in a {
            #expect(b[path] == bytes, "\(path) differs between two builds")
        }
        let again = try build(plan, into: out + "/a")
        #expect(again.directory == first.directory)
        #expect(snapshot(again.directory) == a)
        #expect(again.manifest == first.manifest)
    }

    // MARK: atomic output

    func outEntries() -> [String] { entries(out) }

    @Test func rejectedComponentLeavesThePreviousTreeIntact() throws {
        let good = try plan("v2")
        let tree = try build(good).directory
        let before = snapshot(tree)
        var bad = good
        let text = folder.write("not-a-kernel", text: "this is not an ELF file\n")
        bad.modules[0].source = .file(text)
        let error = imageError { () throws(ImageError) in try quietBuilder().build(bad, outputRoot: out) }
        #expect(error == .notELF(component: "fiasco", path: text))
        #expect(snapshot(tree) == before)
        #expect(outEntries() == ["v2"])
    }

    @Test func componentDeletedAfterPlanningLeavesThePreviousTreeIntact() throws {
        let plan = try plan("l4env")
        let tree = try build(plan).directory
        let before = snapshot(tree)
        try FileManager.default.removeItem(atPath: components + "/sigma0")
        let error = imageError { () throws(ImageError) in try quietBuilder().build(plan, outputRoot: out) }
        guard case let .unreadable(path, _) = error else {
            Issue.record("expected unreadable, got \(String(describing: error))")
            return
        }
        #expect(path == components + "/sigma0")
        #expect(error?.description.contains(components + "/sigma0") == true)
        #expect(snapshot(tree) == before)
        #expect(outEntries() == ["l4env"])
        #expect(try TreeVerifier.verify(directory: tree).differences.isEmpty)
    }

    @Test func failedFirstBuildLeavesNothing() throws {
        var plan = try plan("v2")
        plan.firstStage.source = .file(folder.write("broken-rmgr", SyntheticBinary.elf(multibootFlags: 0x3, badChecksum: true)))
        let error = imageError { () throws(ImageError) in try quietBuilder().build(plan, outputRoot: out) }
        guard case .badMultiboot(component: "rmgr", _, _) = error else {
            Issue.record("expected badMultiboot for rmgr, got \(String(describing: error))")
            return
        }
        #expect(outEntries() == [])
    }

    @Test func missingComponentFromAShowPlanIsNotBuilt() throws {
        try FileManager.default.removeItem(atPath: components + "/sigma0")
        let plan = try plan("v2", options: PlanOptions(allowMissing: true))
        #expect(plan.modules.first { $0.name == "sigma0" }?.source == .missing(file: "sigma0"))
        let error = imageError { () throws(ImageError) in try quietBuilder().build(plan, outputRoot: out) }
        guard case let .unreadable(path, reason) = error else {
            Issue.record("expected unreadable, got \(String(describing: error))")
            return
        }
        #expect(path == "sigma0")
        #expect(reason.contains("sigma0"))
        #expect(outEntries() == [])
    }

    @Test func rebuildReplacesTheTreeInsteadOfMerging() throws {
        var plan = try plan("v2")
        let tree = try build(plan).directory
        #expect(FileManager.default.fileExists(atPath: tree + "/bin/ramdisk.img"))
        plan.modules.removeAll { $0.name == "ramdisk.img" }
        let result = try build(plan)
        #expect(!FileManager.default.fileExists(atPath: tree + "/bin/ramdisk.img"))
        #expect(Set(snapshot(tree).keys) == Set(result.manifest.files.map(\.path) + ["manifest.json"]))
        #expect(outEntries() == ["v2"])
    }

    @Test func leftoverStagingFolderIsReplaced() throws {
        let leftover = "\(out)/.v2.partial-\(ProcessInfo.processInfo.processIdentifier)"
        try FileManager.default.createDirectory(atPath: leftover + "/bin", withIntermediateDirectories: true)
        try Data("stale".utf8).write(to: URL(fileURLWithPath: leftover + "/bin/stale"))
        let tree = try build(try plan("v2")).directory
        #expect(!FileManager.default.fileExists(atPath: tree + "/bin/stale"))
        #expect(outEntries() == ["v2"])
    }

    // MARK: run-time files

    @Test func l4envRuntimeFilesStayOutOfTheBootChain() throws {
        let result = try build(try plan("l4env"))
        let runtime = ["l4linux.cfg", "vmlinuz", "ramdisk.img"]
        #expect(result.manifest.runtimeFiles.map(\.name) == runtime)
        #expect(!result.manifest.modules.contains { runtime.contains($0.name) })
        for name in runtime {
            #expect(FileManager.default.fileExists(atPath: result.directory + "/bin/" + name))
        }
        // The images each menu loads are exactly the first stage and the boot modules.
        let chain = ["bootstrap"] + result.manifest.modules.map(\.name)
        let pxelinux = try String(contentsOfFile: result.directory + "/pxelinux.cfg/default", encoding: .utf8)
        let append = try #require(pxelinux.split(separator: "\n").first { $0.hasPrefix("  APPEND ") })
        let appended = append.dropFirst("  APPEND ".count).components(separatedBy: " --- ")
        #expect(appended.map { String($0.split(separator: " ")[0]) } == chain.map { "bin/" + $0 })
        let grub = try String(contentsOfFile: result.directory + "/grub/grub.cfg", encoding: .utf8)
        let grubImages = grub.split(separator: "\n").filter { $0.hasPrefix("  multiboot ") || $0.hasPrefix("  module ") }
        #expect(grubImages.map { String($0.split(separator: " ")[1]) } == chain.map { "/l4env/bin/" + $0 })
        let legacy = try String(contentsOfFile: result.directory + "/menu.lst", encoding: .utf8)
        let legacyImages = legacy.split(separator: "\n").filter { $0.hasPrefix("kernel ") || $0.hasPrefix("module ") }
        #expect(legacyImages.map { String($0.split(separator: " ")[1]) } == chain.map { "(nd)/l4env/bin/" + $0 })
    }

    @Test func ramdiskDeliveryCanBeSwitchedToBoot() throws {
        let result = try build(try plan("l4env", options: PlanOptions(variables: ["ramdisk_delivery": "boot"])))
        #expect(result.manifest.runtimeFiles.map(\.name) == ["l4linux.cfg", "vmlinuz"])
        #expect(result.manifest.modules.last?.name == "ramdisk.img")
        #expect(result.manifest.modules.last?.delivery == .boot)
        let pxelinux = try String(contentsOfFile: result.directory + "/pxelinux.cfg/default", encoding: .utf8)
        #expect(pxelinux.contains(" --- bin/ramdisk.img\n"))
    }

    /// Replaces the ramdisk component with a sparse file of `size` bytes (quick to create).
    func sparseRamdisk(size: Int) throws {
        let path = components + "/ramdisk.img"
        try Data().write(to: URL(fileURLWithPath: path))
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
    }

    @Test func runtimeFileAtTheTFTPLimitIsRefused() throws {
        let limit = ImageBuilder.runtimeFileLimit
        #expect(limit == 65535 * 1432)
        try sparseRamdisk(size: limit)
        let runtimePlan = try plan("l4env")
        let error = imageError { () throws(ImageError) in try quietBuilder().build(runtimePlan, outputRoot: out) }
        guard case let .ruleViolation(message) = error else {
            Issue.record("expected ruleViolation, got \(String(describing: error))")
            return
        }
        #expect(message.contains("ramdisk.img"))
        #expect(message.contains("gzip"))
        #expect(message.contains("\(limit)"))
        #expect(outEntries() == [])
        // As a boot module the same file is fine: the limit is the file provider's.
        let boot = try build(try plan("l4env", options: PlanOptions(variables: ["ramdisk_delivery": "boot"])))
        #expect(boot.manifest.modules.last?.size == limit)
    }

    @Test func runtimeFileJustBelowTheLimitIsAccepted() throws {
        let size = ImageBuilder.runtimeFileLimit - 1
        try sparseRamdisk(size: size)
        let result = try build(try plan("l4env"))
        let ramdisk = try #require(result.manifest.runtimeFiles.first { $0.name == "ramdisk.img" })
        #expect(ramdisk.size == size)
        #expect(try FileDigest.sha256(file: result.directory + "/bin/ramdisk.img").size == size)
    }

    // MARK: generated content

    @Test func l4envConfigIsGeneratedWithVariablesExpanded() throws {
        let options = PlanOptions(variables: ["tftp_prefix": "/srv/l4env"], serverIP: "192.0.2.7")
        let result = try build(try plan("l4env", options: options))
        let config = try #require(FileManager.default.contents(atPath: result.directory + "/bin/l4linux.cfg"))
        #expect(String(decoding: config, as: UTF8.self) == """
            modpath "/srv/l4env/bin"
            task "vmlinuz" "mem=64M console=ttyLv0 root=/dev/ram0 ramdisk_size=16384 l4env_rd=/srv/l4env/bin/ramdisk.img"

            """)
        let entry = try #require(result.manifest.runtimeFiles.first { $0.name == "l4linux.cfg" })
        #expect(entry.source == "generated")
        #expect(entry.inspection == "data")
        #expect(entry.size == config.count)
        let cmdlines = Dictionary(uniqueKeysWithValues: result.manifest.modules.map { ($0.name, $0.cmdline) })
        #expect(cmdlines["tftp"] == "tftp --server=192.0.2.7")
        #expect(cmdlines["loader"] == "loader --fprov=TFTP /srv/l4env/bin/l4linux.cfg")
        #expect(result.manifest.variables["server_ip"] == "192.0.2.7")
        #expect(result.manifest.variables["tftp_prefix"] == "/srv/l4env")
        let grub = try String(contentsOfFile: result.directory + "/grub/grub.cfg", encoding: .utf8)
        #expect(grub.contains("\n  module /srv/l4env/bin/loader loader --fprov=TFTP /srv/l4env/bin/l4linux.cfg\n"))
    }

    @Test func l4reNedScriptIsGeneratedWithVariablesExpanded() throws {
        let result = try build(try plan("l4re"))
        let script = try String(contentsOfFile: result.directory + "/bin/drops.cfg", encoding: .utf8)
        #expect(script.hasPrefix("local L4 = require(\"L4\");\n"))
        #expect(script.contains("\"rom/vmlinuz mem=64M console=ttyLv0 l4x_rd=rom/ramdisk.img root=1:0 ramdisk_size=16384\");\n"))
        #expect(!script.contains("${"))
    }

    // MARK: the probe chain

    static let probeBuilt = ["probe", "fiasco", "sigma0", "roottask", "loader.cfg", "ramdisk.img"]
        .allSatisfy { FileManager.default.fileExists(atPath: Repository.probeBuild + "/" + $0) }

    @Test(.enabled(if: ImageBuilderTests.probeBuilt))
    func selftestBuildsFromTheProbeBinaries() throws {
        let profile = try ProfileLoader(directory: Repository.profiles).load("selftest")
        let plan = try Planner.plan(profile, options: PlanOptions())
        let result = try build(plan)
        #expect(result.manifest.firstStage.name == "probe")
        #expect(result.manifest.firstStage.inspection.contains("Multiboot header at 0x1000"))
        #expect(result.manifest.modules.count == 15)
        #expect(result.manifest.runtimeFiles.isEmpty)
        #expect(try TreeVerifier.verify(directory: result.directory).differences.isEmpty)
        let script = try String(contentsOfFile: result.directory + "/boot.ipxe", encoding: .utf8)
        #expect(script.contains("\nchain lpxelinux.0 || goto failed\n"))
    }
}
