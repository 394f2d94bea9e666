import ArgumentParser
import DropsCLI
import DropsImage
import DropsModel
import DropsQEMU
import DropsTFTP
import Foundation
import NIOPosix

struct DropsRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drops-run",
        abstract: "Boot an image tree in QEMU and check its serial console.",
        discussion: """
            Boots a tree in QEMU under TCG. The serial console streams to standard error.

            Chains (--chain):
              qemu      QEMU's own Multiboot loader (-kernel and -initrd, run in the tree's bin/ \
            folder so every image sees `name args`). No network.
              pxelinux  the way a PC boots: QEMU's PXE ROM gets lpxelinux.0 from drops-serve's \
            TFTP server, started in this process on 127.0.0.1 at a free port and serving the \
            tree; PXELINUX's mboot.c32 then loads every module from it. Images see `bin/NAME \
            args`. No root needed.

            For a probe image (the selftest profile) the probe kernel reports every module it \
            received; drops-run compares size, SHA-256 and command line of each with \
            manifest.json and prints the verified table. For other images it waits for the \
            profile's milestones, in order.

            The iPXE and GRUB 2 chains are not available in this version.

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

    @Option(name: .long, help: ArgumentHelp("How to boot: qemu (QEMU's Multiboot loader) or pxelinux (PXE over the network from our TFTP server).", valueName: "chain"))
    var chain = "qemu"

    @Option(name: .long, help: ArgumentHelp("Network card model for network chains (e1000, rtl8139, pcnet, ne2k_pci, virtio-net-pci).", valueName: "model"))
    var nic = "e1000"

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
        guard ["qemu", "pxelinux"].contains(chain) else { throw ValidationError("--chain is qemu or pxelinux") }
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
        var server: (TFTPServer, MultiThreadedEventLoopGroup)?
        defer {
            if let (tftp, group) = server {
                tftp.shutdown(grace: .seconds(1))
                try? group.syncShutdownGracefully()
            }
        }
        let command: QEMUCommand
        if chain == "pxelinux" {
            guard let path = manifest.bootPaths.first(where: { $0.name == "pxelinux" }), path.usable else {
                let reason = manifest.bootPaths.first(where: { $0.name == "pxelinux" })?.reason ?? "the manifest has no pxelinux boot path"
                throw CommandFailure("this tree cannot boot through PXELINUX: \(reason)")
            }
            var port = 0
            if !dryRun {
                let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
                var configuration = TFTPServerConfiguration(root: treeDirectory)
                configuration.host = "127.0.0.1"
                configuration.port = 0
                do {
                    let tftp = try TFTPServer(configuration: configuration, group: group)
                    port = try tftp.start().port ?? 0
                    server = (tftp, group)
                } catch {
                    try? group.syncShutdownGracefully()
                    throw CommandFailure(error.description)
                }
            }
            command = QEMUCommand.network(manifest: manifest, entry: path.entry, port: port, nic: nic, memoryMiB: memory)
        } else {
            command = QEMUCommand.multiboot(manifest: manifest, treeDirectory: treeDirectory, memoryMiB: memory)
        }
        if dryRun {
            print("cd \(command.workingDirectory) && \(command.shellLine)")
            return
        }
        // A tree that no longer matches its manifest cannot pass the check: say what differs
        // now instead of after the firmware's timeout.
        if let differences = try? TreeVerifier.verify(directory: treeDirectory).differences, !differences.isEmpty {
            throw CommandFailure("\(treeDirectory) differs from its manifest, rebuild it (drops-build profile \(manifest.profile.name)): "
                                 + differences.map(\.description).joined(separator: "; "))
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
            let check = ProbeCheck(manifest: manifest, report: probe, form: chain == "pxelinux" ? .path : .name)
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
