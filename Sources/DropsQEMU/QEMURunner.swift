import Foundation
import Logging

/// How a QEMU run ended.
public struct QEMUOutcome: Sendable {
    public enum Ending: Sendable, Equatable {
        case exited(Int32)
        case timedOut
        case finished
    }

    public var ending: Ending
    public var transcript: String
    public var seconds: Double
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

/// Runs QEMU, streams its serial output line by line to `onLine`, and stops it when
/// `isDone` accepts a line as the last one needed or the time budget runs out.
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

    public func run(_ command: QEMUCommand, timeout: Double,
                    onLine: @escaping @Sendable (String) -> Void = { _ in },
                    isDone: @escaping @Sendable (String) -> Bool = { _ in false }) throws(QEMUError) -> QEMUOutcome {
        guard let path = Self.findExecutable(command.executable) else { throw .notInstalled(command.executable) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = command.arguments
        process.currentDirectoryURL = URL(fileURLWithPath: command.workingDirectory)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice

        let state = SerialState()
        let finished = DispatchSemaphore(value: 0)
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                finished.signal()
                return
            }
            for line in state.append(data) {
                onLine(line)
                if isDone(line) { state.markDone(); finished.signal() }
            }
        }
        logger.info("starting \(command.shellLine) in \(command.workingDirectory)")
        let start = Date()
        do { try process.run() } catch {
            throw .launchFailed(command.executable, reason: error.localizedDescription)
        }
        let waited = finished.wait(timeout: .now() + timeout)
        let done = state.isDone
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        let rest = state.flush()
        if !rest.isEmpty { onLine(rest) }
        let seconds = Date().timeIntervalSince(start)
        let ending: QEMUOutcome.Ending = done ? .finished : (waited == .timedOut ? .timedOut : .exited(process.terminationStatus))
        return QEMUOutcome(ending: ending, transcript: state.text, seconds: seconds)
    }
}

/// The serial transcript, shared between the pipe's reader thread and the caller.
final class SerialState: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private var pending: [UInt8] = []
    private var done = false

    /// Adds bytes and returns the lines they complete.
    func append(_ data: Data) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        bytes += data
        pending += data
        var lines: [String] = []
        while let newline = pending.firstIndex(of: 0x0A) {
            var line = Array(pending[..<newline])
            if line.last == 0x0D { line.removeLast() }
            lines.append(String(decoding: line, as: UTF8.self))
            pending.removeSubrange(...newline)
        }
        return lines
    }

    func flush() -> String {
        lock.lock()
        defer { lock.unlock() }
        let rest = String(decoding: pending, as: UTF8.self)
        pending = []
        return rest
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: bytes, as: UTF8.self)
    }

    func markDone() {
        lock.lock()
        done = true
        lock.unlock()
    }

    var isDone: Bool {
        lock.lock()
        defer { lock.unlock() }
        return done
    }
}
