/// Everything that can be wrong with a profile or a plan. Each message names the input
/// (file:line:column, profile, component) and says what to do about it.
public enum ModelError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownProfile(name: String, directory: String, known: [String])
    case syntax(SourceLocation, message: String)
    case invalidValue(SourceLocation, key: String, message: String)
    case unknownKey(SourceLocation, key: String, known: [String])
    case includeCycle(chain: [String])
    case duplicateModule(SourceLocation, name: String)
    case unknownAnchor(SourceLocation, key: String, name: String)
    case undefinedVariable(SourceLocation, variable: String, context: String)
    case ruleViolation(profile: String, message: String)
    case missingComponent(module: String, file: String, searched: [String])
    case searchPathMissing(path: String, origin: String)
    case runtimeFileTooLarge(module: String, size: Int, limit: Int)

    public var description: String {
        switch self {
        case let .unknownProfile(name, directory, known):
            let list = known.isEmpty ? "none" : known.joined(separator: ", ")
            return "no profile '\(name)' in \(directory) (known profiles: \(list)); "
                + "pass one of those, or --profiles-dir to the folder that holds \(name).toml"
        case let .syntax(location, message):
            return "\(location): TOML syntax error: \(message)"
        case let .invalidValue(location, key, message):
            return "\(location): '\(key)': \(message)"
        case let .unknownKey(location, key, known):
            return "\(location): unknown key '\(key)' (allowed here: \(known.joined(separator: ", ")))"
        case let .includeCycle(chain):
            return "profiles include each other in a loop: \(chain.joined(separator: " -> ")); "
                + "remove one of the include lines"
        case let .duplicateModule(location, name):
            return "\(location): module name '\(name)' is used twice; every module needs its own "
                + "name (it becomes bin/\(name) and the first word of its command line): rename one"
        case let .unknownAnchor(location, key, name):
            return "\(location): '\(key) = \"\(name)\"' names no module of the profile; "
                + "use the name of one of its modules"
        case let .undefinedVariable(location, variable, context):
            return "\(location): \(context) uses ${\(variable)} but it has no value; define it "
                + "under [variables] or pass --set \(variable)=VALUE"
        case let .ruleViolation(profile, message):
            return "profile '\(profile)': \(message)"
        case let .missingComponent(module, file, searched):
            if searched.isEmpty {
                return "component '\(module)': no file '\(file)' to be found, the search path is empty; "
                    + "pass the folder with your binaries as --search-path DIR or in DROPS_SEARCH_PATH"
            }
            return "component '\(module)': no file '\(file)' in the search path; searched "
                + searched.joined(separator: ", ") + ". Put the binary in one of them or add its folder with --search-path"
        case let .searchPathMissing(path, origin):
            return "search path folder \(path) (from \(origin)) does not exist; create it or fix the path"
        case let .runtimeFileTooLarge(module, size, limit):
            return "component '\(module)' is fetched at run time through the L4 tftp file provider, "
                + "which cannot pass block 65535, so files must stay under \(limit) bytes "
                + "(65535 x 1432); this one has \(size). Offer a gzip'ed copy (the provider "
                + "inflates gzip transparently) or deliver it as a boot module"
        }
    }
}
