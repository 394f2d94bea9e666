import Foundation

/// Turns one profile file's text into a `ProfileFile`, checking every key and type and
/// naming file:line:column for each problem.
public enum ProfileDecoder {
    static let topKeys = ["description", "api", "arch", "include", "search_path", "sources", "remove",
                          "milestones", "failures", "config_delivery", "variables", "loader", "module"]
    static let moduleKeys = ["name", "role", "file", "args", "optional", "inspect", "delivery", "ramdisk",
                             "modaddr", "content", "after", "before", "archive", "url", "sha256", "member"]

    /// Decodes `text` read from `path`. Relative search-path folders are made absolute
    /// against the profile's own folder, so a profile works from any working directory.
    public static func decode(text: String, path: String) throws(ModelError) -> ProfileFile {
        let locator = TOMLKeyLocator(file: path, text: text)
        let root = try TOMLNode.parse(text, file: path)
        var file = ProfileFile(path: path, text: text, locator: TOMLKeyLocatorBox(value: locator))
        guard case let .table(entries) = root else { return file }
        let directory = parentDirectory(of: path)

        for (key, value) in entries {
            let at = locator.location(key)
            switch key {
            case "description":
                file.description = try string(value, key: key, at: at)
            case "api":
                file.api = try enumValue(value, key: key, at: at)
            case "arch":
                file.arch = try enumValue(value, key: key, at: at)
            case "include":
                file.include = try string(value, key: key, at: at)
            case "search_path":
                file.searchPath = try strings(value, key: key, at: at).map { absolutePath($0, relativeTo: directory) }
            case "sources":
                file.origins = try origins(value, at: at, directory: directory)
            case "remove":
                file.remove = try strings(value, key: key, at: at).map { ($0, at) }
            case "milestones":
                file.milestones = try milestones(value, at: at)
            case "failures":
                file.failures = try failures(value, at: at)
            case "config_delivery":
                file.configDelivery = try enumValue(value, key: key, at: at)
            case "variables":
                guard case let .table(vars) = value else {
                    throw .invalidValue(at, key: key, message: "must be a table ([variables]), found \(value.typeName)")
                }
                for (name, v) in vars {
                    let vAt = locator.location("variables.\(name)")
                    let text: String
                    switch v {
                    case let .string(s): text = s
                    case let .integer(i): text = String(i)
                    case let .boolean(b): text = String(b)
                    default:
                        throw .invalidValue(vAt, key: "variables.\(name)", message: "must be a string, integer or boolean, found \(v.typeName)")
                    }
                    file.variables[name] = Variable(value: text, origin: vAt.description)
                }
            case "loader":
                file.loader = try module(value, keyPath: "loader", locator: locator, directory: directory)
            case "module":
                guard case let .array(items) = value else {
                    throw .invalidValue(at, key: key, message: "must be an array of tables ([[module]]), found \(value.typeName)")
                }
                for (index, item) in items.enumerated() {
                    file.modules.append(try module(item, keyPath: "module.\(index)", locator: locator, directory: directory))
                }
            default:
                throw .unknownKey(at, key: key, known: topKeys)
            }
        }
        return file
    }

    static func module(_ node: TOMLNode, keyPath: String, locator: TOMLKeyLocator, directory: String) throws(ModelError) -> ModuleSpec {
        let at = locator.location(keyPath)
        guard case let .table(entries) = node else {
            throw .invalidValue(at, key: keyPath, message: "must be a table, found \(node.typeName)")
        }
        guard let nameNode = entries.first(where: { $0.key == "name" })?.value else {
            throw .invalidValue(at, key: keyPath, message: "has no 'name'; every component needs one (it becomes bin/NAME)")
        }
        let name = try string(nameNode, key: "\(keyPath).name", at: locator.location("\(keyPath).name"))
        try validateName(name, at: locator.location("\(keyPath).name"), key: "\(keyPath).name")
        var spec = ModuleSpec(name: name, location: at)
        for (key, value) in entries {
            let fullKey = "\(keyPath).\(key)"
            let kAt = locator.location(fullKey)
            switch key {
            case "name": break
            case "role": spec.role = try enumValue(value, key: fullKey, at: kAt)
            case "file": spec.file = try string(value, key: fullKey, at: kAt)
            case "args":
                let text = try string(value, key: fullKey, at: kAt)
                // Every boot menu is line-based: a line break would start a new menu command.
                guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                    throw .invalidValue(kAt, key: fullKey, message: "must be one line without tabs or control characters")
                }
                spec.args = text
            case "optional": spec.optional = try boolean(value, key: fullKey, at: kAt)
            case "inspect": spec.inspect = try enumValue(value, key: fullKey, at: kAt)
            case "delivery": spec.delivery = try string(value, key: fullKey, at: kAt)
            case "modaddr":
                let text = try string(value, key: fullKey, at: kAt)
                guard parseAddress(text) != nil else {
                    throw .invalidValue(kAt, key: fullKey, message: "'\(text)' is not an address; write it in hex like \"0x02000000\"")
                }
                spec.modaddr = text
            case "content": spec.content = try string(value, key: fullKey, at: kAt)
            case "after": spec.after = try string(value, key: fullKey, at: kAt)
            case "before": spec.before = try string(value, key: fullKey, at: kAt)
            case "ramdisk": spec.ramdisk = try ramDisk(value, key: fullKey, at: kAt, directory: directory)
            case "archive": spec.archive = absolutePath(try string(value, key: fullKey, at: kAt), relativeTo: directory)
            case "url":
                let text = try string(value, key: fullKey, at: kAt)
                guard case .url = ComponentOrigin.parse(text, relativeTo: directory), !text.contains("#sha256=") else {
                    throw .invalidValue(kAt, key: fullKey, message: "'\(text)' is not a URL drops can fetch; use \(ComponentOrigin.schemes.joined(separator: ", ")) (and the pin in sha256 = \"…\")")
                }
                spec.url = text
            case "sha256":
                let text = try string(value, key: fullKey, at: kAt)
                guard ComponentOrigin.isSHA256(text) else {
                    throw .invalidValue(kAt, key: fullKey, message: "'\(text)' is not a SHA-256 (64 hex digits, as sha256sum prints it)")
                }
                spec.sha256 = text.lowercased()
            case "member": spec.member = try string(value, key: fullKey, at: kAt)
            default: throw .unknownKey(kAt, key: fullKey, known: moduleKeys)
            }
        }
        if spec.archive != nil && spec.url != nil {
            throw .invalidValue(at, key: keyPath, message: "'\(name)' has both archive and url; a component comes from one of them")
        }
        if spec.sha256 != nil && spec.url == nil {
            throw .invalidValue(at, key: keyPath, message: "'\(name)' has sha256 but no url; the pin is for a download")
        }
        if (spec.archive != nil || spec.url != nil) && (spec.content != nil || spec.ramdisk != nil) {
            throw .invalidValue(at, key: keyPath, message: "'\(name)' is generated (content or ramdisk), so it cannot also come from an archive or URL")
        }
        return spec
    }

    /// `sources = ["dist/drops.tar.gz", { url = "https://…/drops.tar.xz", sha256 = "…" }]`:
    /// archives searched, in order, for components the folders do not hold.
    static func origins(_ node: TOMLNode, at: SourceLocation, directory: String) throws(ModelError) -> [ComponentOrigin] {
        guard case let .array(items) = node else {
            throw .invalidValue(at, key: "sources", message: "must be an array of archive paths and { url = \"…\", sha256 = \"…\" } tables, found \(node.typeName)")
        }
        var result: [ComponentOrigin] = []
        for item in items {
            switch item {
            case let .string(path):
                guard case .archive = ComponentOrigin.parse(path, relativeTo: directory) else {
                    throw .invalidValue(at, key: "sources", message: "'\(path)': a URL needs its pin; write { url = \"\(path)\", sha256 = \"…\" }")
                }
                result.append(.archive(path: absolutePath(path, relativeTo: directory)))
            case let .table(entries):
                var url: String?
                var pin: String?
                var archive: String?
                for (key, value) in entries {
                    switch key {
                    case "url": url = try string(value, key: "sources.url", at: at)
                    case "sha256": pin = try string(value, key: "sources.sha256", at: at)
                    case "archive": archive = try string(value, key: "sources.archive", at: at)
                    default: throw .invalidValue(at, key: "sources", message: "a source table takes url and sha256, or archive; '\(key)' is not understood")
                    }
                }
                if let archive, url == nil, pin == nil {
                    result.append(.archive(path: absolutePath(archive, relativeTo: directory)))
                    continue
                }
                guard let url, archive == nil, case .url = ComponentOrigin.parse(url, relativeTo: directory) else {
                    throw .invalidValue(at, key: "sources", message: "a source table is { url = \"https://…\", sha256 = \"…\" } or { archive = \"PATH\" }")
                }
                if let pin, !ComponentOrigin.isSHA256(pin) {
                    throw .invalidValue(at, key: "sources", message: "'\(pin)' is not a SHA-256 (64 hex digits, as sha256sum prints it)")
                }
                result.append(.url(url, sha256: pin?.lowercased(), location: at))
            default:
                throw .invalidValue(at, key: "sources", message: "each source is an archive path or a { url, sha256 } table, found \(item.typeName)")
            }
        }
        return result
    }

    /// `ramdisk = { rootfs = "../rootfs", compression = "gzip", … }`: the module is built
    /// from a root folder instead of found in the search path.
    static func ramDisk(_ node: TOMLNode, key: String, at: SourceLocation, directory: String) throws(ModelError) -> RamDiskSpec {
        guard case let .table(entries) = node else {
            throw .invalidValue(at, key: key, message: "must be a table like { rootfs = \"../rootfs\", compression = \"gzip\" }, found \(node.typeName)")
        }
        var spec = RamDiskSpec(rootfs: absolutePath("../rootfs", relativeTo: directory))
        for (name, value) in entries {
            let fullKey = "\(key).\(name)"
            switch name {
            case "rootfs": spec.rootfs = absolutePath(try string(value, key: fullKey, at: at), relativeTo: directory)
            case "overlays": spec.overlays = try strings(value, key: fullKey, at: at).map { absolutePath($0, relativeTo: directory) }
            case "devices": spec.devices = absolutePath(try string(value, key: fullKey, at: at), relativeTo: directory)
            case "format":
                let text = try string(value, key: fullKey, at: at)
                guard RamDiskSpec.formats.contains(text) else { throw .invalidValue(at, key: fullKey, message: "'\(text)' is not one of: \(RamDiskSpec.formats.joined(separator: ", "))") }
                spec.format = text
            case "compression":
                let text = try string(value, key: fullKey, at: at)
                guard RamDiskSpec.compressions.contains(text) else { throw .invalidValue(at, key: fullKey, message: "'\(text)' is not one of: \(RamDiskSpec.compressions.joined(separator: ", "))") }
                spec.compression = text
            case "size":
                let text = try string(value, key: fullKey, at: at)
                guard text.range(of: "^[0-9]+[KMGkmg]?$", options: .regularExpression) != nil else {
                    throw .invalidValue(at, key: fullKey, message: "'\(text)' is not a size like \"16M\" or \"4096K\"")
                }
                spec.size = text
            case "busybox": spec.busybox = try string(value, key: fullKey, at: at)
            default:
                throw .invalidValue(at, key: fullKey, message: "is not understood; a ramdisk takes rootfs, overlays, devices, format, compression, size and busybox")
            }
        }
        if spec.size != nil && spec.format != "ext2" { throw .invalidValue(at, key: key, message: "size is for format = \"ext2\"") }
        return spec
    }

    /// Module names become file names and command-line words, so they must be plain.
    static func validateName(_ name: String, at: SourceLocation, key: String) throws(ModelError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+")
        guard !name.isEmpty, name != ".", name != "..", name.allSatisfy({ allowed.contains($0) }) else {
            throw .invalidValue(at, key: key, message: "'\(name)' is not a usable module name; use letters, digits and . _ - + only")
        }
    }

    static func milestones(_ node: TOMLNode, at: SourceLocation) throws(ModelError) -> [Milestone] {
        guard case let .array(items) = node else {
            throw .invalidValue(at, key: "milestones", message: "must be an array, found \(node.typeName)")
        }
        var result: [Milestone] = []
        for item in items {
            switch item {
            case let .string(pattern):
                result.append(Milestone(pattern: pattern))
            case let .table(entries):
                var milestone = Milestone(pattern: "")
                for (key, value) in entries {
                    switch (key, value) {
                    case let ("pattern", .string(s)): milestone.pattern = s
                    case let ("timeout", .integer(i)): milestone.timeout = Double(i)
                    case let ("timeout", .float(d)): milestone.timeout = d
                    default:
                        throw .invalidValue(at, key: "milestones", message: "a milestone table takes pattern = \"text\" and timeout = seconds; '\(key)' is not understood")
                    }
                }
                guard !milestone.pattern.isEmpty, milestone.timeout > 0 else {
                    throw .invalidValue(at, key: "milestones", message: "each milestone needs a non-empty pattern and a positive timeout")
                }
                result.append(milestone)
            default:
                throw .invalidValue(at, key: "milestones", message: "each milestone is a string or { pattern = \"…\", timeout = seconds }, found \(item.typeName)")
            }
        }
        return result
    }

    /// `failures = ["text", { pattern = "…", regex = true, verdict = "…" }]`.
    static func failures(_ node: TOMLNode, at: SourceLocation) throws(ModelError) -> [FailurePattern] {
        let shape = "each failure is a string or { pattern = \"…\", regex = true|false, verdict = \"what it means\" }"
        guard case let .array(items) = node else {
            throw .invalidValue(at, key: "failures", message: "must be an array, found \(node.typeName)")
        }
        var result: [FailurePattern] = []
        for item in items {
            switch item {
            case let .string(pattern) where !pattern.isEmpty:
                result.append(FailurePattern(pattern: pattern, verdict: "failure pattern matched"))
            case let .table(entries):
                var failure = FailurePattern(pattern: "", verdict: "failure pattern matched")
                for (key, value) in entries {
                    switch (key, value) {
                    case let ("pattern", .string(s)): failure.pattern = s
                    case let ("regex", .boolean(b)): failure.regex = b
                    case let ("verdict", .string(s)) where !s.isEmpty: failure.verdict = s
                    default:
                        throw .invalidValue(at, key: "failures", message: "\(shape); '\(key)' is not understood here")
                    }
                }
                guard !failure.pattern.isEmpty else {
                    throw .invalidValue(at, key: "failures", message: "each failure needs a non-empty pattern")
                }
                if failure.regex, let problem = regexProblem(failure.pattern) {
                    throw .invalidValue(at, key: "failures", message: "'\(failure.pattern)' is not a valid regular expression: \(problem)")
                }
                result.append(failure)
            default:
                throw .invalidValue(at, key: "failures", message: "\(shape), found \(item.typeName)")
            }
        }
        return result
    }

    static func regexProblem(_ pattern: String) -> String? {
        do { _ = try NSRegularExpression(pattern: pattern) } catch { return error.localizedDescription }
        return nil
    }

    static func string(_ node: TOMLNode, key: String, at: SourceLocation) throws(ModelError) -> String {
        guard case let .string(s) = node else {
            throw .invalidValue(at, key: key, message: "must be a string, found \(node.typeName)")
        }
        return s
    }

    static func boolean(_ node: TOMLNode, key: String, at: SourceLocation) throws(ModelError) -> Bool {
        guard case let .boolean(b) = node else {
            throw .invalidValue(at, key: key, message: "must be true or false, found \(node.typeName)")
        }
        return b
    }

    static func strings(_ node: TOMLNode, key: String, at: SourceLocation) throws(ModelError) -> [String] {
        guard case let .array(items) = node else {
            throw .invalidValue(at, key: key, message: "must be an array of strings, found \(node.typeName)")
        }
        var result: [String] = []
        for item in items { result.append(try string(item, key: key, at: at)) }
        return result
    }

    static func enumValue<T: RawRepresentable & CaseIterable>(_ node: TOMLNode, key: String, at: SourceLocation) throws(ModelError) -> T where T.RawValue == String {
        let text = try string(node, key: key, at: at)
        guard let value = T(rawValue: text) else {
            let known = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw .invalidValue(at, key: key, message: "'\(text)' is not one of: \(known)")
        }
        return value
    }
}

/// Parses `0x…` hex or decimal addresses as menus write them.
public func parseAddress(_ text: String) -> UInt64? {
    let lower = text.lowercased()
    if lower.hasPrefix("0x") { return UInt64(lower.dropFirst(2), radix: 16) }
    return UInt64(lower)
}

/// The folder part of a path (`.` for a bare name, `/` for a file in the root).
public func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// `path` as it is when absolute, else `directory/path` with `.` and `..` resolved.
public func absolutePath(_ path: String, relativeTo directory: String) -> String {
    path.hasPrefix("/") ? path : normalizePath(directory + "/" + path)
}

/// Removes `.` and resolves `..` textually; used for folder names from profiles.
public func normalizePath(_ path: String) -> String {
    var parts: [Substring] = []
    for part in path.split(separator: "/") {
        if part == "." { continue }
        if part == "..", let last = parts.last, last != ".." { parts.removeLast(); continue }
        parts.append(part)
    }
    let joined = parts.joined(separator: "/")
    return path.hasPrefix("/") ? "/" + joined : (joined.isEmpty ? "." : joined)
}
