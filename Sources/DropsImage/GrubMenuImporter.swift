import DropsModel
import Foundation

/// Reads GRUB legacy `menu.lst` files as DROPS developers wrote them and turns one entry
/// into a profile: `title`, `kernel`/`module` with or without `=`, `(nd)` and `(hdX,Y)`
/// device prefixes, `modaddr` anywhere in the list, `set NAME = value` with `$(NAME)`
/// references, and the global commands (`default`, `timeout`, `serial`, …), each of which
/// is either used or reported with its line number.
public struct GrubMenuImporter {
    public struct Options: Sendable {
        /// `--entry`: a title or an index from 0; nil takes the menu's `default`.
        public var entry: String?
        /// `--map FROM=TO`: path prefixes rewritten before folders are looked up.
        public var mappings: [(from: String, to: String)] = []
        public var api: API?
        public var arch: Architecture?

        public init(entry: String? = nil, mappings: [(from: String, to: String)] = [], api: API? = nil, arch: Architecture? = nil) {
            self.entry = entry
            self.mappings = mappings
            self.api = api
            self.arch = arch
        }
    }

    /// One `title` block with its lines (numbers from 1).
    struct Entry {
        var title: String
        var line: Int
        var lines: [(number: Int, command: String, rest: String, text: String)] = []
    }

    /// Commands GRUB legacy knows that a profile has no place for, and what to tell the user.
    static let globalNotes: [String: String] = [
        "serial": "the generated menus set their own serial console (COM1, 115200 baud)",
        "terminal": "the generated menus set their own terminal (serial, then console)",
        "timeout": "the generated menus boot at once (timeout 0)",
        "fallback": "the generated menus have one entry, so there is nothing to fall back to",
        "color": "menu colours are not part of a profile",
        "setkey": "keyboard remapping is not part of a profile; set it in your own boot loader",
        "hiddenmenu": "the generated menus have one entry and show no menu",
        "password": "a menu password is not part of a profile",
        "splashimage": "a splash image is not part of a profile",
        "foreground": "menu colours are not part of a profile",
        "background": "menu colours are not part of a profile",
    ]
    static let entryNotes: [String: String] = [
        "vbeset": "drops' menus set no VESA mode; set it in your own boot loader or give the kernel a video option",
        "root": "drops' menus load every file from the image tree on the boot server",
        "rootnoverify": "drops' menus load every file from the image tree on the boot server",
        "ifconfig": "the boot paths configure the network themselves (DHCP)",
        "dhcp": "the boot paths configure the network themselves (DHCP)",
        "bootp": "the boot paths configure the network themselves (DHCP)",
        "rarp": "the boot paths configure the network themselves (DHCP)",
        "tftpserver": "the boot paths use the server the PC booted from",
        "configfile": "an entry that loads another menu is not a system; import that menu file instead",
        "pause": "drops' menus do not stop for a key",
        "chainloader": "chain-loading another boot sector is not a Multiboot system",
        "makeactive": "partition flags are not part of a profile",
        "savedefault": "the generated menus have one entry",
        "lock": "a menu password is not part of a profile",
        "map": "drive mapping is not part of a profile",
        "uppermem": "memory size overrides are not part of a profile; QEMU's -m or the PC decides",
        "displaymem": "an informational command",
    ]

    public var options: Options

    public init(options: Options = Options()) {
        self.options = options
    }

    public func importMenu(path: String) throws(ImageError) -> ImportedProfile {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw .unreadable(path: path, reason: "no such file or no permission")
            }
            text = String(decoding: data, as: UTF8.self)
        }
        return try importMenu(text: text, file: path)
    }

    public func importMenu(text: String, file: String) throws(ImageError) -> ImportedProfile {
        var assembler = ImportAssembler(file: file, mappings: options.mappings)
        var variables: [ImportedProfile.Variable] = []
        var entries: [Entry] = []
        var defaultLine: (number: Int, text: String, index: Int)?
        var fallbackIndex: Int?
        var globals: [(number: Int, text: String, command: String)] = []

        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            let line = raw.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if line.isEmpty || line.hasPrefix("#") { continue }
            let (command, rest) = Self.command(line)
            guard command.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                throw .menuSyntax(SourceLocation(file: file, line: number), text: line,
                                  reason: "this is not a GRUB legacy command (a command word, then its arguments)")
            }
            if command == "title" {
                entries.append(Entry(title: rest, line: number))
                continue
            }
            if command == "set" {
                let assignment = rest.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard assignment.count == 2, !assignment[0].isEmpty,
                      assignment[0].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw .menuSyntax(SourceLocation(file: file, line: number), text: line,
                                      reason: "set needs the form 'set NAME = value'")
                }
                let value = try expand(assignment[1], variables: variables, file: file, line: number, text: line)
                variables.removeAll { $0.name == assignment[0] }
                variables.append(ImportedProfile.Variable(name: assignment[0], value: value))
                continue
            }
            if entries.isEmpty {
                if command == "default" {
                    guard let index = Int(rest), index >= 0 else {
                        throw .menuSyntax(SourceLocation(file: file, line: number), text: line,
                                          reason: "default takes the number of an entry, counted from 0")
                    }
                    defaultLine = (number, line, index)
                } else {
                    if command == "fallback" { fallbackIndex = Int(rest.split(separator: " ").first ?? "") }
                    globals.append((number, line, command))
                }
                continue
            }
            entries[entries.count - 1].lines.append((number, command, rest, line))
        }

        let chosen: Int
        if options.entry == nil, let defaultLine, defaultLine.index >= entries.count, !entries.isEmpty {
            // GRUB legacy (stage2.c) boots the fallback entry when `default` names none, else entry 0.
            chosen = fallbackIndex.flatMap { $0 < entries.count ? $0 : nil } ?? 0
            assembler.note(defaultLine.number, defaultLine.text,
                           "the menu has \(entries.count) entr\(entries.count == 1 ? "y" : "ies"), so GRUB legacy boots "
                           + (chosen == fallbackIndex ? "the fallback entry \(chosen)" : "entry 0") + " '\(entries[chosen].title)', and so does this profile")
        } else {
            chosen = try choose(entries, defaultIndex: defaultLine?.index ?? 0, file: file)
        }
        let entry = entries[chosen]
        for global in globals {
            if let reason = Self.globalNotes[global.command] {
                assembler.note(global.number, global.text, reason)
            } else if Self.entryNotes[global.command] != nil || Self.loadCommands.contains(global.command) {
                assembler.note(global.number, global.text, "it stands before the first title, so it belongs to no entry")
            } else {
                throw .menuSyntax(SourceLocation(file: file, line: global.number), text: global.text,
                                  reason: "'\(global.command)' is not a GRUB legacy command drops knows")
            }
        }

        var loader: ImportAssembler.Line?
        var modules: [ImportAssembler.Line] = []
        var pendingModaddr: (value: String, line: Int, text: String)?
        var linux = false
        var usedVariables: Set<String> = []
        for item in entry.lines {
            let at = SourceLocation(file: file, line: item.number)
            switch item.command {
            case "kernel", "module", "modulenounzip", "initrd":
                var (word, rawArgs) = ImportAssembler.splitCommand(item.rest)
                // GRUB legacy's own options before the path (kernel --type=multiboot …).
                while word.hasPrefix("--") {
                    assembler.note(item.number, item.text, "the option \(word) is dropped: drops chooses how to load each file")
                    (word, rawArgs) = ImportAssembler.splitCommand(rawArgs)
                }
                guard !word.isEmpty else {
                    throw .menuSyntax(at, text: item.text, reason: "\(item.command) needs a file name")
                }
                let path = try expand(word, variables: variables, file: file, line: item.number, text: item.text)
                let args = try profileArgs(rawArgs, variables: variables, file: file, line: item.number, text: item.text)
                usedVariables.formUnion(args.used)
                let parsed = ImportAssembler.Line(path: Self.stripDevice(path), args: ImportAssembler.normalizedArgs(args.text),
                                                  line: item.number)
                if item.command == "kernel" {
                    if loader != nil {
                        assembler.note(item.number, item.text, "a second kernel line replaces the first in GRUB legacy; the profile keeps the last one")
                    }
                    loader = parsed
                    modules.removeAll()
                } else {
                    guard loader != nil else {
                        throw .menuSyntax(at, text: item.text, reason: "\(item.command) before the entry's kernel line")
                    }
                    if item.command == "initrd" { linux = true }
                    if item.command == "modulenounzip" {
                        assembler.note(item.number, item.text, "modulenounzip becomes module: drops copies files as they are")
                    }
                    var module = parsed
                    if let modaddr = pendingModaddr {
                        module.modaddr = modaddr.value
                        pendingModaddr = nil
                    }
                    modules.append(module)
                }
            case "modaddr":
                guard parseAddress(item.rest) != nil else {
                    throw .menuSyntax(at, text: item.text, reason: "modaddr takes an address such as 0x02000000")
                }
                if let earlier = pendingModaddr {
                    assembler.note(earlier.line, earlier.text, "no module follows before the next modaddr, so it has no effect")
                }
                pendingModaddr = (item.rest, item.number, item.text)
            case "boot":
                continue
            default:
                if let reason = Self.entryNotes[item.command] ?? Self.globalNotes[item.command] {
                    assembler.note(item.number, item.text, reason)
                } else {
                    throw .menuSyntax(at, text: item.text, reason: "'\(item.command)' is not a GRUB legacy command drops knows")
                }
            }
        }
        if let modaddr = pendingModaddr {
            assembler.note(modaddr.line, modaddr.text, "no module follows it, so it has no effect")
        }
        guard let loader else {
            throw .entryNotBootable(file: file, entry: entry.title, reason: "it has no kernel line")
        }
        let others = entries.enumerated().filter { $0.offset != chosen }.map { "\($0.offset) '\($0.element.title)'" }
        if !others.isEmpty {
            assembler.note(entry.line, "title \(entry.title)", "the other entries are not imported (\(others.joined(separator: ", "))); import each with --entry")
        }
        return try assembler.assemble(
            loader: loader, modules: modules, linux: linux, description: entry.title.isEmpty ? "imported from \(file)" : entry.title,
            origin: "\((file as NSString).lastPathComponent), entry \(chosen) '\(entry.title)'",
            variables: variables.filter { usedVariables.contains($0.name) }, forcedAPI: options.api, forcedArch: options.arch)
    }

    static let loadCommands: Set<String> = ["kernel", "module", "modulenounzip", "initrd", "modaddr", "boot"]

    func choose(_ entries: [Entry], defaultIndex: Int, file: String) throws(ImageError) -> Int {
        let titles = entries.map(\.title)
        guard let requested = options.entry else {
            guard defaultIndex < entries.count else {
                throw .unknownEntry(file: file, requested: "default \(defaultIndex)", titles: titles)
            }
            return defaultIndex
        }
        if let index = titles.firstIndex(of: requested.trimmingCharacters(in: .whitespaces)) { return index }
        if let index = Int(requested), index >= 0, index < entries.count { return index }
        throw .unknownEntry(file: file, requested: requested, titles: titles)
    }

    /// The command word and the rest; GRUB legacy allows `=` (and blanks) between them.
    static func command(_ line: String) -> (String, String) {
        guard let end = line.firstIndex(where: { $0 == " " || $0 == "\t" || $0 == "=" }) else { return (line, "") }
        var rest = line[end...].drop(while: { $0 == " " || $0 == "\t" })
        if rest.first == "=" { rest = rest.dropFirst().drop(while: { $0 == " " || $0 == "\t" }) }
        return (String(line[..<end]), String(rest).trimmingCharacters(in: .whitespaces))
    }

    /// `(nd)/tftpboot/x`, `(hd0,1)/boot/x` → the path; GRUB's device is the boot server here.
    static func stripDevice(_ path: String) -> String {
        guard path.hasPrefix("("), let close = path.firstIndex(of: ")") else { return path }
        return String(path[path.index(after: close)...])
    }

    /// `$(NAME)` replaced by the value of an earlier `set NAME = value`.
    func expand(_ text: String, variables: [ImportedProfile.Variable], file: String, line: Int,
                text original: String) throws(ImageError) -> String {
        try substitute(text, variables: variables, at: SourceLocation(file: file, line: line), original: original,
                       reference: { $1 }, literal: { String($0) }).text
    }

    /// The arguments as the profile keeps them: `$(NAME)` becomes `${NAME}` (the profile's
    /// variable of the same value), and a literal `$` is doubled so it stays literal. Also
    /// returns the names used, which become the profile's variables.
    func profileArgs(_ raw: String, variables: [ImportedProfile.Variable], file: String, line: Int,
                     text original: String) throws(ImageError) -> (text: String, used: Set<String>) {
        try substitute(raw, variables: variables, at: SourceLocation(file: file, line: line), original: original,
                       reference: { name, _ in "${\(name)}" },
                       literal: { $0.replacingOccurrences(of: "$", with: "$$") })
    }

    /// Walks the `$(NAME)` references of `text`, each of which must have a value: `reference`
    /// writes a reference (given its name and value), `literal` the text between them.
    func substitute(_ text: String, variables: [ImportedProfile.Variable], at location: SourceLocation, original: String,
                    reference: (String, String) -> String, literal: (Substring) -> String) throws(ImageError) -> (text: String, used: Set<String>) {
        var output = ""
        var used: Set<String> = []
        var rest = Substring(text)
        while let start = rest.range(of: "$(") {
            output += literal(rest[..<start.lowerBound])
            guard let close = rest[start.upperBound...].firstIndex(of: ")") else {
                throw .menuSyntax(location, text: original, reason: "'$(' without a closing ')'")
            }
            let name = String(rest[start.upperBound..<close])
            guard let value = variables.last(where: { $0.name == name })?.value else {
                throw .menuSyntax(location, text: original,
                                  reason: "$(\(name)) has no value; no 'set \(name) = …' stands before this line")
            }
            output += reference(name, value)
            used.insert(name)
            rest = rest[rest.index(after: close)...]
        }
        return (output + literal(rest), used)
    }
}
