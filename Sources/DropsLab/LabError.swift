/// What went wrong with a lab PC's infrastructure (not with the system it boots): power,
/// console, the network boot. drops-run reports these apart from test failures.
public enum LabError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A power command failed, or the state never changed to what was asked.
    case power(host: String, action: String, reason: String)
    /// The host's power block cannot do this (Wake-on-LAN cannot switch off).
    case unsupported(host: String, action: String, reason: String)
    /// The console cannot be opened or read.
    case console(host: String, reason: String)

    public var description: String {
        switch self {
        case let .power(host, action, reason): return "power \(action) of \(host) failed: \(reason)"
        case let .unsupported(host, action, reason): return "\(host) cannot be switched \(action): \(reason)"
        case let .console(host, reason): return "the console of \(host) is unreachable: \(reason)"
        }
    }
}
