import Foundation

/// How a boot ended, on a QEMU guest or a lab PC.
public struct BootOutcome: Sendable {
    public enum Ending: Sendable, Equatable {
        /// Every expected pattern was seen (or the caller's `finished` accepted a line).
        case finished
        /// The whole run's time budget ran out.
        case timedOut
        /// Pattern number `index` did not come within its own budget.
        case patternTimedOut(index: Int)
        /// QEMU exited by itself with this status.
        case exited(Int32)
        /// The first pattern came a second time: the guest started over.
        case rebooted(line: String)
        /// The caller stopped the run (for example: the guest asked for a file the tree lacks).
        case stopped(reason: String)
        /// A failure pattern matched: `verdict` says what it means, `line` is the console line.
        case failed(verdict: String, pattern: String, line: String)
    }

    public var ending: Ending
    /// The serial console, escapes removed, one line per line.
    public var transcript: String
    /// What QEMU itself wrote to its standard error.
    public var diagnostics: String
    public var seconds: Double
    /// Seconds since the start at which each pattern matched.
    public var matchTimes: [Double]
    /// Seconds since the start at which each transcript line ended.
    public var lineTimes: [Double] = []
    /// True when the guest wrote anything to its serial console.
    public var guestSpoke: Bool { !transcript.isEmpty }
}

/// Lets another thread end a run early, with a reason.
public final class RunControl: @unchecked Sendable {
    private let lock = NSLock()
    private var reason: String?
    private var wake: (@Sendable () -> Void)?

    public init() {}

    public func stop(_ reason: String) {
        let wake = lock.withLock { () -> (@Sendable () -> Void)? in
            if self.reason == nil { self.reason = reason }
            return self.wake
        }
        wake?()
    }

    public var stopReason: String? { lock.withLock { reason } }

    func onStop(_ wake: @escaping @Sendable () -> Void) {
        lock.withLock { self.wake = wake }
    }
}
