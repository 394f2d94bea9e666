import DropsCLI
import DropsImage
import DropsModel
import DropsQEMU
import DropsTFTP
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix

/// Progress lines on standard error, stamped with the seconds since drops-run started.
struct Progress: Sendable {
    let quiet: Bool
    let start = Date()

    func say(_ text: String) {
        guard !quiet else { return }
        let stamp = String(format: "%6.1fs", Date().timeIntervalSince(start))
        FileHandle.standardError.write(Data("drops-run [\(stamp)] \(text)\n".utf8))
    }
}

/// One boot of a tree: the TFTP server serving it, the GRUB image made for it, the QEMU
/// command, and what the server saw while the guest booted.
final class BootSession: BootServing {
    let chain: Chain
    let provider: TFTPProvider
    let manifest: Manifest
    let treeDirectory: String
    let machine: MachineOptions
    let progress: Progress
    let port: Int
    let isoPath: String
    let isPrivate: Bool
    let tapDevice: String?
    /// The run's private lab network with drops-serve pxe in it (--network private).
    let lab: LabServerProcess?
    private let server: (TFTPServer, MultiThreadedEventLoopGroup)?
    private let scratch: String?
    private let uefiScratch: String?
    private let state = NIOLockedValueBox(SessionState())

    struct SessionState {
        var served: [TransferRecord] = []
        var control: RunControl?
        var sawFirstRequest = false
    }

    init(run: DropsRun, manifest: Manifest, treeDirectory: String, progress: Progress) throws {
        chain = run.chain
        provider = run.tftp
        self.manifest = manifest
        self.treeDirectory = treeDirectory
        self.progress = progress
        var machine = MachineOptions(memoryMiB: run.memory, cpus: run.cpus, nic: MachineOptions.nicModels[run.nic] ?? run.nic,
                                     kvm: false, extraArguments: run.qemuArg)
        machine.mac = run.mac
        isoPath = run.isoPath(treeDirectory: treeDirectory)
        tapDevice = run.tapDevice
        isPrivate = run.network == .private
        if run.firmware == "uefi" {
            guard FileManager.default.fileExists(atPath: MachineOptions.ovmfCode) else {
                throw CommandFailure("--firmware uefi needs OVMF (\(MachineOptions.ovmfCode)): install Debian's ovmf package")
            }
            // OVMF writes its boot variables: each run gets its own copy of the store.
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("drops-run-uefi-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            try FileManager.default.copyItem(atPath: MachineOptions.ovmfVariables, toPath: folder + "/OVMF_VARS.fd")
            machine.uefi = (MachineOptions.ovmfCode, folder + "/OVMF_VARS.fd")
            // With 128 MiB, OVMF stopped on an invalid opcode after iPXE loaded the kernel.
            if run.memory == nil { machine.memoryMiB = max(QEMUCommand.recommendedMemory(manifest), 512) }
            uefiScratch = folder
        } else {
            uefiScratch = nil
        }
        self.machine = machine
        if run.network == .private {
            server = nil
            scratch = nil
            port = RuntimeDelivery.standardPort
            lab = run.dryRun ? nil : try Self.startLab(run: run, manifest: manifest, treeDirectory: treeDirectory, progress: progress)
            return
        }
        lab = nil
        guard chain != .qemu, chain != .iso, provider == .drops, tapDevice == nil, !run.dryRun else {
            server = nil
            scratch = nil
            port = 0
            return
        }
        var scratch: String?
        var configuration = TFTPServerConfiguration(root: treeDirectory)
        configuration.host = "127.0.0.1"
        configuration.port = run.hostTFTPPort(manifest)
        // Menus name files as /PROFILE/bin/…, the way a shared TFTP root holds many trees.
        configuration.stripPrefixes = ["/" + manifest.profile.name]
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server: TFTPServer
        let port: Int
        do {
            if chain == .grub {
                let folder = FileManager.default.temporaryDirectory.appendingPathComponent("drops-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
                scratch = folder
                configuration.extraFiles = [GrubNetImage.Platform.bios.entry: folder + "/core.0"]
            }
            // Progress lines say what was served; the server's own log only with -v.
            var logger = Logger(label: "drops.tftp")
            logger.logLevel = run.output.verbose > 0 ? .notice : .error
            server = try TFTPServer(configuration: configuration, group: group, logger: logger)
            port = try server.start().port ?? 0
            if let scratch {
                try GrubNetImage.make(server: "10.0.2.2", port: port, output: scratch + "/core.0")
            }
        } catch {
            try? group.syncShutdownGracefully()
            if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
            throw CommandFailure("\(error)")
        }
        self.server = (server, group)
        self.scratch = scratch
        self.port = port
        progress.say("serving \(treeDirectory) over TFTP on 127.0.0.1:\(port)" + (chain == .grub ? " (with a GRUB 2 image made for this port)" : ""))
    }

    /// Makes the private lab network and starts drops-serve pxe in it, serving the tree's
    /// folder as a lab server would.
    static func startLab(run: DropsRun, manifest: Manifest, treeDirectory: String, progress: Progress) throws -> LabServerProcess {
        if let reason = PrivateLabNetwork.unavailableReason() {
            throw CommandFailure("--network private cannot run here: \(reason); without root, use --network user (the default)")
        }
        let root = try ServedFiles.servedRoot(treeDirectory: treeDirectory, manifest: manifest, purpose: "--network private")
        guard let serve = DropsRun.siblingExecutable("drops-serve") else {
            throw CommandFailure("--network private needs drops-serve beside drops-run or on PATH")
        }
        for name in PrivateLabNetwork.removeLeftovers() {
            progress.say("removed the network namespace \(name) of an earlier run that no longer exists")
        }
        let network: PrivateLabNetwork
        do { network = try PrivateLabNetwork() } catch { throw CommandFailure("cannot make the private lab network: \(error)") }
        do {
            let lab = try LabServerProcess(network: network, executable: serve, root: root, profile: manifest.profile.name,
                                           chain: run.chain.rawValue, verbose: run.output.verbose > 0)
            progress.say("private lab network \(network.namespace): bridge \(PrivateLabNetwork.bridge) \(PrivateLabNetwork.serverAddress)/\(PrivateLabNetwork.prefixLength), "
                         + "guest on \(PrivateLabNetwork.tap); drops-serve pxe hands out \(PrivateLabNetwork.dhcpRange) and serves \(root) over TFTP on port 69")
            return lab
        } catch {
            network.remove()
            throw error
        }
    }

    /// Called by the server after each transfer.
    private func transferEnded(_ record: TransferRecord) {
        let (first, control, again) = state.withLockedValue { value -> (Bool, RunControl?, Bool) in
            let first = !value.sawFirstRequest
            value.sawFirstRequest = true
            let entry = chain.entry ?? ""
            let again = record.outcome == "ok" && normalized(record.file) == entry && value.served.contains { normalized($0.file) == entry && $0.outcome == "ok" }
            value.served.append(record)
            return (first, value.control, again)
        }
        if first { progress.say("the firmware has its DHCP lease and asks our server for \(record.file)") }
        let name = normalized(record.file)
        if record.outcome == "ok" {
            progress.served(name, record)
        } else if ServedFiles.isListed(name, in: manifest) {
            // A file the manifest promises but the tree lacks: the boot cannot succeed.
            control?.stop("the guest asked for \(name), which the manifest lists but the tree does not have (\(record.outcome))")
        }
        if again {
            control?.stop("\(KVMSupport.rebootReasonPrefix) \(name) a second time: the guest started over")
        }
    }

    /// The request's name as a path in the tree.
    func normalized(_ name: String) -> String { ServedFiles.treePath(name, profile: manifest.profile.name) }

    var served: [TransferRecord] { state.withLockedValue { $0.served } }
    var infrastructureFailure: InfrastructureFailure? { nil }

    func command(kvm: Bool) -> QEMUCommand {
        var machine = machine
        machine.kvm = kvm
        if isPrivate {
            var command = QEMUCommand.tapNetwork(manifest: manifest, device: PrivateLabNetwork.tap, machine: machine)
            command.launchPrefix = lab?.network?.launchPrefix ?? ["ip", "netns", "exec", PrivateLabNetwork.namePrefix + String(getpid())]
            return command
        }
        if let tapDevice { return QEMUCommand.tapNetwork(manifest: manifest, device: tapDevice, machine: machine) }
        switch (chain, provider) {
        case (.qemu, _):
            return QEMUCommand.multiboot(manifest: manifest, treeDirectory: treeDirectory, machine: machine)
        case (.iso, _):
            return QEMUCommand.cdrom(manifest: manifest, image: isoPath, machine: machine)
        case (_, .qemu):
            return QEMUCommand.builtinNetwork(manifest: manifest, entry: chain.entry!, treeDirectory: treeDirectory, machine: machine)
        case (_, .drops):
            return QEMUCommand.network(manifest: manifest, entry: chain.entry!, port: port, machine: machine)
        }
    }

    /// Boots under KVM or TCG as `mode` says, falling back from a failed KVM attempt.
    func boot(watcher: SerialWatcher, timeout: Double?, mode: KVMMode,
              onLine: @escaping @Sendable (String) -> Void) throws -> QEMUOutcome {
        let executable = command(kvm: false).executable
        let key = KVMSupport.memoryKey(executable: executable, chain: chain.rawValue)
        var useKVM = false
        switch mode {
        case .off: break
        case .on:
            guard KVMSupport.deviceUsable() else { throw CommandFailure("--kvm on, but /dev/kvm cannot be opened; use --kvm auto or off") }
            useKVM = true
        case .auto:
            if !KVMSupport.deviceUsable() {
                useKVM = false
            } else if KVMSupport.failedBefore(key: key) {
                progress.say("KVM failed here before (\(KVMSupport.memoryFile())): using TCG; --kvm on tries KVM again")
            } else {
                useKVM = true
            }
        }
        if useKVM {
            // The console streams as usual: a retry only follows a run in which the guest
            // wrote nothing, so nothing shown is ever taken back.
            let outcome = try attempt(kvm: true, watcher: watcher, timeout: timeout, onLine: onLine)
            if mode == .auto, let reason = KVMSupport.retryReason(outcome) {
                KVMSupport.rememberFailure(key: key, reason: reason)
                progress.say("\(reason); trying again under TCG (remembered in \(KVMSupport.memoryFile()))")
                state.withLockedValue { $0 = SessionState() }
                let fresh: SerialWatcher
                do { fresh = try SerialWatcher(patterns: watcher.patterns, failures: watcher.failures) } catch { throw CommandFailure("\(error)") }
                return try attempt(kvm: false, watcher: fresh, timeout: timeout, onLine: onLine)
            }
            return outcome
        }
        return try attempt(kvm: false, watcher: watcher, timeout: timeout, onLine: onLine)
    }

    private func attempt(kvm: Bool, watcher: SerialWatcher, timeout: Double?,
                         onLine: @escaping @Sendable (String) -> Void) throws -> QEMUOutcome {
        let command = command(kvm: kvm)
        let control = RunControl()
        state.withLockedValue { $0.control = control }
        if let (server, _) = server {
            // The callback is set once; the state tells it which run it belongs to.
            server.setTransferObserver { [self] record in transferEnded(record) }
        }
        lab?.observe(transfers: { [self] record in transferEnded(record) }, exchanges: { [progress] exchange in
            if exchange.answered { progress.say("drops-serve: \(exchange.mac) \(exchange.request): \(exchange.outcome)") }
        })
        progress.say("starting \(command.executable) (\(kvm ? "KVM" : "TCG"), \(machine.nic), chain \(chain.rawValue)"
                     + (provider == .qemu ? ", QEMU's built-in TFTP" : "") + (tapDevice.map { ", on tap device \($0)" } ?? "")
                     + (isPrivate ? ", on the private lab network" : "")
                     + (machine.uefi != nil ? ", UEFI" : "") + ")")
        let events = progress.consoleEvents(patterns: watcher.patterns, failures: watcher.failures, subject: "guest", onLine: onLine)
        do {
            return try QEMURunner().run(command, timeout: timeout, watcher: watcher, control: control, onEvent: events)
        } catch {
            throw CommandFailure(error.description)
        }
    }

    /// Ends the boot in progress (a signal came).
    func interrupt(_ reason: String) {
        state.withLockedValue { $0.control }?.stop(reason)
    }

    /// Gives transfers still running when the run ends up to 2 s to finish, so the
    /// report sees them: the guest may boot and print before our server has the ACK of the
    /// last module's last block (they travel separately through QEMU).
    func settleTransfers() {
        server?.0.waitUntilIdle(upTo: .seconds(2))
        lab?.stop()
    }

    func close() {
        if let (server, group) = server {
            server.shutdown(grace: .seconds(1))
            try? group.syncShutdownGracefully()
        }
        if let lab {
            lab.stop()
            lab.network?.remove()
        }
        if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
        if let uefiScratch { try? FileManager.default.removeItem(atPath: uefiScratch) }
    }
}
