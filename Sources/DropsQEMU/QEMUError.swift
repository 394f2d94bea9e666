import Foundation

/// Errors starting or running QEMU.
public enum QEMUError: Error, Sendable, CustomStringConvertible {
    case notInstalled(String)
    case launchFailed(String, reason: String)

    public var description: String {
        switch self {
        case let .notInstalled(name):
            return "\(name) is not installed; install Debian's qemu-system-x86 package (make deps does it)"
        case let .launchFailed(name, reason):
            return "cannot start \(name): \(reason)"
        }
    }
}

