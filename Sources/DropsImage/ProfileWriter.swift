import Foundation
import DropsModel

/// Writes an imported profile as a profile file (TOML) a person can read and edit: the
/// origin and every line not carried over as comments at the top, then the components in
/// menu order.
public enum ProfileWriter {
    public static func render(_ profile: ImportedProfile) -> String {
        var lines = ["# Imported by drops-build import from \(profile.origin)."]
        if !profile.notes.isEmpty {
            lines.append("# Lines of the original that this profile does not reproduce:")
            for note in profile.notes { lines.append("#   line \(note.line): \(note.text): \(note.reason)") }
        }
        if !profile.missingFolders.isEmpty {
            lines.append("# Folders the menu loaded files from that do not exist here (map them with")
            lines.append("# drops-build import --map FROM=TO, or build with --search-path):")
            for folder in profile.missingFolders { lines.append("#   \(folder)") }
        }
        lines.append("")
        lines.append("description = \(quoted(profile.description))")
        lines.append("api = \(quoted(profile.api.rawValue))")
        lines.append("arch = \(quoted(profile.arch.rawValue))")
        if !profile.searchPath.isEmpty {
            lines.append("search_path = [\(profile.searchPath.map(quoted).joined(separator: ", "))]")
        }
        let milestones = DefaultMilestones.milestones(api: profile.api, firstStage: profile.loader.role, modules: profile.modules.map(\.role))
        if !milestones.isEmpty {
            lines.append("# What these programs print first, in boot order: drops-run waits for each.")
            lines.append("milestones = [\(milestones.map { quoted($0.pattern) }.joined(separator: ", "))]")
        }
        if !profile.variables.isEmpty {
            lines.append("")
            lines.append("[variables]")
            for variable in profile.variables { lines.append("\(bareOrQuotedKey(variable.name)) = \(quoted(variable.value))") }
        }
        lines.append("")
        lines.append("[loader]")
        lines += body(profile.loader)
        for module in profile.modules {
            lines.append("")
            lines.append("[[module]]")
            lines += body(module)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func body(_ component: ImportedProfile.Component) -> [String] {
        var lines = ["name = \(quoted(component.name))", "role = \(quoted(component.role.rawValue))"]
        if let file = component.file { lines.append("file = \(quoted(file))") }
        if !component.args.isEmpty { lines.append("args = \(quoted(component.args))") }
        if let modaddr = component.modaddr { lines.append("modaddr = \(quoted(modaddr))") }
        return lines
    }

    /// A TOML basic string.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\u%04X", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func bareOrQuotedKey(_ key: String) -> String {
        let bare = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        return !key.isEmpty && key.allSatisfy({ bare.contains($0) }) ? key : quoted(key)
    }
}
