import DropsModel
import Foundation

/// A pattern the serial console must show, with the time it may take.
public struct ExpectedPattern: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Plain text, found anywhere in a line (profile milestones: `DD-L4(v2)` means itself).
        case text
        /// A regular expression (`--expect`), matched within one line.
        case regex
    }

    public var source: String
    public var kind: Kind
    /// Seconds allowed since the previous pattern matched (since the start for the first).
    public var budget: Double

    public init(_ source: String, kind: Kind = .text, budget: Double = .infinity) {
        self.source = source
        self.kind = kind
        self.budget = budget
    }

    /// The reason a regular expression does not compile, or nil.
    public var compileError: String? {
        guard kind == .regex else { return nil }
        do { _ = try NSRegularExpression(pattern: source) } catch { return "\(error.localizedDescription)" }
        return nil
    }

    public var description: String { kind == .text ? "'\(source)'" : "/\(source)/" }
}

/// What the watcher noticed in the serial output.
public enum SerialEvent: Sendable, Equatable {
    /// A complete line, without its line ending and terminal escapes.
    case line(String)
    /// Pattern number `index` matched, `elapsed` seconds after the run started.
    case matched(index: Int, elapsed: Double)
    /// The first pattern appeared again after it had matched: the guest started over.
    case rebooted(line: String)
    /// Failure pattern number `index` matched in `line`: the boot failed.
    case failed(index: Int, line: String)
}

/// Follows a serial console byte by byte: splits it into lines (CRLF or LF, across reads),
/// removes the terminal escapes firmware writes, and matches the expected patterns in order,
/// each within its own time budget. Lines are matched as they arrive, so a prompt without a
/// newline matches too. Not thread-safe: one reader feeds it.
public final class SerialWatcher {
    public let patterns: [ExpectedPattern]
    /// Lines that end the run as a failure (the profile's `failures`, `--fail-on`).
    public let failures: [FailurePattern]
    public static let maxLineLength = 16384
    private let expressions: [NSRegularExpression?]
    private let failureExpressions: [NSRegularExpression?]
    /// The failure pattern that matched first, and the line it matched in.
    public private(set) var failure: (index: Int, line: String)?
    private var pending: [UInt8] = []
    /// Characters of the pending (unfinished) line already consumed by a match.
    private var consumedInLine = 0
    private var lineNumber = 0
    /// The line the first pattern matched in, so only a later line counts as a reboot.
    private var firstMatchLine: Int?
    public private(set) var matchedCount = 0
    public private(set) var lastMatchTime: Double = 0
    public private(set) var matchTimes: [Double] = []
    public private(set) var rebooted = false

    /// Throws the first pattern that does not compile.
    public init(patterns: [ExpectedPattern], failures: [FailurePattern] = []) throws {
        self.patterns = patterns
        self.failures = failures
        var failureExpressions: [NSRegularExpression?] = []
        for failure in failures {
            guard failure.regex else { failureExpressions.append(nil); continue }
            do { failureExpressions.append(try NSRegularExpression(pattern: failure.pattern)) } catch {
                throw SerialWatcherError.badPattern(failure.pattern, reason: "\(error.localizedDescription)")
            }
        }
        self.failureExpressions = failureExpressions
        var expressions: [NSRegularExpression?] = []
        for pattern in patterns {
            switch pattern.kind {
            case .text:
                expressions.append(nil)
            case .regex:
                do { expressions.append(try NSRegularExpression(pattern: pattern.source)) } catch {
                    throw SerialWatcherError.badPattern(pattern.source, reason: pattern.compileError ?? "\(error)")
                }
            }
        }
        self.expressions = expressions
    }

    public var isComplete: Bool { matchedCount == patterns.count }
    public var next: ExpectedPattern? { matchedCount < patterns.count ? patterns[matchedCount] : nil }

    /// The time (seconds since the start) by which the next pattern must have matched.
    public var deadline: Double? {
        guard let next, next.budget.isFinite else { return nil }
        return lastMatchTime + next.budget
    }

    /// Takes bytes read from the console at `time` seconds since the start.
    public func feed(_ bytes: some Sequence<UInt8>, at time: Double) -> [SerialEvent] {
        var events: [SerialEvent] = []
        for byte in bytes {
            // A line longer than any console line is cut, so a guest that never ends its
            // line cannot make each read cost more than the last.
            if pending.count >= Self.maxLineLength { endLine(at: time, into: &events) }
            if byte == 0x0A { endLine(at: time, into: &events) } else { pending.append(byte) }
        }
        if !pending.isEmpty {
            // A prompt (`jdb: `) has no newline after it: look at the line so far too.
            let line = Self.clean(pending)
            match(in: line, at: time, into: &events)
            checkFailures(in: line, into: &events)
        }
        return events
    }

    private func checkFailures(in line: String, into events: inout [SerialEvent]) {
        guard failure == nil else { return }
        for (index, pattern) in failures.enumerated() {
            let found: Bool
            if let expression = failureExpressions[index] {
                found = expression.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) != nil
            } else {
                found = line.contains(pattern.pattern)
            }
            if found {
                failure = (index, line)
                events.append(.failed(index: index, line: line))
                return
            }
        }
    }

    private func endLine(at time: Double, into events: inout [SerialEvent]) {
        let line = Self.clean(pending)
        match(in: line, at: time, into: &events)
        checkFailures(in: line, into: &events)
        if let firstMatchLine, firstMatchLine != lineNumber, !rebooted, contains(line, patternAt: 0, from: 0) != nil {
            rebooted = true
            events.append(.rebooted(line: line))
        }
        events.append(.line(line))
        pending.removeAll(keepingCapacity: true)
        consumedInLine = 0
        lineNumber += 1
    }

    /// The unfinished last line, cleaned (for the transcript's end).
    public var unfinishedLine: String { Self.clean(pending) }

    private func match(in line: String, at time: Double, into events: inout [SerialEvent]) {
        // After a failure nothing counts as progress, even lines read in the same burst.
        guard failure == nil else { return }
        while matchedCount < patterns.count, let end = contains(line, patternAt: matchedCount, from: consumedInLine) {
            if matchedCount == 0 { firstMatchLine = lineNumber }
            consumedInLine = end
            matchedCount += 1
            lastMatchTime = time
            matchTimes.append(time)
            events.append(.matched(index: matchedCount - 1, elapsed: time))
        }
    }

    /// The character offset just past pattern `index` in `line` at or after `from`, or nil.
    private func contains(_ line: String, patternAt index: Int, from: Int) -> Int? {
        let characters = Array(line)
        guard from <= characters.count else { return nil }
        let rest = String(characters[from...])
        if let expression = expressions[index] {
            let range = NSRange(rest.startIndex..., in: rest)
            guard let found = expression.firstMatch(in: rest, range: range), let swiftRange = Range(found.range, in: rest) else { return nil }
            return from + rest.distance(from: rest.startIndex, to: swiftRange.upperBound)
        }
        guard let range = rest.range(of: patterns[index].source) else { return nil }
        return from + rest.distance(from: rest.startIndex, to: range.upperBound)
    }

    /// Removes a trailing CR, terminal escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL`
    /// or `ESC \`, and two-byte `ESC x`) and other control characters but tabs.
    public static func clean(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x1B {
                index += 1
                guard index < bytes.count else { break }
                switch bytes[index] {
                case UInt8(ascii: "["):
                    index += 1
                    while index < bytes.count, !(0x40...0x7E).contains(bytes[index]) { index += 1 }
                    index += 1
                case UInt8(ascii: "]"):
                    index += 1
                    while index < bytes.count, bytes[index] != 0x07, !(bytes[index] == 0x1B && index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\\")) {
                        index += 1
                    }
                    index += bytes.indices.contains(index) && bytes[index] == 0x1B ? 2 : 1
                case UInt8(ascii: "("), UInt8(ascii: ")"):
                    index += 2
                default:
                    index += 1
                }
                continue
            }
            if byte >= 0x20 || byte == 0x09 { out.append(byte) }
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

public enum SerialWatcherError: Error, Sendable, CustomStringConvertible, Equatable {
    case badPattern(String, reason: String)

    public var description: String {
        switch self {
        case let .badPattern(pattern, reason):
            return "--expect '\(pattern)' is not a valid regular expression: \(reason)"
        }
    }
}
