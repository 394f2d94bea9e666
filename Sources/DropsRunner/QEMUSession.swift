import DropsHTTP
import DropsImage
import DropsModel
import DropsProcess
import DropsQEMU
import DropsTFTP
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix

/// One boot of a tree: the TFTP server serving it, the GRUB image made for it, the QEMU
/// command, and what the server saw while the guest booted.
final class QEMUSession: BootServing {
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
    /// --http: our HTTP listener beside the TFTP server, at the port of the tree's http_base.
    private let http: HTTPFileServer?
    private let scratch: String?
    private let uefiScratch: String?
    private let deliveries: Deliveries
    private let control = NIOLockedValueBox<RunControl?>(nil)

    init(options run: RunOptions, manifest: Manifest, treeDirectory: String, progress: Progress) throws {
        deliveries = Deliveries(manifest: manifest, progress: progress, subject: "the guest", entry: run.chain.entry)
        chain = run.chain
        provider = run.tftp
        self.manifest = manifest
        self.treeDirectory = treeDirectory
        self.progress = progress
        var machine = MachineOptions(memoryMiB: run.memory, cpus: run.cpus, nic: run.nic, kvm: false, extraArguments: run.qemuArguments)
        machine.mac = run.mac
        isoPath = run.isoPath(treeDirectory: treeDirectory)
        tapDevice = run.tapDevice
        isPrivate = run.network == .private
        if run.firmware == "uefi" {
            guard FileManager.default.fileExists(atPath: MachineOptions.ovmfCode) else {
                throw RunFailure("--firmware uefi needs OVMF (\(MachineOptions.ovmfCode)): install Debian's ovmf package")
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
            http = nil
            scratch = nil
            port = RuntimeDelivery.standardPort
            lab = run.dryRun ? nil : try Self.startLab(run: run, manifest: manifest, treeDirectory: treeDirectory, progress: progress)
            return
        }
        lab = nil
        guard chain != .qemu, chain != .iso, provider == .drops, tapDevice == nil, !run.dryRun else {
            server = nil
            http = nil
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
            logger.logLevel = run.verbose > 0 ? .notice : .error
            server = try TFTPServer(configuration: configuration, group: group, logger: logger)
            port = try server.start().port ?? 0
            if let scratch {
                try GrubNetImage.make(server: "10.0.2.2", port: port, output: scratch + "/core.0")
            }
        } catch {
            try? group.syncShutdownGracefully()
            if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
            throw RunFailure("\(error)")
        }
        self.server = (server, group)
        self.scratch = scratch
        self.port = port
        progress.say("serving \(treeDirectory) over TFTP on 127.0.0.1:\(port)" + (chain == .grub ? " (with a GRUB 2 image made for this port)" : ""))
        if let httpPort = run.http ? HTTPBase.userNetworkPort(manifest) : nil {
            var configuration = HTTPFileServer.Configuration(root: treeDirectory)
            configuration.port = httpPort
            configuration.stripPrefixes = ["/" + manifest.profile.name]
            var logger = Logger(label: "drops.http")
            logger.logLevel = run.verbose > 0 ? .notice : .error
            do {
                let listener = try HTTPFileServer(configuration: configuration, group: group, logger: logger)
                try listener.start()
                http = listener
            } catch {
                server.shutdown(grace: .seconds(0))
                try? group.syncShutdownGracefully()
                if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
                throw RunFailure("\(error)")
            }
            progress.say("serving \(treeDirectory) over HTTP on 127.0.0.1:\(httpPort) (the tree's http_base \(manifest.variables[HTTPBase.variable] ?? ""))")
        } else {
            http = nil
            if let base = HTTPBase.of(manifest) {
                progress.say("the tree fetches its kernel and modules from \(base) (its http_base): that server must serve them; --http makes drops-run serve them itself")
            }
        }
    }

    /// Makes the private lab network and starts drops-serve pxe in it, serving the tree's
    /// folder as a lab server would.
    static func startLab(run: RunOptions, manifest: Manifest, treeDirectory: String, progress: Progress) throws -> LabServerProcess {
        if let reason = PrivateLabNetwork.unavailableReason() {
            throw RunFailure("--network private cannot run here: \(reason); without root, use --network user (the default)")
        }
        let root = try ServedFiles.servedRoot(treeDirectory: treeDirectory, manifest: manifest, purpose: "--network private")
        guard let serve = Programs.sibling("drops-serve") else {
            throw RunFailure("--network private needs drops-serve beside drops-run or on PATH")
        }
        for name in PrivateLabNetwork.removeLeftovers() {
            progress.say("removed the network namespace \(name) of an earlier run that no longer exists")
        }
        let network: PrivateLabNetwork
        do { network = try PrivateLabNetwork() } catch { throw RunFailure("cannot make the private lab network: \(error)") }
        do {
            let lab = try LabServerProcess(network: network, executable: serve, root: root, profile: manifest.profile.name,
                                           chain: run.chain.rawValue, verbose: run.verbose > 0)
            progress.say("private lab network \(network.namespace): bridge \(PrivateLabNetwork.bridge) \(PrivateLabNetwork.serverAddress)/\(PrivateLabNetwork.prefixLength), "
                         + "guest on \(PrivateLabNetwork.tap); drops-serve pxe hands out \(PrivateLabNetwork.dhcpRange) and serves \(root) over TFTP on port 69")
            return lab
        } catch {
            network.remove()
            throw error
        }
    }

    /// The request's name as a path in the tree.
    func normalized(_ name: String) -> String { deliveries.normalized(name) }

    var served: [TransferRecord] { deliveries.served }
    var infrastructureFailure: InfrastructureFailure? { nil }
    var firmware: String? { machine.uefi == nil ? "bios" : "uefi" }

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
              onLine: @escaping @Sendable (String) -> Void) throws -> BootOutcome {
        let executable = command(kvm: false).executable
        let key = KVMSupport.memoryKey(executable: executable, chain: chain.rawValue)
        var useKVM = false
        switch mode {
        case .off: break
        case .on:
            guard KVMSupport.deviceUsable() else { throw RunFailure("--kvm on, but /dev/kvm cannot be opened; use --kvm auto or off") }
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
                let fresh: SerialWatcher
                do { fresh = try SerialWatcher(patterns: watcher.patterns, failures: watcher.failures) } catch { throw RunFailure("\(error)") }
                return try attempt(kvm: false, watcher: fresh, timeout: timeout, onLine: onLine)
            }
            return outcome
        }
        return try attempt(kvm: false, watcher: watcher, timeout: timeout, onLine: onLine)
    }

    private func attempt(kvm: Bool, watcher: SerialWatcher, timeout: Double?,
                         onLine: @escaping @Sendable (String) -> Void) throws -> BootOutcome {
        let command = command(kvm: kvm)
        let control = RunControl()
        self.control.withLockedValue { $0 = control }
        deliveries.begin(control)
        if let (server, _) = server {
            server.setTransferObserver { [deliveries] record in deliveries.take(record) }
        }
        http?.setRequestObserver { [deliveries] request in deliveries.take(request.asTransfer) }
        lab?.observe(transfers: { [deliveries] record in deliveries.take(record) }, exchanges: { [progress] exchange in
            if exchange.answered { progress.say("drops-serve: \(exchange.mac) \(exchange.request): \(exchange.outcome)") }
        })
        let bootsFrom = "chain \(chain.rawValue)" + (provider == .qemu ? ", QEMU's built-in TFTP" : "") + (tapDevice.map { ", on tap device \($0)" } ?? "")
            + (isPrivate ? ", on the private lab network" : "")
        progress.say("starting \(command.executable) (\(kvm ? "KVM" : "TCG"), \(machine.nic), \(bootsFrom)" + (machine.uefi != nil ? ", UEFI" : "") + ")")
        let events = progress.consoleEvents(patterns: watcher.patterns, failures: watcher.failures, subject: "guest", onLine: onLine)
        do {
            return try TargetBoot.run(QEMUGuest(command: command), watcher: watcher, timeout: timeout, control: control, onEvent: events)
        } catch {
            throw RunFailure("\(error)")
        }
    }

    /// Ends the boot in progress (a signal came).
    func interrupt(_ reason: String) {
        control.withLockedValue { $0 }?.stop(reason)
    }

    /// Gives transfers still running when the run ends up to 2 s to finish, so the
    /// report sees them: the guest may boot and print before our server has the ACK of the
    /// last module's last block (they travel separately through QEMU).
    func settleTransfers() {
        server?.0.waitUntilIdle(upTo: .seconds(2))
        lab?.stop()
    }

    func close() {
        http?.stop()
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
