import Foundation

/// A place in a text file, for error messages a person can jump to.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int = 1) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// Finds where keys stand in a TOML file. TOMLKit reports positions only for syntax errors,
/// so semantic errors (a wrong type, an unknown key) are located by reading the lines again.
struct TOMLKeyLocator {
    private var positions: [String: (line: Int, column: Int)] = [:]
    let file: String

    /// Key paths look like `variables.user`, `module.3.args` (array-of-tables index from 0)
    /// or `module.3` for the header of the fourth `[[module]]`.
    init(file: String, text: String) {
        self.file = file
        var table = ""
        var arrayCounts: [String: Int] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(rawLine)
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            let column = line.count - trimmed.count + 1
            if trimmed.hasPrefix("[[") {
                let name = Self.headerName(trimmed.dropFirst(2))
                let count = arrayCounts[name, default: 0]
                arrayCounts[name] = count + 1
                table = "\(name).\(count)"
                positions[table] = (index + 1, column)
            } else if trimmed.hasPrefix("[") {
                table = Self.headerName(trimmed.dropFirst(1))
                positions[table] = (index + 1, column)
            } else if let equals = trimmed.firstIndex(of: "="), !trimmed.hasPrefix("#") {
                var key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
                if key.hasPrefix("\"") && key.hasSuffix("\"") && key.count >= 2 {
                    key = String(key.dropFirst().dropLast())
                }
                let path = table.isEmpty ? key : "\(table).\(key)"
                if positions[path] == nil { positions[path] = (index + 1, column) }
            }
        }
    }

    private static func headerName(_ rest: Substring) -> String {
        let end = rest.firstIndex(of: "]") ?? rest.endIndex
        return rest[..<end].trimmingCharacters(in: .whitespaces)
    }

    /// The location of a key path, or of its nearest enclosing table, or the file's first line.
    func location(_ path: String) -> SourceLocation {
        var candidate = path
        while true {
            if let found = positions[candidate] {
                return SourceLocation(file: file, line: found.line, column: found.column)
            }
            guard let dot = candidate.lastIndex(of: ".") else { break }
            candidate = String(candidate[..<dot])
        }
        return SourceLocation(file: file, line: 1, column: 1)
    }
}
