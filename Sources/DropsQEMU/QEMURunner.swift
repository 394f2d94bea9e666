import Foundation
import Logging

/// How a QEMU run ended.
public struct QEMUOutcome: Sendable {
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

    var stopReason: String? { lock.withLock { reason } }

    func onStop(_ wake: @escaping @Sendable () -> Void) {
        lock.withLock { self.wake = wake }
    }
}

/// Runs QEMU, feeds its serial console to a `SerialWatcher`, streams every event to
/// `onEvent`, and stops QEMU when every pattern matched, a pattern's budget or the whole
/// time ran out, the guest rebooted, or `control` asked to stop.
public struct QEMURunner: Sendable {
    public var logger: Logger

    public init(logger: Logger = Logger(label: "drops.qemu")) {
        self.logger = logger
    }

    public static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `command` until the watcher is complete (when it has patterns), QEMU exits, or
    /// `timeout` seconds (nil: no limit) pass. `finished` may end the run on a line of its own.
    public func run(_ command: QEMUCommand, timeout: Double?, watcher: SerialWatcher,
                    control: RunControl = RunControl(),
                    onEvent: @escaping @Sendable (SerialEvent) -> Void = { _ in },
                    finished: @escaping @Sendable (String) -> Bool = { _ in false }) throws(QEMUError) -> QEMUOutcome {
        guard let path = Self.findExecutable(command.executable) else { throw .notInstalled(command.executable) }
        let process = Process()
        if let launcher = command.launchPrefix.first {
            process.executableURL = URL(fileURLWithPath: launcher)
            process.arguments = Array(command.launchPrefix.dropFirst()) + [path] + command.arguments
        } else {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = command.arguments
        }
        process.currentDirectoryURL = URL(fileURLWithPath: command.workingDirectory)
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice

        let watch = ConsoleWatch(watcher: watcher, onEvent: onEvent, finished: finished)
        let outputClosed = Self.readAll(output) { watch.feed($0) } atEnd: { watch.streamEnded() }
        let errorsClosed = Self.readAll(errors) { watch.addDiagnostics($0) } atEnd: {}
        // QEMU's exit wakes the wait too: the pipe's end of file alone was seen to come late.
        process.terminationHandler = { _ in watch.poke() }
        logger.info("starting \(command.shellLine) in \(command.workingDirectory)")
        do { try process.run() } catch {
            output.fileHandleForReading.readabilityHandler = nil
            errors.fileHandleForReading.readabilityHandler = nil
            throw .launchFailed(command.executable, reason: error.localizedDescription)
        }

        let ending = watch.wait(timeout: timeout, control: control, isRunning: { process.isRunning })
        if ending == nil && !process.isRunning && !watch.streamHasEnded {
            // Let the reader take what QEMU wrote last, then judge.
            _ = outputClosed.wait(timeout: .now() + 2)
            outputClosed.signal()
        }
        if process.isRunning {
            process.terminate()
            // QEMU ends on SIGTERM, unless it inherited SIGTERM blocked: then it is killed.
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        // The pipes reach their end once QEMU is gone: read what is left before judging.
        _ = outputClosed.wait(timeout: .now() + 2)
        _ = errorsClosed.wait(timeout: .now() + 2)
        output.fileHandleForReading.readabilityHandler = nil
        errors.fileHandleForReading.readabilityHandler = nil
        return watch.outcome(ending: ending, otherwise: .exited(process.terminationStatus))
    }
}

extension QEMURunner {
    /// Hands everything read from `pipe` to `take`, calls `atEnd` at its end of file, and
    /// returns a semaphore signalled then.
    static func readAll(_ pipe: Pipe, take: @escaping @Sendable (Data) -> Void,
                        atEnd: @escaping @Sendable () -> Void) -> DispatchSemaphore {
        let closed = DispatchSemaphore(value: 0)
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard data.isEmpty else { return take(data) }
            handle.readabilityHandler = nil
            atEnd()
            closed.signal()
        }
        return closed
    }
}

/// The run's shared state: the pipe readers feed it, the waiting thread judges it.
final class RunState: @unchecked Sendable {
    private let lock = NSLock()
    private let watcher: SerialWatcher
    private var lines: [String] = []
    private var lineTimes: [Double] = []
    private var errorBytes: [UInt8] = []
    private var verdict: QEMUOutcome.Ending?
    private var outputEnded = false

    init(watcher: SerialWatcher) {
        self.watcher = watcher
    }

    /// Feeds console bytes; true when the waiting thread should look again.
    func feed(_ data: Data, at time: Double, finished: (String) -> Bool) -> ([SerialEvent], Bool) {
        lock.withLock {
            let events = watcher.feed(data, at: time)
            for event in events {
                switch event {
                case let .line(line):
                    lines.append(line)
                    lineTimes.append(time)
                    if verdict == nil, finished(line) { verdict = .finished }
                case let .rebooted(line):
                    if verdict == nil { verdict = .rebooted(line: line) }
                case let .failed(index, line):
                    if verdict == nil {
                        let failure = watcher.failures[index]
                        verdict = .failed(verdict: failure.verdict, pattern: failure.shown, line: line)
                    }
                case .matched:
                    if verdict == nil, watcher.isComplete, !watcher.patterns.isEmpty { verdict = .finished }
                }
            }
            return (events, verdict != nil || events.contains { if case .matched = $0 { return true } else { return false } })
        }
    }

    func flush(at time: Double) -> [SerialEvent] {
        lock.withLock {
            let rest = watcher.unfinishedLine
            guard !rest.isEmpty else { return [] }
            let events = watcher.feed([0x0A], at: time)
            for case let .line(line) in events {
                lines.append(line)
                lineTimes.append(time)
            }
            if verdict == nil, watcher.isComplete, !watcher.patterns.isEmpty { verdict = .finished }
            return events
        }
    }

    func addDiagnostics(_ data: Data) {
        lock.withLock { errorBytes += data }
    }

    func markEnded() {
        lock.withLock { outputEnded = true }
    }

    var ended: Bool { lock.withLock { outputEnded } }

    var hasUnfinishedLine: Bool { lock.withLock { !watcher.unfinishedLine.isEmpty } }

    /// The next pattern's deadline and the verdict so far.
    func status() -> (deadline: (index: Int, deadline: Double?), verdict: QEMUOutcome.Ending?) {
        lock.withLock { (deadline: (index: watcher.matchedCount, deadline: watcher.deadline), verdict: verdict) }
    }

    var transcript: String { lock.withLock { lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n") } }
    var times: [Double] { lock.withLock { lineTimes } }
    var matchTimes: [Double] { lock.withLock { watcher.matchTimes } }
    var diagnostics: String { lock.withLock { String(decoding: errorBytes, as: UTF8.self) } }
}
