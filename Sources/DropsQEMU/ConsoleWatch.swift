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
    public func wait(timeout: Double?, control: RunControl, isRunning: () -> Bool) -> QEMUOutcome.Ending? {
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
    public func outcome(ending: QEMUOutcome.Ending?, otherwise: QEMUOutcome.Ending) -> QEMUOutcome {
        for event in state.flush(at: elapsed) { onEvent(event) }
        var ending = ending ?? state.status().verdict ?? otherwise
        // A failure seen in a line still being written: report the line as it ended.
        if case let .failed(verdict, pattern, line) = ending,
           let whole = state.transcript.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix(line) }) {
            ending = .failed(verdict: verdict, pattern: pattern, line: String(whole))
        }
        return QEMUOutcome(ending: ending, transcript: state.transcript, diagnostics: state.diagnostics,
                           seconds: elapsed, matchTimes: state.matchTimes, lineTimes: state.times)
    }
}
