import ArgumentParser
import DropsCLI
import DropsImage
import DropsModel
import Foundation

struct ImportMenu: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Write a profile that boots what an existing GRUB menu.lst or L4Re modules.list entry boots.",
        discussion: """
            GRUB legacy menus are read as DROPS developers wrote them: title, kernel and module \
            (with or without '='), (nd) and (hdX,Y) device prefixes, /tftpboot/... paths, \
            modaddr anywhere in the list, RMGR's task configuration on the kernel line, \
            'set NAME = value' with $(NAME) references (they become profile variables), and \
            the global commands. L4Re modules.list files are read with entry, kernel, sigma0, \
            roottask, bootstrap, moe, module, modaddr, default-kernel, default-bootstrap, \
            module-group and include.

            The profile keeps the modules, their order and their command lines. Each module is \
            named after its file (bin/NAME), and every folder the menu loaded files from that \
            exists here goes into search_path; --map rewrites the menu's paths first. Roles come \
            from the first stage's fixed slots (bootstrap: kernel, sigma0, root task; RMGR: \
            kernel, then sigma0 with -sigma0), from -configfile/-symbols/-lines, and from the \
            file names; the API is the first whose rules the chain meets (l4env, v2, x0, x2, \
            l4re, multiboot), or --api.

            Every line the profile cannot reproduce is reported with its line number (on \
            stderr, and as comments at the top of the profile). A line that cannot be read at \
            all is an error naming file:line and its text.

            Examples:
              drops-build import /tftpboot/jork/menu.lst --entry 0 --map /tftpboot/jork=$HOME/drops -o profiles/printf.toml
              drops-build import modules.list --entry hello -o profiles/hello.toml
              drops-build profile printf
            """)

    @Argument(help: "The menu.lst or modules.list file.")
    var menu: String

    @Option(name: .long, help: ArgumentHelp("The entry to import: its title (modules.list: its name) or its number from 0. Default: the menu's default entry.", valueName: "title|index"))
    var entry: String?

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write the profile here (for example profiles/NAME.toml) instead of printing it.", valueName: "file"))
    var output: String?

    @Flag(name: .long, help: "Replace the output file if it exists.")
    var force = false

    @Option(name: .long, help: ArgumentHelp("Rewrite the menu's paths that start with FROM to start with TO (repeatable), for example /tftpboot/jork=/home/jork/drops.", valueName: "from=to"))
    var map: [String] = []

    @Option(name: .long, help: ArgumentHelp("The menu's format. Default: modules.list when the file name ends in .list or it has 'entry' lines, else menu.lst.", valueName: "menu.lst|modules.list"))
    var format: String?

    @Option(name: .long, help: ArgumentHelp("The API of the profile, instead of the first whose rules fit (\(API.allCases.map(\.rawValue).joined(separator: ", "))).", valueName: "api"))
    var api: String?

    @Option(name: .long, help: ArgumentHelp("The architecture, instead of ia32 (or amd64 when the kernel file is found and is 64-bit).", valueName: "ia32|amd64"))
    var arch: String?

    @OptionGroup var outputOptions: OutputOptions

    func validate() throws {
        for mapping in map where mapping.split(separator: "=", maxSplits: 1).count != 2 || !mapping.hasPrefix("/") {
            throw ValidationError("--map '\(mapping)' must look like /old/prefix=/new/prefix")
        }
        if let api, API(rawValue: api) == nil {
            throw ValidationError("--api '\(api)' is not one of: \(API.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let arch, Architecture(rawValue: arch) == nil {
            throw ValidationError("--arch '\(arch)' is not one of: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let format, !["menu.lst", "modules.list"].contains(format) {
            throw ValidationError("--format '\(format)' is not one of: menu.lst, modules.list")
        }
    }

    struct Report: Encodable {
        var profile: String?
        var origin: String
        var api: String
        var arch: String
        var modules: [String]
        var searchPath: [String]
        var missingFolders: [String]
        var notes: [ImportedProfile.Note]
        var text: String
    }

    func run() throws {
        CommandMain.bootstrapLogging(outputOptions.logLevel)
        let mappings = map.map { pair -> (from: String, to: String) in
            let parts = pair.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), String(parts[1]))
        }
        let options = GrubMenuImporter.Options(entry: entry, mappings: mappings, api: api.flatMap(API.init(rawValue:)),
                                               arch: arch.flatMap(Architecture.init(rawValue:)))
        let imported: ImportedProfile
        do {
            imported = isModulesList()
                ? try ModulesListImporter(options: options).importList(path: menu)
                : try GrubMenuImporter(options: options).importMenu(path: menu)
        } catch {
            throw CommandFailure(error.description)
        }
        let text = ProfileWriter.render(imported)
        if let output {
            try write(text, to: output)
        }
        if outputOptions.json {
            try CommandMain.printJSON(Report(
                profile: output, origin: imported.origin, api: imported.api.rawValue, arch: imported.arch.rawValue,
                modules: [imported.loader.name] + imported.modules.map(\.name), searchPath: imported.searchPath,
                missingFolders: imported.missingFolders, notes: imported.notes, text: text))
            return
        }
        if output == nil { print(text, terminator: "") }
        // -q: the notes stay in the profile's comments, the terminal gets only errors.
        guard !outputOptions.quiet else { return }
        let stderr = FileHandle.standardError
        for note in imported.notes { stderr.write(Data("note: \(note)\n".utf8)) }
        for folder in imported.missingFolders {
            stderr.write(Data("note: folder \(folder) does not exist here; map it with --map \(folder)=DIR or build with --search-path DIR\n".utf8))
        }
        if let output {
            print("wrote \(output): \(imported.api.rawValue) profile with \(imported.modules.count + 1) components from \(imported.origin)")
        }
    }

    func isModulesList() -> Bool {
        if let format { return format == "modules.list" }
        if menu.hasSuffix(".list") { return true }
        guard let data = FileManager.default.contents(atPath: menu) else { return false }
        return String(decoding: data, as: UTF8.self).split(separator: "\n")
            .contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("entry ") }
    }

    /// Written atomically (Foundation writes beside the final name and renames), so a reader
    /// never sees half a profile.
    func write(_ text: String, to path: String) throws {
        if FileManager.default.fileExists(atPath: path), !force {
            throw CommandFailure("\(path) exists; pass --force to replace it, or choose another name with -o")
        }
        let folder = parentDirectory(of: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandFailure("cannot write \(path): the folder \(folder) does not exist; create it first")
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw CommandFailure("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
