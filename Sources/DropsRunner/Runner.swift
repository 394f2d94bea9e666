import DropsImage
import DropsLab
import DropsModel
import DropsProcess
import DropsQEMU
import Foundation

/// What a finished run gives its command: what goes to standard output, and the exit
/// status with its line when it failed.
public struct RunResult: Sendable {
    /// The table and verdict line, the JSON object or the TAP stream (nil: nothing).
    public var output: String?
    public var exitCode: Int32
    /// Why it failed, for the error line (with the last console lines where they help).
    public var failure: String?
}

/// One run of drops-run, start to result: the tree found (and built), checked against its
/// manifest, booted on a QEMU guest or a lab PC, judged and reported.
public struct Runner: Sendable {
    public let options: RunOptions
    public let progress: Progress
    /// Each console line as it comes (the command echoes it behind `| `).
    public let consoleLine: @Sendable (String) -> Void

    public init(options: RunOptions, progress: Progress, consoleLine: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.progress = progress
        self.consoleLine = consoleLine
    }

    public func run() throws -> RunResult {
        if options.build { try buildTree() }
        let image = options.image
        let tree = Self.isDirectory(image) ? image : "\(options.out)/\(image)"
        let treeDirectory = URL(fileURLWithPath: tree).standardizedFileURL.path
        let manifest: Manifest
        do { manifest = try TreeVerifier.loadManifest(directory: treeDirectory) } catch {
            throw RunFailure(error.description + (tree == image ? "" : " (looked for the profile's tree in \(tree); --build builds it)"))
        }
        // A lab PC boots over its own chain from the hosts file, else --chain.
        let machine = try labHost()
        let chain = machine?.chain.flatMap { Chain(rawValue: $0) } ?? options.chain
        try checkChain(chain, manifest, treeDirectory: treeDirectory)
        if options.http { try checkHTTP(manifest) }
        let patterns = options.expectedPatterns(manifest)
        let watcher: SerialWatcher
        let failures = (manifest.failures ?? []) + options.failOn.map { FailurePattern(pattern: $0, regex: true, verdict: "failure pattern matched") }
        do { watcher = try SerialWatcher(patterns: patterns, failures: failures) } catch { throw RunFailure("\(error)") }
        let limit = options.timeout ?? (patterns.isEmpty ? nil : 300)

        if !options.dryRun && !options.noVerify {
            // A tree that no longer matches its manifest cannot pass the check: say what
            // differs now instead of after the firmware's timeout.
            if let differences = try? TreeVerifier.verify(directory: treeDirectory).differences, !differences.isEmpty {
                throw RunFailure("\(treeDirectory) differs from its manifest (rebuild it: drops-build profile \(manifest.profile.name); "
                                 + "or boot it as it is: --no-verify): " + differences.map(\.description).joined(separator: "; "))
            }
        }
        if let machine {
            return try runOnLabPC(machine, chain: chain, manifest: manifest, treeDirectory: treeDirectory, watcher: watcher, patterns: patterns, limit: limit)
        }
        let interruption = options.network == .private ? Interruption() : nil
        let session = try QEMUSession(options: options, manifest: manifest, treeDirectory: treeDirectory, progress: progress)
        defer { session.close() }
        if let delivery = RuntimeDelivery.assess(manifest, network: options.runtimeNetwork(port: session.port)), !options.dryRun {
            progress.say(delivery.summary)
        }
        if options.dryRun {
            let command = session.command(kvm: options.kvm == .on)
            return RunResult(output: "cd \(command.workingDirectory) && \(command.shellLine)", exitCode: 0)
        }
        let log = try openSerialLog()
        interruption?.onSignal { name in session.interrupt("interrupted by \(name)") }
        let outcome = try session.boot(watcher: watcher, timeout: limit, mode: options.kvm, onLine: consoleLines(log))
        try? log?.close()
        session.settleTransfers()
        if let signal = interruption?.received {
            throw RunFailure("interrupted by \(signal); the private lab network and its server are removed", exitCode: RunExit.interrupted)
        }
        return try RunReport(options: options, manifest: manifest, outcome: outcome, patterns: patterns, session: session, timeout: limit).result()
    }

    /// The lab PC of --host from the hosts file, or nil for a QEMU run.
    func labHost() throws -> HostTable.Host? {
        guard let name = options.host else { return nil }
        let path = options.hostsFile
        let table: HostTable
        do { table = try HostTable.load(path: path) } catch {
            throw RunFailure(error.description + (options.hosts == nil ? " (give the hosts file with --hosts)" : ""), exitCode: RunExit.usage)
        }
        guard let machine = table.hosts.first(where: { $0.name == name }) ?? table.host(mac: name) else {
            let known = table.hosts.map(\.name).joined(separator: ", ")
            throw RunFailure("\(path): no host \(name)" + (known.isEmpty ? "" : "; the file has \(known)"), exitCode: RunExit.usage)
        }
        return machine
    }

    /// --host: the lab PC booted and judged like a QEMU guest; an infrastructure failure is
    /// tried again up to --retries times.
    func runOnLabPC(_ machine: HostTable.Host, chain: Chain, manifest: Manifest, treeDirectory: String, watcher: SerialWatcher,
                    patterns: [ExpectedPattern], limit: Double?) throws -> RunResult {
        let interruption = Interruption()
        let log = try openSerialLog()
        var attempt = 0
        while true {
            attempt += 1
            let session = try LabSession(options: options, host: machine, chain: chain, manifest: manifest,
                                         treeDirectory: treeDirectory, progress: progress)
            let fresh: SerialWatcher
            do { fresh = attempt == 1 ? watcher : try SerialWatcher(patterns: watcher.patterns, failures: watcher.failures) } catch { throw RunFailure("\(error)") }
            interruption.onSignal { signal in session.interrupt("interrupted by \(signal)") }
            let outcome: BootOutcome
            do {
                outcome = try session.boot(watcher: fresh, timeout: limit, onLine: consoleLines(log))
            } catch {
                session.close()
                throw error
            }
            session.close()
            if let signal = interruption.received {
                throw RunFailure("interrupted by \(signal); \(machine.name) is switched off and free again", exitCode: RunExit.interrupted)
            }
            if let failure = session.infrastructureFailure, attempt <= options.retries {
                progress.say("infrastructure failure (\(failure.kind.rawValue)): \(failure.message); trying again (\(attempt) of \(options.retries) retries)")
                continue
            }
            try? log?.close()
            return try RunReport(options: options, manifest: manifest, outcome: outcome, patterns: patterns, session: session, timeout: limit).result()
        }
    }

    /// Each console line to the command and to the serial log.
    func consoleLines(_ log: FileHandle?) -> @Sendable (String) -> Void {
        let consoleLine = consoleLine
        return { line in
            consoleLine(line)
            log?.write(Data((line + "\n").utf8))
        }
    }

    func openSerialLog() throws -> FileHandle? {
        guard let serialLog = options.serialLog else { return nil }
        guard FileManager.default.createFile(atPath: serialLog, contents: nil), let handle = FileHandle(forWritingAtPath: serialLog) else {
            throw RunFailure("cannot write the serial log \(serialLog); check that its folder exists and is writable")
        }
        return handle
    }

    /// Runs drops-build from beside this executable (or from PATH) to build the profile.
    func buildTree() throws {
        guard let executable = Programs.sibling("drops-build") else { throw RunFailure("--build needs drops-build beside drops-run or on PATH") }
        progress.say("building \(options.image) with \(executable)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["profile", options.image, "--out", options.out] + (options.chain == .iso ? ["--iso"] : []) + (options.quiet ? ["-q"] : [])
        // The build's table goes to standard error: standard output is the run's.
        process.standardOutput = FileHandle.standardError
        do { try process.run() } catch { throw RunFailure("cannot start \(executable): \(error.localizedDescription)") }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw RunFailure("building \(options.image) failed (drops-build exit status \(process.terminationStatus)); nothing was booted")
        }
    }

    /// Refuses a chain the tree cannot boot, with the reason, before anything starts.
    func checkChain(_ chain: Chain, _ manifest: Manifest, treeDirectory: String) throws {
        switch chain {
        case .pxelinux:
            guard let path = manifest.bootPaths.first(where: { $0.name == "pxelinux" }), path.usable else {
                let reason = manifest.bootPaths.first(where: { $0.name == "pxelinux" })?.reason ?? "the manifest has no pxelinux boot path"
                throw RunFailure("this tree cannot boot through PXELINUX: \(reason)")
            }
        case .ipxe:
            guard let path = manifest.bootPaths.first(where: { $0.name == "ipxe" }) else {
                throw RunFailure("this tree has no boot.ipxe; rebuild it with drops-build profile \(manifest.profile.name)")
            }
            // boot.ipxe hands large chains over to PXELINUX: that needs PXELINUX's files.
            if !path.usable, manifest.bootPaths.first(where: { $0.name == "pxelinux" })?.usable != true {
                throw RunFailure("this tree cannot boot through iPXE: \(path.reason)")
            }
        case .grub:
            if let reason = GrubNetImage.unavailableReason() { throw RunFailure("cannot boot through GRUB 2: \(reason)") }
            guard manifest.files.contains(where: { $0.path == Grub2Config.fileName }) else {
                throw RunFailure("this tree has no \(Grub2Config.fileName); rebuild it with drops-build profile \(manifest.profile.name)")
            }
        case .iso:
            let iso = options.isoPath(treeDirectory: treeDirectory)
            guard FileManager.default.fileExists(atPath: iso) else {
                throw RunFailure("no CD image \(iso); make it with drops-build profile \(manifest.profile.name) --iso (or drops-run --build --iso)")
            }
        case .qemu:
            break
        }
    }

    /// --http needs a tree whose http_base names QEMU's host (10.0.2.2), where our listener is.
    func checkHTTP(_ manifest: Manifest) throws {
        let name = manifest.profile.name
        guard let base = HTTPBase.of(manifest) else {
            throw RunFailure("--http: this tree fetches everything over TFTP; build it with drops-build profile \(name) --http-base http://10.0.2.2:8080 to boot it over HTTP")
        }
        guard HTTPBase.userNetworkPort(manifest) != nil else {
            throw RunFailure("--http: the tree's http_base \(base) is not at 10.0.2.2, QEMU's address for this host, where drops-run listens; "
                             + "rebuild with --http-base http://10.0.2.2:PORT, or drop --http and let \(base) serve it")
        }
    }

    public static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
