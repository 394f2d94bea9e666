import Foundation

/// Watches one boot's console, whatever it comes from (QEMU's serial pipe, a lab PC's
/// console stream): the milestones, failure patterns, reboots and time limits, and the
/// outcome. Readers call `feed` from their threads; one thread waits in `wait`.
public final class ConsoleWatch: Sendable {
    let state: RunState
    private let wake = DispatchSemaphore(value: 0)
    private let start = Date()
    private let onEvent: @Sendable (SerialEvent) -> Void
    private let finished: @Sendable (String) -> Bool

    /// `finished` may end the watch on a line of its own.
    public init(watcher: SerialWatcher, onEvent: @escaping @Sendable (SerialEvent) -> Void = { _ in },
                finished: @escaping @Sendable (String) -> Bool = { _ in false }) {
        state = RunState(watcher: watcher)
        self.onEvent = onEvent
        self.finished = finished
    }

    /// Seconds since the watch began.
    public var elapsed: Double { Date().timeIntervalSince(start) }

    /// Console bytes, as they come.
    public func feed(_ data: Data) {
        let (events, shouldWake) = state.feed(data, at: elapsed, finished: finished)
        for event in events { onEvent(event) }
        if shouldWake { wake.signal() }
    }

    /// The console's stream ended (end of file, connection closed).
    public func streamEnded() {
        state.markEnded()
        wake.signal()
    }

    /// What the target said outside the console (QEMU's standard error).
    public func addDiagnostics(_ data: Data) { state.addDiagnostics(data) }

    /// Makes `wait` look again (the target ended, or someone asked to stop).
    public func poke() { wake.signal() }

    /// Whether the console's stream ended.
    public var streamHasEnded: Bool { state.ended }

    /// Waits until there is a verdict, `control` stops the run, the time or a pattern's budget
    /// runs out, or the target ends (`isRunning` false, or its stream ends). nil: the target
    /// ended with no verdict yet; the caller decides what that means once it is gone.
    public func wait(timeout: Double?, control: RunControl, isRunning: () -> Bool) -> BootOutcome.Ending? {
        control.onStop { [wake] in wake.signal() }
        while true {
            let now = elapsed
            let (patternDeadline, verdict) = state.status()
            if let verdict {
                // A pattern may have matched in a line still being written: give the line a
                // moment to end, so the transcript holds it whole.
                let settle = Date().addingTimeInterval(0.5)
                while state.hasUnfinishedLine && Date() < settle && isRunning() { usleep(10_000) }
                return verdict
            }
            if let reason = control.stopReason { return .stopped(reason: reason) }
            if state.ended || !isRunning() { return nil }
            if let timeout, now >= timeout { return .timedOut }
            if let deadline = patternDeadline.deadline, now >= deadline { return .patternTimedOut(index: patternDeadline.index) }
            let limits = [timeout, patternDeadline.deadline].compactMap { $0 }
            let wait = max(0.01, (limits.min() ?? now + 3600) - now)
            _ = wake.wait(timeout: .now() + wait)
        }
    }

    /// The outcome once the target is gone: the unfinished last line counts, and `ending`
    /// (nil: whatever the console decided, else `otherwise`) is final.
    public func outcome(ending: BootOutcome.Ending?, otherwise: BootOutcome.Ending) -> BootOutcome {
        for event in state.flush(at: elapsed) { onEvent(event) }
        var ending = ending ?? state.status().verdict ?? otherwise
        // A failure seen in a line still being written: report the line as it ended.
        if case let .failed(verdict, pattern, line) = ending,
           let whole = state.transcript.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix(line) }) {
            ending = .failed(verdict: verdict, pattern: pattern, line: String(whole))
        }
        return BootOutcome(ending: ending, transcript: state.transcript, diagnostics: state.diagnostics,
                           seconds: elapsed, matchTimes: state.matchTimes, lineTimes: state.times)
    }
}

/// The run's shared state: the pipe readers feed it, the waiting thread judges it.
final class RunState: @unchecked Sendable {
    private let lock = NSLock()
    private let watcher: SerialWatcher
    private var lines: [String] = []
    private var lineTimes: [Double] = []
    private var errorBytes: [UInt8] = []
    private var verdict: BootOutcome.Ending?
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
    func status() -> (deadline: (index: Int, deadline: Double?), verdict: BootOutcome.Ending?) {
        lock.withLock { (deadline: (index: watcher.matchedCount, deadline: watcher.deadline), verdict: verdict) }
    }

    var transcript: String { lock.withLock { lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n") } }
    var times: [Double] { lock.withLock { lineTimes } }
    var matchTimes: [Double] { lock.withLock { watcher.matchTimes } }
    var diagnostics: String { lock.withLock { String(decoding: errorBytes, as: UTF8.self) } }
}
