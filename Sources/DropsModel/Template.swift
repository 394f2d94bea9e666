/// `${name}` substitution in command lines and generated files. `$$` stands for a literal `$`.
public struct VariableScope: Sendable {
    public private(set) var values: [String: String]

    public init(_ values: [String: String]) {
        self.values = values
    }

    /// Expands every `${name}`, including references inside variable values, and reports the
    /// first name with no value (or one that refers to itself).
    public func expand(_ text: String) -> Result<String, UnresolvedVariable> {
        expand(text, depth: 0, stack: [])
    }

    private func expand(_ text: String, depth: Int, stack: [String]) -> Result<String, UnresolvedVariable> {
        var output = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            let next = text.index(after: index)
            if character == "$", next < text.endIndex, text[next] == "$" {
                output.append("$")
                index = text.index(after: next)
            } else if character == "$", next < text.endIndex, text[next] == "{",
                      let close = text[next...].firstIndex(of: "}") {
                let name = String(text[text.index(after: next)..<close])
                guard !stack.contains(name) else {
                    return .failure(UnresolvedVariable(name: name, cycle: stack + [name]))
                }
                guard let value = values[name] else {
                    return .failure(UnresolvedVariable(name: name, cycle: []))
                }
                switch expand(value, depth: depth + 1, stack: stack + [name]) {
                case let .success(expanded): output += expanded
                case let .failure(error): return .failure(error)
                }
                index = text.index(after: close)
            } else {
                output.append(character)
                index = next
            }
        }
        return .success(output)
    }
}

/// A `${name}` that could not be given a value.
public struct UnresolvedVariable: Error, Sendable, Equatable {
    public var name: String
    /// Non-empty when the variable refers back to itself through this chain.
    public var cycle: [String]
}
