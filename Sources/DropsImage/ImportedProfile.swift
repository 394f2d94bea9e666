import DropsModel
import Foundation

/// A profile reconstructed from a boot menu another tool wrote (GRUB legacy `menu.lst`,
/// L4Re `modules.list`), with every line that could not be carried over.
public struct ImportedProfile: Sendable, Equatable {
    /// One component as the menu named it.
    public struct Component: Sendable, Equatable {
        /// bin/NAME in the tree: the file name the menu used.
        public var name: String
        public var role: Role
        /// Path relative to a search-path folder, when it is not simply `name`.
        public var file: String?
        public var args: String
        public var modaddr: String?
        /// The folder the menu loaded it from (after `--map`), if it gave one.
        public var folder: String?
        /// Line of the menu that named it.
        public var line: Int
    }

    /// A `set NAME = value` of the menu that the profile's arguments refer to.
    public struct Variable: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    /// A menu line that the profile does not reproduce, and why.
    public struct Note: Sendable, Equatable, CustomStringConvertible, Encodable {
        public var file: String
        public var line: Int
        public var text: String
        public var reason: String

        public var description: String { "\(file):\(line): \(text): \(reason)" }
    }

    public var description: String
    public var api: API
    public var arch: Architecture
    /// Folders the menu loaded files from that exist on this machine, in menu order.
    public var searchPath: [String]
    /// Folders the menu named that do not exist here (the user maps them with `--map`).
    public var missingFolders: [String]
    public var variables: [Variable]
    public var loader: Component
    public var modules: [Component]
    public var notes: [Note]
    /// "menu.lst, entry 2 'title'": where it came from, for the profile's header comment.
    public var origin: String
}

/// What the importers share: turning the loader and module lines of one menu entry into
/// components with roles, and choosing the API whose rules the chain satisfies.
struct ImportAssembler {
    /// A `kernel`/`module` line as the menu wrote it, path already free of device prefixes.
    struct Line {
        var path: String
        var args: String
        var modaddr: String?
        var line: Int
        /// Set when the menu itself says what it is (L4Re's `kernel`, `sigma0`, `roottask`).
        var role: Role?
    }

    var file: String
    var mappings: [(from: String, to: String)]
    var notes: [ImportedProfile.Note] = []

    init(file: String, mappings: [(from: String, to: String)]) {
        self.file = file
        self.mappings = mappings
    }

    /// A path with the first matching `--map FROM=TO` applied.
    func mapped(_ path: String) -> String {
        for (from, to) in mappings where path == from || path.hasPrefix(from.hasSuffix("/") ? from : from + "/") {
            return to + path.dropFirst(from.count)
        }
        return path
    }

    mutating func note(_ line: Int, _ text: String, _ reason: String, in other: String? = nil) {
        notes.append(ImportedProfile.Note(file: other ?? file, line: line, text: text, reason: reason))
    }

    /// Components with names, folders and roles; the API is the first of `candidates` whose
    /// rules the chain meets (or `forcedAPI`, which must meet them).
    mutating func assemble(loader: Line, modules: [Line], linux: Bool, description: String, origin: String,
                           variables: [ImportedProfile.Variable], forcedAPI: API?,
                           forcedArch: Architecture?) throws(ImageError) -> ImportedProfile {
        var used: Set<String> = []
        var folders: [String] = []
        func component(_ line: Line, fallback: Role) -> ImportedProfile.Component {
            let path = mapped(line.path)
            let base = String(path.split(separator: "/").last ?? Substring(path))
            var name = Self.plainName(base)
            if used.contains(name) {
                var index = 2
                while used.contains("\(name)-\(index)") { index += 1 }
                note(line.line, line.path, "a second module named '\(name)'; it is imported as '\(name)-\(index)' because every module needs its own bin/NAME, so its command line starts with that name")
                name = "\(name)-\(index)"
            }
            used.insert(name)
            var folder: String?
            var file: String? = base == name ? nil : base
            if path.hasPrefix("/") {
                let parent = parentDirectory(of: path)
                folder = parent
                if !folders.contains(parent) { folders.append(parent) }
            } else if path.contains("/") {
                file = path
            }
            return ImportedProfile.Component(name: name, role: line.role ?? fallback, file: file, args: line.args,
                                             modaddr: line.modaddr, folder: folder, line: line.line)
        }

        let loaderRole: Role = linux ? .linux : (line(loader, namedOneOf: [.bootstrap, .rmgr, .kickstart]) ?? .multiboot)
        let first = component(loader, fallback: loaderRole)
        let layout = FirstStageLayout.layout(for: first.role, args: first.args)
        var components: [ImportedProfile.Component] = []
        for (index, module) in modules.enumerated() {
            let guess = linux ? Role.ramdisk : roleGuess(module, slot: index, layout: layout)
            components.append(component(module, fallback: guess))
        }
        // -configfile, -symbols and -lines each take the module after the fixed slots.
        if !linux {
            let ownerArgs = layout.rootTaskSlot.flatMap { $0 < components.count ? components[$0].args : nil } ?? first.args
            var next = layout.slots.count
            for word in ownerArgs.split(separator: " ") {
                guard let consumed = consumingRootTaskOptions.first(where: { $0.option == word }) else { continue }
                if next < components.count, modules[next].role == nil { components[next].role = consumed.role }
                next += 1
            }
        }

        let arch = forcedArch ?? kernelArchitecture(components) ?? .ia32
        let api = try chooseAPI(first: first, modules: components, arch: arch, forced: forcedAPI)
        var existing: [String] = []
        var missing: [String] = []
        for folder in folders {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue {
                existing.append(folder)
            } else {
                missing.append(folder)
            }
        }
        return ImportedProfile(description: description, api: api, arch: arch, searchPath: existing,
                               missingFolders: missing, variables: variables, loader: first, modules: components,
                               notes: notes, origin: origin)
    }

    /// The role a module has by its slot after the first stage, its name, or what its file is.
    func roleGuess(_ line: Line, slot: Int, layout: FirstStageLayout) -> Role {
        let named = Self.roleByName(line.path)
        if slot < layout.slots.count {
            let accepted = layout.slots[slot]
            if let named, accepted.contains(named) { return named }
            return accepted.contains(.roottask) ? .roottask : accepted.sorted { $0.rawValue < $1.rawValue }[0]
        }
        if let named { return named }
        let path = mapped(line.path)
        if let head = Self.head(of: path, count: 4) {
            return head == Self.elfMagic ? .server : .data
        }
        return path.split(separator: "/").last?.contains(".") == true ? .data : .server
    }

    func line(_ line: Line, namedOneOf roles: Set<Role>) -> Role? {
        Self.roleByName(line.path).flatMap { roles.contains($0) ? $0 : nil }
    }

    /// Roles DROPS and L4Re programs are known by.
    static func roleByName(_ path: String) -> Role? {
        let base = String(path.split(separator: "/").last ?? "").lowercased()
        let stem = base.split(separator: ".").first.map(String.init) ?? base
        for suffix in [".cfg", ".conf", ".lua", ".io", ".devs", ".list", ".ned"] where base.hasSuffix(suffix) { return .config }
        if let role = Role(rawValue: stem), role != .server, role != .data, role != .multiboot, role != .linux {
            return role
        }
        switch stem {
        case "fiasco", "hazelnut", "pistachio", "ln": return .kernel
        case "vmlinuz", "vmlinux", "l4linux": return .l4linux
        case "initrd", "rd": return .ramdisk
        default: break
        }
        if stem.hasPrefix("vmlinuz") || stem.hasPrefix("l4linux") { return .l4linux }
        if stem.hasPrefix("ramdisk") || stem.hasPrefix("initrd") { return .ramdisk }
        return nil
    }

    /// amd64 when the kernel file is found and is a 64-bit ELF.
    func kernelArchitecture(_ modules: [ImportedProfile.Component]) -> Architecture? {
        guard let kernel = modules.first(where: { $0.role == .kernel }), let folder = kernel.folder,
              let head = Self.head(of: folder + "/" + (kernel.file ?? kernel.name), count: 5),
              head.count == 5, head.prefix(4) == Self.elfMagic else { return nil }
        return head[head.startIndex + 4] == 2 ? .amd64 : .ia32
    }

    static let elfMagic = Data([0x7F, 0x45, 0x4C, 0x46])

    /// The first `count` bytes of a file found on this machine; nil when it cannot be opened.
    static func head(of path: String, count: Int) -> Data? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: count)) ?? Data()
    }

    /// The APIs in the order an import prefers them: the most specific rules first.
    static let apiPreference: [API] = [.l4env, .v2, .x0, .x2, .l4re, .multiboot, .linux]

    func chooseAPI(first: ImportedProfile.Component, modules: [ImportedProfile.Component], arch: Architecture,
                   forced: API?) throws(ImageError) -> API {
        func plan(_ api: API) -> BuildPlan {
            func planned(_ c: ImportedProfile.Component) -> PlannedComponent {
                PlannedComponent(name: c.name, role: c.role, inspection: c.role.defaultInspection, delivery: .boot,
                                 args: c.args, modaddr: c.modaddr, source: .missing(file: c.file ?? c.name))
            }
            return BuildPlan(profileName: "import", description: "", api: api, arch: arch, variables: [:],
                             firstStage: planned(first), modules: modules.map(planned), milestones: [],
                             searchPath: [], omitted: [], sources: [])
        }
        if let forced {
            do { try RuleChecker.check(plan(forced)) } catch {
                throw .ruleViolation("\(file): --api \(forced.rawValue) does not fit this menu: \(error.description)")
            }
            return forced
        }
        for api in Self.apiPreference {
            if (try? RuleChecker.check(plan(api))) != nil { return api }
        }
        throw .entryNotBootable(file: file, entry: first.name,
                                reason: "no API's rules fit a chain that starts with '\(first.name)' (\(first.role.rawValue))")
    }

    /// Module names must be plain words (they become bin/NAME).
    static func plainName(_ base: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+")
        let cleaned = String(base.map { allowed.contains($0) ? $0 : "_" })
        return cleaned.isEmpty || cleaned == "." || cleaned == ".." ? "module" : cleaned
    }

    /// Words separated by blanks, the way both menu formats split a line.
    static func splitCommand(_ text: String) -> (word: String, rest: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let end = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) else { return (trimmed, "") }
        return (String(trimmed[..<end]), trimmed[end...].trimmingCharacters(in: .whitespaces))
    }

    /// Runs of blanks become one space, as the boot loaders pass them on.
    static func normalizedArgs(_ text: String) -> String {
        text.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }
}
