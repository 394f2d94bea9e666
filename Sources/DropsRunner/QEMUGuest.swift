import DropsProcess
import DropsQEMU
import Foundation
import Logging

/// A QEMU guest as a boot target: powering on starts QEMU, its serial console is QEMU's
/// standard output, powering off ends the process.
public final class QEMUGuest: BootTarget, @unchecked Sendable {
    public let command: QEMUCommand
    private let logger: Logger
    // Set up in openConsole and powerOn, which one thread calls in order before the wait.
    private let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private var outputClosed = DispatchSemaphore(value: 0)
    private var errorsClosed = DispatchSemaphore(value: 0)
    private var watch: ConsoleWatch?

    public init(command: QEMUCommand, logger: Logger = Logger(label: "drops.qemu")) {
        self.command = command
        self.logger = logger
    }

    public func openConsole(into watch: ConsoleWatch, control: RunControl) throws {
        self.watch = watch
        outputClosed = Self.readAll(output) { watch.feed($0) } atEnd: { watch.streamEnded() }
        errorsClosed = Self.readAll(errors) { watch.addDiagnostics($0) } atEnd: {}
    }

    public func powerOn() throws {
        guard let path = Programs.find(command.executable) else { throw QEMUError.notInstalled(command.executable) }
        if let launcher = command.launchPrefix.first {
            process.executableURL = URL(fileURLWithPath: launcher)
            process.arguments = Array(command.launchPrefix.dropFirst()) + [path] + command.arguments
        } else {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = command.arguments
        }
        process.currentDirectoryURL = URL(fileURLWithPath: command.workingDirectory)
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        // QEMU's exit wakes the wait too: the pipe's end of file alone was seen to come late.
        process.terminationHandler = { [watch] _ in watch?.poke() }
        logger.info("starting \(command.shellLine) in \(command.workingDirectory)")
        do { try process.run() } catch {
            throw QEMUError.launchFailed(command.executable, reason: error.localizedDescription)
        }
    }

    public var isRunning: Bool { process.isRunning }

    /// QEMU ends on SIGTERM, unless it inherited SIGTERM blocked: then it is killed.
    public func powerOff() {
        Programs.stop(process, grace: 5)
    }

    /// The pipes reach their end once QEMU is gone: what is left is read before judging.
    public func closeConsole() {
        if process.processIdentifier != 0 {
            process.waitUntilExit()
            _ = outputClosed.wait(timeout: .now() + 2)
            _ = errorsClosed.wait(timeout: .now() + 2)
        }
        output.fileHandleForReading.readabilityHandler = nil
        errors.fileHandleForReading.readabilityHandler = nil
    }

    public var endingWithoutVerdict: BootOutcome.Ending { .exited(process.isRunning ? -1 : process.terminationStatus) }

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
