import DropsProcess
import Foundation

/// One run of a helper program (ipmitool, a power hook) to its end or its time limit,
/// with what it printed. Argument vectors only: nothing goes through a shell.
struct ProgramRun: Sendable {
    var status: Int32
    var output: String
    var errors: String
    var timedOut: Bool

    /// Runs `arguments` (the program first, looked up on PATH unless it is a path).
    static func run(_ arguments: [String], seconds: Double) throws -> ProgramRun {
        guard let program = arguments.first else { throw ProgramError("no program given") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: resolve(program))
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw ProgramError("cannot start \(program): \(error.localizedDescription)") }
        let outputData = ByteBox()
        let errorData = ByteBox()
        let group = DispatchGroup()
        for (pipe, box) in [(output, outputData), (errors, errorData)] {
            group.enter()
            DispatchQueue.global().async {
                box.set(pipe.fileHandleForReading.readDataToEndOfFile())
                group.leave()
            }
        }
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        let timedOut = process.isRunning
        if timedOut { Programs.stop(process, grace: 0.2) }
        process.waitUntilExit()
        group.wait()
        return ProgramRun(status: process.terminationStatus, output: String(decoding: outputData.data, as: UTF8.self),
                          errors: String(decoding: errorData.data, as: UTF8.self), timedOut: timedOut)
    }

    static func resolve(_ program: String) -> String { Programs.find(program) ?? program }

    /// What a person reads when it failed: its own words, else its status.
    var failure: String {
        if timedOut { return "it did not finish in time" }
        let said = (errors + output).split(whereSeparator: \.isNewline).map(String.init)
            .filter { !$0.contains("Unable to Get Channel Cipher Suites") }.suffix(3).joined(separator: " / ")
        return said.isEmpty ? "exit status \(status)" : "exit status \(status): \(said)"
    }
}

struct ProgramError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

final class ByteBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = Data()
    func set(_ data: Data) { lock.withLock { value = data } }
    var data: Data { lock.withLock { value } }
}
