import DropsModel

/// Problems found while inspecting components or writing and verifying image trees.
public enum ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case notELF(component: String, path: String)
    case truncatedELF(component: String, path: String, detail: String)
    case wrongELF(component: String, path: String, found: String, expected: String)
    case badMultiboot(component: String, path: String, detail: String)
    case notMultiboot(component: String, path: String)
    case ruleViolation(String)
    case writeFailed(path: String, reason: String)
    case noManifest(directory: String, reason: String)
    case toolFailed(String, String)
    /// A boot-menu line the importer cannot read at all.
    case menuSyntax(SourceLocation, text: String, reason: String)
    /// `--entry` names no entry of the menu.
    case unknownEntry(file: String, requested: String, titles: [String])
    /// The chosen entry has nothing a profile can hold (no kernel line).
    case entryNotBootable(file: String, entry: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .notELF(component, path):
            return "component '\(component)': \(path) is not an ELF file (no \\x7fELF magic); "
                + "point the profile at the built binary, or set inspect = \"data\" if it is not a program"
        case let .truncatedELF(component, path, detail):
            return "component '\(component)': \(path) is a truncated or damaged ELF file (\(detail)); rebuild it"
        case let .wrongELF(component, path, found, expected):
            return "component '\(component)': \(path) is \(found), but this profile needs \(expected); "
                + "use the binary built for the profile's architecture"
        case let .badMultiboot(component, path, detail):
            return "component '\(component)': \(path) has a broken Multiboot header (\(detail)); rebuild it"
        case let .notMultiboot(component, path):
            return "component '\(component)': \(path) is the first stage but has no Multiboot 1 header in "
                + "its first 8192 bytes, which every Multiboot loader (QEMU -kernel, GRUB, iPXE, mboot.c32) needs; "
                + "use the image built for booting (for example bootstrap, not the kernel)"
        case let .ruleViolation(message):
            return message
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason); the previous image (if any) is left as it was"
        case let .noManifest(directory, reason):
            return "\(directory) is not an image tree: cannot read \(Manifest.fileName) (\(reason)); "
                + "build one with drops-build profile NAME"
        case let .toolFailed(tool, reason):
            return "\(tool) failed: \(reason)"
        case let .menuSyntax(location, text, reason):
            return "\(location.file):\(location.line): \(reason): '\(text)'"
        case let .unknownEntry(file, requested, titles):
            let list = titles.enumerated().map { "\($0.offset): \($0.element)" }.joined(separator: "; ")
            return "\(file) has no entry '\(requested)'; its entries are \(titles.isEmpty ? "none" : list). "
                + "Pass --entry with one of those titles or its number"
        case let .entryNotBootable(file, entry, reason):
            return "\(file): entry '\(entry)' cannot be imported: \(reason); choose another with --entry"
        }
    }
}
