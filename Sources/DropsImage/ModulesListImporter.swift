import DropsModel
import Foundation

/// Reads L4Re `modules.list` files and turns one `entry` into a profile.
///
/// The format: `entry NAME` starts an entry; in it `kernel`, `sigma0` and `roottask` name a
/// binary and its arguments (the first word is the file); `bootstrap` does the same for the
/// first stage; `moe FILE.cfg` is short for `roottask moe rom/FILE.cfg` plus `module FILE.cfg`;
/// `module FILE` adds a module. Before the first entry, `default-kernel` and
/// `default-bootstrap` give what an entry without its own line boots, and `modaddr` the
/// address bootstrap loads modules to (an entry may set its own). `module-group NAME`
/// before the first entry starts a group of `module` lines; inside an entry it adds that group's
/// modules. `include FILE` reads another list (relative to the including file) in place.
/// Sigma0 and moe are what L4Re loads when an entry does not name them.
public struct ModulesListImporter {
    public var options: GrubMenuImporter.Options

    public init(options: GrubMenuImporter.Options = GrubMenuImporter.Options()) {
        self.options = options
    }

    /// One line of the list after includes are read in, with the file it came from.
    struct ListLine {
        var file: String
        var number: Int
        var text: String
        var command: String
        var rest: String
        var location: SourceLocation { SourceLocation(file: file, line: number) }
    }

    public func importList(path: String) throws(ImageError) -> ImportedProfile {
        let lines = try read(path: path, chain: [])
        return try importLines(lines, file: path)
    }

    public func importList(text: String, file: String) throws(ImageError) -> ImportedProfile {
        try importLines(try parse(text: text, file: file, chain: [file]), file: file)
    }

    func read(path: String, chain: [String]) throws(ImageError) -> [ListLine] {
        guard !chain.contains(path) else {
            throw .menuSyntax(SourceLocation(file: chain.last ?? path, line: 1), text: "include \(path)",
                              reason: "the lists include each other in a loop (\((chain + [path]).joined(separator: " -> ")))")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "no such file or no permission")
        }
        return try parse(text: String(decoding: data, as: UTF8.self), file: path, chain: chain + [path])
    }

    func parse(text: String, file: String, chain: [String]) throws(ImageError) -> [ListLine] {
        var result: [ListLine] = []
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if line.isEmpty || line.hasPrefix("#") { continue }
            let (command, rest) = ImportAssembler.splitCommand(line)
            if command == "include" {
                guard !rest.isEmpty else {
                    throw .menuSyntax(SourceLocation(file: file, line: offset + 1), text: line, reason: "include needs a file name")
                }
                result += try read(path: absolutePath(rest, relativeTo: parentDirectory(of: file)), chain: chain)
                continue
            }
            result.append(ListLine(file: file, number: offset + 1, text: line, command: command, rest: rest))
        }
        return result
    }

    /// Each entry's lines, the groups, and the global settings, checked command by command.
    func importLines(_ lines: [ListLine], file: String) throws(ImageError) -> ImportedProfile {
        var assembler = ImportAssembler(file: file, mappings: options.mappings)
        var defaultKernel: (word: String, args: String)?
        var defaultBootstrap: (word: String, args: String)?
        var globalModaddr: String?
        var groups: [String: [ListLine]] = [:]
        var entries: [(name: String, line: ListLine, lines: [ListLine])] = []
        var currentGroup: String?

        let entryCommands: Set<String> = ["kernel", "sigma0", "roottask", "bootstrap", "moe", "module", "modaddr", "module-group", "title"]
        for line in lines {
            switch line.command {
            case "entry":
                guard !line.rest.isEmpty else { throw .menuSyntax(line.location, text: line.text, reason: "entry needs a name") }
                entries.append((line.rest, line, []))
                currentGroup = nil
            case "module-group" where entries.isEmpty || currentGroup != nil:
                guard !line.rest.isEmpty else { throw .menuSyntax(line.location, text: line.text, reason: "module-group needs a name") }
                groups[line.rest] = groups[line.rest] ?? []
                currentGroup = line.rest
            case "default-kernel", "default-bootstrap":
                let (word, args) = ImportAssembler.splitCommand(line.rest)
                guard !word.isEmpty else { throw .menuSyntax(line.location, text: line.text, reason: "\(line.command) needs a file name") }
                if line.command == "default-kernel" { defaultKernel = (word, args) } else { defaultBootstrap = (word, args) }
            case "modaddr" where entries.isEmpty:
                guard parseAddress(line.rest) != nil else {
                    throw .menuSyntax(line.location, text: line.text, reason: "modaddr takes an address such as 0x01100000")
                }
                globalModaddr = line.rest
            default:
                if let group = currentGroup, line.command.hasPrefix("module"), line.command != "module-group" {
                    groups[group, default: []].append(line)
                } else if !entries.isEmpty, entryCommands.contains(line.command) || line.command.hasPrefix("module[") {
                    entries[entries.count - 1].lines.append(line)
                } else if entries.isEmpty, entryCommands.contains(line.command) || line.command.hasPrefix("module[") {
                    throw .menuSyntax(line.location, text: line.text, reason: "'\(line.command)' belongs to an entry, but no 'entry NAME' line stands before it")
                } else {
                    throw .menuSyntax(line.location, text: line.text, reason: "'\(line.command)' is not a modules.list command drops knows")
                }
            }
        }

        let names = entries.map(\.name)
        let chosen: Int
        if let requested = options.entry {
            if let index = names.firstIndex(of: requested) { chosen = index }
            else if let index = Int(requested), index >= 0, index < entries.count { chosen = index }
            else { throw .unknownEntry(file: file, requested: requested, titles: names) }
        } else if entries.count == 1 {
            chosen = 0
        } else {
            throw .unknownEntry(file: file, requested: "(none given)", titles: names)
        }
        let entry = entries[chosen]

        var kernel: ImportAssembler.Line?
        var sigma0: ImportAssembler.Line?
        var roottask: ImportAssembler.Line?
        var bootstrap: ImportAssembler.Line?
        var modules: [ImportAssembler.Line] = []
        var modaddr = globalModaddr
        var description = entry.name
        var pending = entry.lines
        var index = 0
        while index < pending.count {
            let line = pending[index]
            index += 1
            let (word, args) = ImportAssembler.splitCommand(line.rest)
            func parsed(_ role: Role?) throws(ImageError) -> ImportAssembler.Line {
                guard !word.isEmpty else { throw .menuSyntax(line.location, text: line.text, reason: "\(line.command) needs a file name") }
                return ImportAssembler.Line(path: word, args: ImportAssembler.normalizedArgs(args.replacingOccurrences(of: "$", with: "$$")),
                                            line: line.number, role: role)
            }
            switch line.command {
            case "kernel": kernel = try parsed(.kernel)
            case "sigma0": sigma0 = try parsed(.sigma0)
            case "roottask":
                roottask = try parsed(ImportAssembler.roleByName(word) == .moe ? .moe : .roottask)
            case "bootstrap": bootstrap = try parsed(nil)
            case "moe":
                guard !word.isEmpty else { throw .menuSyntax(line.location, text: line.text, reason: "moe needs a configuration file") }
                roottask = ImportAssembler.Line(path: "moe", args: "rom/\(word.split(separator: "/").last ?? Substring(word))", line: line.number, role: .moe)
                modules.append(ImportAssembler.Line(path: word, args: "", line: line.number, role: .config))
            case "module":
                modules.append(try parsed(nil))
            case "modaddr":
                guard parseAddress(line.rest) != nil else {
                    throw .menuSyntax(line.location, text: line.text, reason: "modaddr takes an address such as 0x01100000")
                }
                modaddr = line.rest
            case "module-group":
                guard let members = groups[line.rest] else {
                    throw .menuSyntax(line.location, text: line.text,
                                      reason: "no module-group '\(line.rest)' is defined before the entries (defined: \(groups.keys.sorted().joined(separator: ", ")))")
                }
                pending.insert(contentsOf: members, at: index)
            case "title":
                description = line.rest
            default:
                // module[shell], module[perl], module[glob], module[uncompress], …
                let option = line.command.dropFirst("module[".count).dropLast()
                if option == "uncompress" || option.hasPrefix("fname=") {
                    assembler.note(line.number, line.text, "module[\(option)] becomes a plain module: drops copies the file as it is", in: line.file)
                    modules.append(try parsed(nil))
                } else {
                    assembler.note(line.number, line.text, "module[\(option)] makes its file list by running code when L4Re builds the image; list the resulting files as module lines", in: line.file)
                }
            }
        }

        let kernelLine = kernel ?? ImportAssembler.Line(path: defaultKernel?.word ?? "fiasco", args: defaultKernel?.args ?? "", line: entry.line.number, role: .kernel)
        let sigma0Line = sigma0 ?? ImportAssembler.Line(path: "sigma0", args: "", line: entry.line.number, role: .sigma0)
        let rootLine = roottask ?? ImportAssembler.Line(path: "moe", args: "", line: entry.line.number, role: .moe)
        var loader = bootstrap ?? ImportAssembler.Line(path: defaultBootstrap?.word ?? "bootstrap",
                                                      args: defaultBootstrap?.args ?? "", line: entry.line.number)
        if let modaddr {
            loader.args = loader.args.isEmpty ? "-modaddr \(modaddr)" : "\(loader.args) -modaddr \(modaddr)"
        }
        let others = names.enumerated().filter { $0.offset != chosen }.map { "'\($0.element)'" }
        if !others.isEmpty {
            assembler.note(entry.line.number, entry.line.text, "the other entries are not imported (\(others.joined(separator: ", "))); import each with --entry", in: entry.line.file)
        }
        return try assembler.assemble(
            loader: loader, modules: [kernelLine, sigma0Line, rootLine] + modules, linux: false,
            description: description, origin: "\((file as NSString).lastPathComponent), entry '\(entry.name)'",
            variables: [], forcedAPI: options.api, forcedArch: options.arch)
    }
}
