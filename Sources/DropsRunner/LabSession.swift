import DropsLab
import DropsModel
import DropsProcess
import DropsPXE
import DropsQEMU
import DropsTFTP
import Foundation
import NIOConcurrencyHelpers

/// Where a lab PC is told what to boot, and where its DHCP and TFTP progress is seen.
protocol MachinePointer: Sendable {
    func observe(transfers: @escaping @Sendable (TransferRecord) -> Void, exchanges: @escaping @Sendable (PXEExchange) -> Void)
    func stop()
}

extension LabServerProcess: MachinePointer {}

/// A running drops-serve pxe, asked through its control socket to boot the machine with
/// the tree while the connection lasts; it reverts when the connection closes, even if
/// drops-run is killed.
final class ControlPointer: MachinePointer {
    let client: PXEControlClient

    init(path: String, mac: String, profile: String, chain: Chain) throws {
        do {
            client = try PXEControlClient(path: path)
            let reply = try client.send(PXEControlRequest(request: "next-boot", mac: mac, profile: profile, chain: chain.rawValue))
            guard reply.ok else {
                client.close()
                throw RunFailure("drops-serve pxe (\(path)) refused: \(reply.message)")
            }
            let watch = try client.send(PXEControlRequest(request: "watch"))
            guard watch.ok else {
                client.close()
                throw RunFailure("drops-serve pxe (\(path)) refused to report progress: \(watch.message)")
            }
        } catch let error as PXEControlError {
            throw RunFailure(error.description + "; start drops-serve pxe on the lab interface, or give --interface IF to let drops-run answer the PC itself")
        }
    }

    func observe(transfers: @escaping @Sendable (TransferRecord) -> Void, exchanges: @escaping @Sendable (PXEExchange) -> Void) {
        client.onEvents { event in
            if let exchange = event.exchange { exchanges(exchange) }
            if let transfer = event.transfer {
                transfers(TransferRecord(client: transfer.client, direction: "read", file: transfer.file, options: "", bytes: transfer.bytes,
                                         seconds: transfer.seconds, outcome: transfer.outcome, retransmissions: 0))
            }
        }
    }

    func stop() { client.close() }
}

/// One boot of a tree on a lab PC: the machine held, pointed at the tree, booted as a
/// `LabMachine` by the same `TargetBoot` as a QEMU guest, and let go at the end.
final class LabSession: BootServing {
    let chain: Chain
    let manifest: Manifest
    let progress: Progress
    let machine: LabMachine
    private let hold: MachineHold
    private let server: any MachinePointer
    private let deliveries: Deliveries
    private let control = NIOLockedValueBox<RunControl?>(nil)

    var port: Int { RuntimeDelivery.standardPort }
    var served: [TransferRecord] { deliveries.served }
    var infrastructureFailure: InfrastructureFailure? { machine.failure }
    var firmware: String? { machine.host.firmware }

    /// Everything that can be checked before the machine is touched is checked here: the
    /// host's power and console entries, its password file, the hold, the server.
    init(options run: RunOptions, host: HostTable.Host, chain: Chain, manifest: Manifest, treeDirectory: String, progress: Progress) throws {
        self.manifest = manifest
        self.progress = progress
        self.chain = chain
        deliveries = Deliveries(manifest: manifest, progress: progress, subject: host.name, entry: chain.entry)
        machine = try LabMachine(host: host, options: run, bootsFrom: "\(manifest.profile.name) over \(chain.rawValue)", progress: progress)
        let root = try ServedFiles.servedRoot(treeDirectory: treeDirectory, manifest: manifest, purpose: "--host")
        var controlPath = run.control
        if run.interface == nil && controlPath == nil {
            let running = PXEControlServer.running()
            guard running.count == 1 else {
                throw RunFailure(running.isEmpty
                    ? "no drops-serve pxe runs here (no control socket in \(PXEControlServer.defaultFolder())): start one on the lab interface, or give --interface IF to let drops-run answer \(host.name) itself"
                    : "several drops-serve pxe run here (\(running.joined(separator: ", "))): choose one with --control PATH", exitCode: RunExit.usage)
            }
            controlPath = running[0]
        }
        do {
            hold = try MachineHold(host: host.name, profile: manifest.profile.name, waitSeconds: run.wait ? 24 * 3600 : nil)
        } catch {
            throw RunFailure(error.description)
        }
        if let previous = hold.previous {
            progress.say("\(host.name) was held by \(previous.description), which ended without letting go; taken over")
        }
        do {
            if let interface = run.interface {
                guard let serve = Programs.sibling("drops-serve") else { throw RunFailure("--interface needs drops-serve beside drops-run or on PATH") }
                server = try LabServerProcess(interface: interface, mac: host.mac, name: host.name, executable: serve,
                                              root: root, profile: manifest.profile.name,
                                              chain: chain.rawValue, verbose: run.verbose > 0)
                progress.say("holding \(host.name) (\(host.mac)); drops-serve pxe answers only it on \(interface), with \(manifest.profile.name) over \(chain.rawValue)")
            } else {
                server = try ControlPointer(path: controlPath!, mac: host.mac, profile: manifest.profile.name, chain: chain)
                progress.say("holding \(host.name) (\(host.mac)); the drops-serve pxe of \(controlPath!) boots it with \(manifest.profile.name) over \(chain.rawValue) for this run")
            }
        } catch {
            hold.release()
            throw error
        }
    }

    func normalized(_ name: String) -> String { deliveries.normalized(name) }

    /// The PC's DHCP and TFTP progress as its server sees it, then the same boot as a guest's.
    func boot(watcher: SerialWatcher, timeout: Double?, onLine: @escaping @Sendable (String) -> Void) throws -> BootOutcome {
        let control = RunControl()
        self.control.withLockedValue { $0 = control }
        deliveries.begin(control)
        let host = machine.host
        let warned = NIOLockedValueBox(false)
        server.observe(transfers: { [deliveries] record in deliveries.take(record) }, exchanges: { [machine, progress] exchange in
            guard HostTable.normalizedMAC(exchange.mac) == host.mac else { return }
            machine.askedForBoot()
            if exchange.answered { progress.say("drops-serve: \(exchange.request): \(exchange.outcome)") }
            // The hosts file says how the PC boots; a PC set up otherwise gets another boot program.
            if let said = host.firmware, let asked = ClientArchitecture.firmware(described: exchange.architecture), asked != said,
               !warned.withLockedValue({ value in defer { value = true }; return value }) {
                progress.say("\(host.name) asks as \(exchange.architecture), but \(host.location) says firmware = \"\(said)\": "
                             + "check its boot mode in the firmware setup, or correct the hosts file")
            }
        })
        let events = progress.consoleEvents(patterns: watcher.patterns, failures: watcher.failures, subject: "machine", onLine: onLine)
        return try TargetBoot.run(machine, watcher: watcher, timeout: timeout, control: control, onEvent: events)
    }

    /// Ends the boot in progress (a signal came).
    func interrupt(_ reason: String) {
        control.withLockedValue { $0 }?.stop(reason)
    }

    /// Switches the machine off (if a failed boot left it on), stops the server (its last
    /// transfers reach the report), lets the machine go.
    func close() {
        machine.powerOff()
        server.stop()
        hold.release()
    }
}
