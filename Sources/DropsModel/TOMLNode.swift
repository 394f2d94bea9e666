import TOMLKit

/// A plain copy of a parsed TOML document, so the profile decoder walks Swift values and
/// can say precisely which key holds a wrong value.
indirect enum TOMLNode: Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
    case array([TOMLNode])
    case table([(key: String, value: TOMLNode)])
    case other(String)

    /// Parses TOML text; syntax errors carry the position TOMLKit reports.
    static func parse(_ text: String, file: String) throws(ModelError) -> TOMLNode {
        do {
            let table = try TOMLTable(string: text)
            return TOMLNode(table)
        } catch let error as TOMLParseError {
            let location = SourceLocation(file: file, line: error.source.begin.line, column: error.source.begin.column)
            throw .syntax(location, message: error.description)
        } catch {
            throw .syntax(SourceLocation(file: file, line: 1), message: "\(error)")
        }
    }

    init(_ value: TOMLValueConvertible) {
        if let s = value.string {
            self = .string(s)
        } else if let i = value.int {
            self = .integer(i)
        } else if let d = value.double {
            self = .float(d)
        } else if let b = value.bool {
            self = .boolean(b)
        } else if let a = value.array {
            self = .array(a.map { TOMLNode($0) })
        } else if let t = value.table {
            // Key order is kept as the file has it where TOMLKit preserves it; sorted otherwise.
            self = .table(t.keys.sorted().compactMap { key in t[key].map { (key, TOMLNode($0)) } })
        } else {
            self = .other("\(value.type)")
        }
    }

    var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a number"
        case .boolean: return "true or false"
        case .array: return "an array"
        case .table: return "a table"
        case let .other(name): return "a \(name)"
        }
    }
}
