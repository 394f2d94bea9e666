import ArgumentParser
import Foundation
import Logging

/// A failure the command already explained; printed as one line, exit status 1.
public struct CommandFailure: Error, CustomStringConvertible {
    public var description: String
    public var exitCode: Int32

    public init(_ description: String, exitCode: Int32 = 1) {
        self.description = description
        self.exitCode = exitCode
    }
}

/// Options every drops command shares.
public struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print the result as JSON on standard output (progress and errors stay on standard error).")
    public var json = false

    @Flag(name: .shortAndLong, help: "Say more about what is done (repeat for debug detail).")
    public var verbose: Int

    @Flag(name: .shortAndLong, help: "Print only errors on standard error.")
    public var quiet = false

    public init() {}

    /// Log level for swift-log from the flags.
    public var logLevel: Logger.Level {
        if quiet { return .error }
        switch verbose {
        case 0: return .notice
        case 1: return .info
        default: return .debug
        }
    }
}

/// Runs a command the way every drops executable does: usage errors exit 2 with help,
/// failures print one line `NAME: error: …` and exit 1.
public enum CommandMain {
    public static func run<Command: ParsableCommand>(_ type: Command.Type) -> Never {
        let name = Command.configuration.commandName ?? "drops"
        do {
            var command = try type.parseAsRoot()
            try command.run()
            exit(0)
        } catch let failure as CommandFailure {
            FileHandle.standardError.write(Data("\(name): error: \(failure.description)\n".utf8))
            exit(failure.exitCode)
        } catch {
            let code = type.exitCode(for: error)
            if code == .success || code.rawValue == 0 {
                type.exit(withError: error)
            }
            if code == .validationFailure {
                FileHandle.standardError.write(Data((type.fullMessage(for: error) + "\n").utf8))
                exit(2)
            }
            FileHandle.standardError.write(Data("\(name): error: \(error)\n".utf8))
            exit(1)
        }
    }

    /// Sends swift-log output to standard error at the chosen level, once per process.
    public static func bootstrapLogging(_ level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = PlainLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// Writes JSON to standard output with a final newline.
    public static func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(0x0A)
        FileHandle.standardOutput.write(data)
    }
}

/// `level: message` lines on standard error, without timestamps: progress for people.
struct PlainLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .notice
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let prefix = event.level >= .warning ? "\(event.level): " : ""
        FileHandle.standardError.write(Data("\(prefix)\(event.message)\n".utf8))
    }
}
