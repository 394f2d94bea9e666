import DropsModel
import DropsTestSupport
import Foundation
import Testing

@testable import DropsImage

/// A kernel, module or modaddr line of a GRUB legacy menu reduced to what a round trip must
/// keep: the file name, the command line after it, and the modaddr in force before it.
struct MenuLoadLine: Equatable, CustomStringConvertible {
    var command: String
    var file: String
    var args: String
    var modaddr: String?

    var description: String { "\(modaddr.map { "[modaddr \($0)] " } ?? "")\(command) \(file) \(args)" }

    /// The load lines of entry `index` (or of the only entry), `$(NAME)` expanded, devices and
    /// folders dropped; a modaddr with no module after it is left out, as it has no effect.
    static func lines(of text: String, entry index: Int = 0) -> [MenuLoadLine] {
        var variables: [String: String] = [:]
        var entry = -1
        var result: [MenuLoadLine] = []
        var modaddr: String?
        for raw in text.split(separator: "\n") {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || line.isEmpty { continue }
            for (name, value) in variables { line = line.replacingOccurrences(of: "$(\(name))", with: value) }
            let (command, rest) = GrubMenuImporter.command(line)
            if command == "title" { entry += 1; continue }
            if command == "set" {
                let parts = rest.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                variables[parts[0]] = parts[1]
                continue
            }
            guard entry == index || (index == 0 && entry < 0) else { continue }
            switch command {
            case "modaddr": modaddr = rest
            case "kernel", "module", "initrd":
                let (path, args) = ImportAssembler.splitCommand(rest)
                let file = String(path.split(separator: "/").last ?? "")
                result.append(MenuLoadLine(command: command, file: file, args: ImportAssembler.normalizedArgs(args),
                                           modaddr: command == "kernel" ? nil : modaddr))
                if command != "kernel" { modaddr = nil }
            default: continue
            }
        }
        return result
    }
}

/// Imports a menu, writes the profile, builds it from synthetic binaries of the roles the
/// import chose, and returns the imported profile and the menu.lst drops rendered.
/// `configDelivery` is added to the profile when given: "cmdline" keeps a roottask or RMGR
/// configuration where the menu had it, so the rendered menu can be compared line by line.
func importAndBuild(_ imported: ImportedProfile, in folder: TemporaryDirectory, name: String,
                    configDelivery: String? = "cmdline") throws -> (profile: String, menu: String, tree: String) {
    let text = ProfileWriter.render(imported)
    folder.write("profiles/\(name).toml", text: (configDelivery.map { "config_delivery = \"\($0)\"\n" } ?? "") + text)
    for (index, component) in ([imported.loader] + imported.modules).enumerated() {
        let file = "bin-\(name)/" + (component.file ?? component.name)
        switch index == 0 ? component.role.defaultInspection : (component.role == .linux ? .bzimage : component.role.defaultInspection) {
        case .multiboot: folder.write(file, SyntheticBinary.multibootELF(payload: Array(component.name.utf8)))
        case .elf: folder.write(file, SyntheticBinary.elf(elfClass: imported.arch == .amd64 ? 2 : 1,
                                                          machine: imported.arch.elfMachine, payload: Array(component.name.utf8)))
        case .bzimage: folder.write(file, SyntheticBinary.bzImage())
        case .data: folder.write(file, Array("data of \(component.name)\n".utf8))
        }
    }
    let profile = try ProfileLoader(directory: folder.path + "/profiles").load(name)
    let plan = try Planner.plan(profile, options: PlanOptions(searchPath: [folder.path + "/bin-\(name)"]))
    let result = try quietBuilder().build(plan, outputRoot: folder.path + "/out")
    let menu = try String(contentsOfFile: result.directory + "/" + GrubLegacyMenu.fileName, encoding: .utf8)
    return (text, menu, result.directory)
}

/// `drops-build import` of GRUB legacy menus in the historic DROPS syntax.
@Suite struct GrubMenuImportTests {
    let folder = TemporaryDirectory("drops-import")

    /// Written here in the syntax of the historic DROPS menus: `=` and blank forms, device
    /// prefixes, modaddr between modules, RMGR's task configuration, variables, globals.
    static let labMenu = """
        # lab menu for the spin tests
        serial --unit=0 --speed=115200
        terminal --timeout=0 serial console
        setkey y z
        color light-gray/blue black/light-gray
        timeout = 5
        default=1
        set BIN = /tftpboot/alice/bin
        set SPIN_ARGS = -d 3

        title=Reload
        configfile=(nd)/tftpboot/alice/menu.lst

        title RMGR: spinner  
          kernel = (nd)$(BIN)/rmgr -sigma0 task modname "spinner" boot_priority 0xA0
          module = (nd)$(BIN)/fiasco -nokdb   -serial_esc -comport 1
          module (nd)$(BIN)/sigma0
          modaddr 0x02000000
          module (hd0,1)/boot/l4/names -verbose 2
          module (nd)$(BIN)/x86_586/log
          module (nd)$(BIN)/spinner $(SPIN_ARGS) -y 1
          modaddr 0x03000000
          module (nd)$(BIN)/pattern.bin pattern1
          vbeset 0x117
          boot

        title bootstrap
          kernel (nd)/tftpboot/alice/bin/bootstrap -serial
          module (nd)/tftpboot/alice/bin/fiasco
          module (nd)/tftpboot/alice/bin/sigma0
          module (nd)/tftpboot/alice/bin/roottask -configfile
          module (nd)/tftpboot/alice/bin/roottask.cfg
          module (nd)/tftpboot/alice/bin/names
          module (nd)/tftpboot/alice/bin/dm_phys
          module (nd)/tftpboot/alice/bin/simple_ts
        """

    func imported(_ text: String = labMenu, entry: String? = nil, mappings: [(from: String, to: String)] = []) throws -> ImportedProfile {
        try GrubMenuImporter(options: .init(entry: entry, mappings: mappings)).importMenu(text: text, file: "lab.menu.lst")
    }

    @Test func theDefaultEntryBecomesAProfileWithRolesFromTheSlotsAndTheNames() throws {
        let profile = try imported()
        #expect(profile.description == "RMGR: spinner")
        #expect(profile.api == .v2)
        #expect(profile.loader.name == "rmgr" && profile.loader.role == .rmgr)
        #expect(profile.loader.args == #"-sigma0 task modname "spinner" boot_priority 0xA0"#)
        let rows = profile.modules.map { "\($0.name):\($0.role.rawValue):\($0.args):\($0.modaddr ?? "-")" }
        #expect(rows == [
            "fiasco:kernel:-nokdb -serial_esc -comport 1:-",
            "sigma0:sigma0::-",
            "names:names:-verbose 2:0x02000000",
            "log:log::-",
            "spinner:server:${SPIN_ARGS} -y 1:-",
            "pattern.bin:data:pattern1:0x03000000",
        ])
        #expect(profile.variables.map(\.name) == ["SPIN_ARGS"])
        #expect(profile.variables.first?.value == "-d 3")
        // The folders do not exist on this machine: reported, not written as search_path.
        #expect(profile.searchPath.isEmpty)
        #expect(profile.missingFolders == ["/tftpboot/alice/bin", "/boot/l4", "/tftpboot/alice/bin/x86_586"])
    }

    @Test func everyLineThatIsNotReproducedIsReportedWithItsNumber() throws {
        let notes = try imported().notes
        let lines = notes.map(\.line)
        // serial, terminal, setkey, color, timeout, vbeset, and the note on the other entries.
        #expect(lines.contains(2) && lines.contains(3) && lines.contains(4) && lines.contains(5) && lines.contains(6))
        #expect(notes.contains { $0.line == 24 && $0.text == "vbeset 0x117" })
        #expect(notes.contains { $0.line == 14 && $0.reason.contains("0 'Reload'") && $0.reason.contains("2 'bootstrap'") })
        // default, set, kernel, module, modaddr and boot are all represented.
        for represented in [7, 8, 9, 15, 16, 17, 18, 19, 20, 21, 22, 23, 25] {
            #expect(!lines.contains(represented), "line \(represented) is represented")
        }
    }

    @Test func bootstrapWithConfigfileTakesTheNextModuleAsItsConfiguration() throws {
        let profile = try imported(entry: "bootstrap")
        #expect(profile.api == .l4env)
        #expect(profile.modules.map(\.role) == [.kernel, .sigma0, .roottask, .config, .names, .dm_phys, .simple_ts])
        let byIndex = try imported(entry: "2")
        #expect(byIndex == profile)
    }

    @Test func mapRewritesFoldersSoTheyBecomeTheSearchPath() throws {
        let bin = folder.path + "/alice-bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let profile = try imported(entry: "bootstrap", mappings: [("/tftpboot/alice/bin", bin)])
        #expect(profile.searchPath == [bin])
        #expect(profile.missingFolders.isEmpty)
    }

    @Test func theRenderedMenuOfTheImportedProfileHasTheOriginalsModuleLines() throws {
        for (index, entry) in ["RMGR: spinner", "bootstrap"].enumerated() {
            let profile = try imported(entry: entry)
            let built = try importAndBuild(profile, in: folder, name: "lab\(index)")
            let original = MenuLoadLine.lines(of: Self.labMenu, entry: index + 1)
            #expect(MenuLoadLine.lines(of: built.menu) == original, "entry \(entry)")
            #expect(original.count == profile.modules.count + 1)
        }
    }

    @Test func anUnreadableLineNamesFileLineAndText() throws {
        let menu = "title x\n  kernel (nd)/rmgr\n  modaddr nowhere\n"
        let error = #expect(throws: ImageError.self) { try imported(menu) }
        #expect(error?.description == "lab.menu.lst:3: modaddr takes an address such as 0x02000000: 'modaddr nowhere'")
        let undefined = #expect(throws: ImageError.self) { try imported("title x\n kernel $(KERNEL)/rmgr\n") }
        #expect(undefined?.description.contains("lab.menu.lst:2: $(KERNEL) has no value") == true)
        let unknown = #expect(throws: ImageError.self) { try imported("title x\n kernel /rmgr\n frobnicate 3\n") }
        #expect(unknown?.description.contains("lab.menu.lst:3: 'frobnicate' is not a GRUB legacy command") == true)
        let orphan = #expect(throws: ImageError.self) { try imported("title x\n module /fiasco\n") }
        #expect(orphan?.description.contains("module before the entry's kernel line") == true)
    }

    @Test func anEntryThatDoesNotExistListsTheTitles() throws {
        let error = #expect(throws: ImageError.self) { try imported(entry: "fiasco") }
        #expect(error?.description == "lab.menu.lst has no entry 'fiasco'; its entries are 0: Reload; 1: RMGR: spinner; 2: bootstrap. Pass --entry with one of those titles or its number")
        let notBootable = #expect(throws: ImageError.self) { try imported(entry: "Reload") }
        #expect(notBootable?.description.contains("entry 'Reload' cannot be imported: it has no kernel line") == true)
    }

    @Test func argumentsKeepQuotesAndDollarsThroughTheProfile() throws {
        let menu = "title q\n kernel /b/rmgr -sigma0 task modname \"a b\" cost $5\n module /b/fiasco\n module /b/sigma0\n"
        let profile = try imported(menu)
        let built = try importAndBuild(profile, in: folder, name: "quotes")
        #expect(MenuLoadLine.lines(of: built.menu) == MenuLoadLine.lines(of: menu))
        #expect(built.profile.contains(#"args = "-sigma0 task modname \"a b\" cost $$5""#))
    }

    /// An RMGR or roottask configuration with quotes becomes a generated -configfile module
    /// when the imported profile is built as it is, so GRUB 2 passes it unchanged too.
    @Test func aQuotedConfigurationBuildsAsAConfigurationModule() throws {
        let menu = """
            title sound
             kernel (nd)/tftpboot/USER/bootstrap
             module (nd)/tftpboot/USER/fiasco -nowait -nokdb
             module (nd)/tftpboot/USER/sigma0
             module (nd)/tftpboot/USER/roottask task modname "sounddrv" module
             module (nd)/tftpboot/USER/names
             module (nd)/tftpboot/USER/dm_phys
             module (nd)/tftpboot/USER/simple_ts
            """
        let profile = try imported(menu)
        #expect(profile.modules.first { $0.name == "roottask" }?.args == #"task modname "sounddrv" module"#)
        let built = try importAndBuild(profile, in: folder, name: "sound", configDelivery: nil)
        let grub = try String(contentsOfFile: built.tree + "/" + Grub2Config.fileName, encoding: .utf8)
        #expect(grub.contains("  module /sound/bin/roottask roottask -configfile\n  module /sound/bin/roottask.cfg roottask.cfg\n"), "\(grub)")
        #expect(try String(contentsOfFile: built.tree + "/bin/roottask.cfg", encoding: .utf8) == "#!roottask\ntask modname \"sounddrv\" module\n")
        #expect(built.menu.contains("roottask -configfile"))
    }

    /// GRUB legacy boots the fallback entry when `default` names no entry, else entry 0.
    @Test func aDefaultBeyondTheLastEntryFallsBackAsGRUBLegacyDoes() throws {
        let single = try imported("default 1\ntitle only\n kernel /b/rmgr -sigma0\n module /b/fiasco\n module /b/sigma0\n")
        #expect(single.description == "only")
        #expect(single.notes.contains { $0.line == 1 && $0.reason.contains("boots entry 0 'only'") }, "\(single.notes)")
        let entry = " kernel /b/rmgr -sigma0\n module /b/fiasco\n module /b/sigma0\n"
        let fallback = try imported("default 5\nfallback 1\ntitle a\n\(entry)title b\n\(entry)")
        #expect(fallback.description == "b")
        #expect(fallback.notes.contains { $0.line == 1 && $0.reason.contains("the fallback entry 1 'b'") }, "\(fallback.notes)")
        // An explicit --entry that does not exist stays an error.
        #expect(throws: ImageError.self) { try imported("default 1\ntitle only\n\(entry)", entry: "4") }
    }

    /// Imported profiles wait for what bootstrap, Fiasco and roottask print first.
    @Test func importedProfilesGetTheMilestonesOfTheirComponents() throws {
        let bootstrap = ProfileWriter.render(try imported(entry: "bootstrap"))
        #expect(bootstrap.contains(#"milestones = ["L4 Bootstrapper", "Welcome to Fiasco", "Roottask"]"#), "\(bootstrap)")
        let rmgr = ProfileWriter.render(try imported(entry: "RMGR: spinner"))
        #expect(rmgr.contains(#"milestones = ["Welcome to Fiasco"]"#), "\(rmgr)")
        let loaded = try ProfileDecoder.decode(text: bootstrap, path: "/p.toml")
        #expect(loaded.milestones?.map(\.pattern) == ["L4 Bootstrapper", "Welcome to Fiasco", "Roottask"])
    }

    /// The historic DROPS menus in ../shared, read from there: every entry that boots
    /// something imports, builds, and renders the same module lines.
    @Test func theHistoricDROPSMenusRoundTrip() throws {
        let reference = Repository.root + "/../shared/reference/drops-menu-lst"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: reference))?.sorted() ?? []
        guard !files.isEmpty else { return }
        var imported = 0
        for name in files {
            let path = reference + "/" + name
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let titles = text.split(separator: "\n").filter { GrubMenuImporter.command($0.trimmingCharacters(in: .whitespaces)).0 == "title" }
            for index in titles.indices {
                let original = MenuLoadLine.lines(of: text, entry: index)
                guard original.contains(where: { $0.command == "kernel" }) else { continue }
                let profile = try GrubMenuImporter(options: .init(entry: String(index))).importMenu(path: path)
                let built = try importAndBuild(profile, in: folder, name: "ref\(imported)")
                #expect(MenuLoadLine.lines(of: built.menu) == original, "\(name) entry \(index)")
                imported += 1
            }
        }
        #expect(imported >= files.count)
    }
}

/// `drops-build import` of L4Re modules.list files.
@Suite struct ModulesListImportTests {
    let folder = TemporaryDirectory("drops-modlist")

    func write() -> String {
        folder.write("lists/common.list", text: """
            # shared settings
            default-kernel fiasco -serial_esc
            modaddr 0x01100000
            module-group base
            module l4re
            module ned
            """)
        return folder.write("lists/modules.list", text: """
            include common.list

            entry hello
            roottask moe rom/hello.cfg
            module-group base
            module hello.cfg
            module hello

            entry shell
            bootstrap bootstrap -serial
            kernel fiasco -jdb_cmd=JH
            moe shell.cfg
            module-group base
            module[shell] echo $L4DIR/bin/*.so
            module[uncompress] tools/lua.gz
            module io
            modaddr 0x02000000
            """)
    }

    func imported(_ entry: String?) throws -> ImportedProfile {
        try ModulesListImporter(options: .init(entry: entry)).importList(path: write())
    }

    @Test func anEntryGetsTheDefaultsTheImplicitSigma0AndItsGroup() throws {
        let profile = try imported("hello")
        #expect(profile.api == .l4re)
        #expect(profile.loader.name == "bootstrap" && profile.loader.args == "-modaddr 0x01100000")
        let rows = profile.modules.map { "\($0.name):\($0.role.rawValue):\($0.args)" }
        #expect(rows == ["fiasco:kernel:-serial_esc", "sigma0:sigma0:", "moe:moe:rom/hello.cfg", "l4re:server:",
                         "ned:ned:", "hello.cfg:config:", "hello:server:"])
    }

    @Test func moeShorthandOwnLinesAndModuleVariants() throws {
        let profile = try imported("shell")
        #expect(profile.loader.args == "-serial -modaddr 0x02000000")
        let rows = profile.modules.map { "\($0.name):\($0.role.rawValue):\($0.args)" }
        #expect(rows == ["fiasco:kernel:-jdb_cmd=JH", "sigma0:sigma0:", "moe:moe:rom/shell.cfg", "shell.cfg:config:",
                         "l4re:server:", "ned:ned:", "lua.gz:data:", "io:io:"])
        #expect(profile.modules.first { $0.name == "lua.gz" }?.file == "tools/lua.gz")
        let notes = profile.notes.map { "\(($0.file as NSString).lastPathComponent):\($0.line)" }
        #expect(notes.contains("modules.list:14") && notes.contains("modules.list:15"))
    }

    @Test func theImportedEntryBuilds() throws {
        let profile = try imported("hello")
        let built = try importAndBuild(profile, in: folder, name: "hello")
        #expect(built.menu.contains("module (nd)/hello/bin/moe rom/hello.cfg"))
        #expect(built.menu.contains("kernel (nd)/hello/bin/bootstrap -modaddr 0x01100000"))
    }

    @Test func errorsNameTheEntriesAndTheLine() throws {
        let missing = #expect(throws: ImageError.self) { try imported(nil) }
        #expect(missing?.description.contains("its entries are 0: hello; 1: shell") == true)
        folder.write("lists/bad.list", text: "entry x\nkernel fiasco\nmodule-group nothing\n")
        let group = #expect(throws: ImageError.self) {
            try ModulesListImporter().importList(path: folder.path + "/lists/bad.list")
        }
        #expect(group?.description.contains("bad.list:3: no module-group 'nothing'") == true)
        folder.write("lists/loop.list", text: "include loop.list\n")
        let loop = #expect(throws: ImageError.self) {
            try ModulesListImporter().importList(path: folder.path + "/lists/loop.list")
        }
        #expect(loop?.description.contains("in a loop") == true)
    }
}
