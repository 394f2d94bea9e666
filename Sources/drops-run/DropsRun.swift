import ArgumentParser
import DropsCLI
import DropsImage
import DropsModel
import DropsQEMU
import Foundation

struct DropsRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drops-run",
        abstract: "Boot an image tree in QEMU and check its serial console.",
        discussion: """
            Boots the tree's first stage and boot modules with QEMU's own Multiboot loader \
            (the qemu chain: -kernel and -initrd, run in the tree's bin/ folder so every image \
            sees `name args`), under TCG. The serial console streams to standard error.

            For a probe image (the selftest profile) the probe kernel reports every module it \
            received; drops-run compares size, SHA-256 and command line of each with \
            manifest.json and prints the verified table. For other images it waits for the \
            profile's milestones, in order.

            Network chains (iPXE, PXELINUX, GRUB 2 through drops-serve) are not available in \
            this version.

            Exit status: 0 verified, 1 a module or milestone did not match, 2 usage error, \
            3 timeout, 4 QEMU ended before the check was complete.

            Example:
              drops-build profile selftest && drops-run selftest
            """,
        version: DropsVersion.current)

    @Argument(help: "A profile name whose tree is in OUT/NAME, or the path of an image tree.")
    var image: String

    @Option(name: .long, help: ArgumentHelp("Folder the profile trees are in.", valueName: "dir"))
    var out = "out"

    @Option(name: .long, help: ArgumentHelp("Seconds the whole boot may take.", valueName: "seconds"))
    var timeout: Double = 120

    @Option(name: .long, help: ArgumentHelp("Guest memory in MiB (default: twice the modules' size plus 64, at least 128).", valueName: "MiB"))
    var memory: Int?

    @Option(name: .long, help: ArgumentHelp("Also write the serial output to this file.", valueName: "file"))
    var serialLog: String?

    @Flag(name: .long, help: "Print the QEMU command line and exit.")
    var dryRun = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        if let memory, memory < 16 { throw ValidationError("--memory must be at least 16 MiB") }
    }

    func run() throws {
        CommandMain.bootstrapLogging(output.logLevel)
        var isDirectory: ObjCBool = false
        let tree = FileManager.default.fileExists(atPath: image, isDirectory: &isDirectory) && isDirectory.boolValue
            ? image : "\(out)/\(image)"
        let treeDirectory = URL(fileURLWithPath: tree).standardizedFileURL.path
        let manifest: Manifest
        do { manifest = try TreeVerifier.loadManifest(directory: treeDirectory) } catch {
            throw CommandFailure(error.description + (tree == image ? "" : " (looked for the profile's tree in \(tree))"))
        }
        let command = QEMUCommand.multiboot(manifest: manifest, treeDirectory: treeDirectory, memoryMiB: memory)
        if dryRun {
            print("cd \(command.workingDirectory) && \(command.shellLine)")
            return
        }
        let log = serialLog.flatMap { path -> FileHandle? in
            FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }
        if serialLog != nil && log == nil { throw CommandFailure("cannot write the serial log \(serialLog!)") }
        let echo = !output.quiet && !output.json
        let watcher = MilestoneWatcher(milestones: manifest.milestones)
        let outcome: QEMUOutcome
        do {
            outcome = try QEMURunner().run(command, timeout: timeout, onLine: { line in
                if echo { FileHandle.standardError.write(Data("| \(line)\n".utf8)) }
                log?.write(Data((line + "\n").utf8))
            }, isDone: { line in
                line.contains("DROPS-PROBE end") || watcher.consume(line)
            })
        } catch {
            throw CommandFailure(error.description)
        }
        try? log?.close()
        try report(manifest: manifest, outcome: outcome, watcher: watcher)
    }

    func report(manifest: Manifest, outcome: QEMUOutcome, watcher: MilestoneWatcher) throws {
        let probe = ProbeReport.parse(outcome.transcript)
        let seconds = String(format: "%.1f", outcome.seconds)
        if probe.started {
            let check = ProbeCheck(manifest: manifest, report: probe)
            if output.json {
                try CommandMain.printJSON(RunSummary(check: check, seconds: outcome.seconds))
            } else {
                print(check.table())
                print(check.ok ? "verified \(check.rows.count) modules against \(Manifest.fileName) in \(seconds) s" : "MISMATCH")
            }
            if check.ok { return }
            if !probe.isComplete { throw failure(outcome, expected: "the probe's end line") }
            throw CommandFailure("the booted modules do not match \(Manifest.fileName)")
        }
        if watcher.isComplete {
            print("all \(manifest.milestones.count) milestones seen in \(seconds) s")
            return
        }
        throw failure(outcome, expected: watcher.next.map { "milestone '\($0)'" } ?? "output")
    }

    func failure(_ outcome: QEMUOutcome, expected: String) -> CommandFailure {
        let tail = outcome.transcript.split(whereSeparator: \.isNewline).suffix(40).joined(separator: "\n")
        switch outcome.ending {
        case .timedOut:
            return CommandFailure("timed out after \(Int(timeout)) s waiting for \(expected); last serial lines:\n\(tail)", exitCode: 3)
        default:
            return CommandFailure("QEMU ended before \(expected) appeared; last serial lines:\n\(tail)", exitCode: 4)
        }
    }
}

struct RunSummary: Encodable {
    struct Row: Encodable {
        var index: Int
        var name: String
        var ok: Bool
        var size: Int
        var sha256: String
        var cmdline: String
        var problems: [String]
    }
    var ok: Bool
    var seconds: Double
    var modules: [Row]
    var problems: [String]

    init(check: ProbeCheck, seconds: Double) {
        ok = check.ok
        self.seconds = seconds
        modules = check.rows.map {
            Row(index: $0.index, name: $0.name, ok: $0.ok, size: $0.reported?.size ?? -1,
                sha256: $0.reported?.sha256 ?? "", cmdline: $0.reported?.cmdline ?? "", problems: $0.problems)
        }
        problems = check.problems
    }
}

/// Follows the profile's milestones in order through the serial lines.
final class MilestoneWatcher: @unchecked Sendable {
    private let lock = NSLock()
    private let patterns: [String]
    private var seen = 0

    init(milestones: [Milestone]) {
        patterns = milestones.map(\.pattern)
    }

    /// True once the last milestone has been seen.
    func consume(_ line: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if seen < patterns.count, line.contains(patterns[seen]) { seen += 1 }
        return !patterns.isEmpty && seen == patterns.count
    }

    var isComplete: Bool {
        lock.lock()
        defer { lock.unlock() }
        return seen == patterns.count
    }

    var next: String? {
        lock.lock()
        defer { lock.unlock() }
        return seen < patterns.count ? patterns[seen] : nil
    }
}
