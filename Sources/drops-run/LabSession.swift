import DropsCLI
import DropsLab
import DropsModel
import DropsPXE
import DropsQEMU
import DropsTFTP
import Foundation
import NIOConcurrencyHelpers

/// What a report needs of a boot, whatever booted: the files our server delivered, and how.
protocol BootServing: Sendable {
    var served: [TransferRecord] { get }
    var port: Int { get }
    var chain: Chain { get }
    /// An infrastructure failure that decided the run (power, console, network boot), if any.
    var infrastructureFailure: InfrastructureFailure? { get }
    func normalized(_ name: String) -> String
}

/// Failures of the lab, not of the system under test: retried by --retries, never confused
/// with a test failure.
struct InfrastructureFailure: Sendable, Equatable {
    enum Kind: String, Sendable {
        case power, console, networkBoot = "network-boot"
    }
    var kind: Kind
    var message: String

    var exitCode: Int32 {
        switch kind {
        case .power: return RunExit.power
        case .console: return RunExit.console
        case .networkBoot: return RunExit.networkBoot
        }
    }
}

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
                throw CommandFailure("drops-serve pxe (\(path)) refused: \(reply.message)")
            }
            let watch = try client.send(PXEControlRequest(request: "watch"))
            guard watch.ok else {
                client.close()
                throw CommandFailure("drops-serve pxe (\(path)) refused to report progress: \(watch.message)")
            }
        } catch let error as PXEControlError {
            throw CommandFailure(error.description + "; start drops-serve pxe on the lab interface, or give --interface IF to let drops-run answer the PC itself")
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

/// One boot of a tree on a lab PC: the machine held, pointed at the tree, switched on, its
/// console watched by the same ConsoleWatch as a QEMU guest's, switched off at the end.
final class LabSession: BootServing {
    let host: HostTable.Host
    let chain: Chain
    let manifest: Manifest
    let progress: Progress
    let keepOn: Bool
    /// Seconds after power-on within which the PC must ask for PXE and its console speak.
    let bootDeadline: Double
    private let controller: PowerController?
    private let console: ConsoleStream
    private let hold: MachineHold
    private let server: any MachinePointer
    private let state = NIOLockedValueBox(LabState())

    struct LabState {
        var served: [TransferRecord] = []
        var askedForBoot = false
        var consoleSpoke = false
        var poweredOn = false
        var failure: InfrastructureFailure?
        var control: RunControl?
    }

    var port: Int { RuntimeDelivery.standardPort }
    var served: [TransferRecord] { state.withLockedValue { $0.served } }
    var infrastructureFailure: InfrastructureFailure? { state.withLockedValue { $0.failure } }

    /// Everything that can be checked before the machine is touched is checked here: the
    /// host's power and console entries, its password file, the hold, the server.
    init(run: DropsRun, host: HostTable.Host, manifest: Manifest, treeDirectory: String, progress: Progress) throws {
        self.host = host
        self.manifest = manifest
        self.progress = progress
        keepOn = run.keepOn
        bootDeadline = run.bootDeadline
        chain = host.chain.flatMap { Chain(rawValue: $0) } ?? run.chainOption
        guard let source = host.console else {
            throw CommandFailure("\(host.location): host \(host.name) has no console; give it console = \"tcp://HOST:PORT\" (ser2net), a tty, or ipmi-sol",
                                 exitCode: RunExit.usage)
        }
        if let ipmi = host.power?.ipmi {
            do { try ipmi.checkPasswordFile() } catch { throw CommandFailure(error.description, exitCode: RunExit.usage) }
        }
        if host.power != nil {
            do { controller = try PowerController.forHost(host, interface: run.interface) } catch {
                throw CommandFailure(error.description, exitCode: RunExit.usage)
            }
        } else {
            controller = nil
        }
        console = ConsoleStream(host: host.name, source: source)
        let root = try ServedFiles.servedRoot(treeDirectory: treeDirectory, manifest: manifest, purpose: "--host")
        var controlPath = run.control
        if run.interface == nil && controlPath == nil {
            let running = PXEControlServer.running()
            guard running.count == 1 else {
                throw CommandFailure(running.isEmpty
                    ? "no drops-serve pxe runs here (no control socket in \(PXEControlServer.defaultFolder())): start one on the lab interface, or give --interface IF to let drops-run answer \(host.name) itself"
                    : "several drops-serve pxe run here (\(running.joined(separator: ", "))): choose one with --control PATH", exitCode: RunExit.usage)
            }
            controlPath = running[0]
        }
        do {
            hold = try MachineHold(host: host.name, profile: manifest.profile.name, waitSeconds: run.wait ? 24 * 3600 : nil)
        } catch {
            throw CommandFailure(error.description)
        }
        if let previous = hold.previous {
            progress.say("\(host.name) was held by \(previous.description), which ended without letting go; taken over")
        }
        do {
            if let interface = run.interface {
                guard let serve = DropsRun.siblingExecutable("drops-serve") else { throw CommandFailure("--interface needs drops-serve beside drops-run or on PATH") }
                server = try LabServerProcess(interface: interface, mac: host.mac, name: host.name, executable: serve,
                                              root: root, profile: manifest.profile.name,
                                              chain: chain.rawValue, verbose: run.output.verbose > 0)
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

    func normalized(_ name: String) -> String { ServedFiles.treePath(name, profile: manifest.profile.name) }

    private func fail(_ kind: InfrastructureFailure.Kind, _ message: String) {
        let control = state.withLockedValue { value -> RunControl? in
            if value.failure == nil { value.failure = InfrastructureFailure(kind: kind, message: message) }
            return value.control
        }
        control?.stop(message)
    }

    /// Console first, so nothing the PC prints is missed; then power; then the same watch
    /// as for QEMU, with the lab's own deadlines beside it.
    func boot(watcher: SerialWatcher, timeout: Double?, onLine: @escaping @Sendable (String) -> Void) throws -> QEMUOutcome {
        let control = RunControl()
        state.withLockedValue { $0.control = control }
        let progress = progress
        let watch = ConsoleWatch(watcher: watcher, onEvent: progress.consoleEvents(patterns: watcher.patterns, failures: watcher.failures,
                                                                                  subject: "machine", onLine: onLine))
        server.observe(transfers: { [self] record in
            let name = normalized(record.file)
            state.withLockedValue { $0.served.append(record) }
            if record.outcome == "ok" {
                progress.served(name, record)
            } else if ServedFiles.isListed(name, in: manifest) {
                control.stop("\(host.name) asked for \(name), which the manifest lists but the tree does not have (\(record.outcome))")
            }
        }, exchanges: { [self] exchange in
            guard HostTable.normalizedMAC(exchange.mac) == host.mac else { return }
            state.withLockedValue { $0.askedForBoot = true }
            if exchange.answered { progress.say("drops-serve: \(exchange.request): \(exchange.outcome)") }
        })
        do {
            try console.open(onBytes: { [state] bytes in
                state.withLockedValue { $0.consoleSpoke = true }
                watch.feed(Data(bytes))
            }, onEnd: { [self] reason in
                fail(.console, "the console of \(host.name) ended: \(reason)")
                watch.streamEnded()
            })
        } catch {
            fail(.console, error.description)
            return watch.outcome(ending: .stopped(reason: error.description), otherwise: .stopped(reason: error.description))
        }
        progress.say("reading \(host.name)'s console (\(console.source.description))")
        if let controller {
            progress.say("switching \(host.name) on through \(controller.power.kind)")
            // From here the PC may be on, even if switching it on is reported as failed: the
            // end of the run switches it off in any case.
            state.withLockedValue { $0.poweredOn = true }
            do {
                try controller.powerOnFresh()
            } catch {
                fail(.power, error.description)
                console.close()
                return watch.outcome(ending: .stopped(reason: error.description), otherwise: .stopped(reason: error.description))
            }
        } else {
            progress.say("\(host.name) has no power block: switch it on now")
        }
        // The lab's own deadlines: no PXE request, or a console that stays silent.
        let started = Date()
        let deadlines = DispatchSource.makeTimerSource(queue: .global())
        deadlines.schedule(deadline: .now() + 1, repeating: 1)
        deadlines.setEventHandler { [self] in
            let (asked, spoke) = state.withLockedValue { ($0.askedForBoot, $0.consoleSpoke) }
            let waited = Date().timeIntervalSince(started)
            if !asked && waited > bootDeadline {
                fail(.networkBoot, "\(host.name) (\(host.mac)) never asked for DHCP/PXE within \(Int(bootDeadline)) s of power-on; check its boot order and that it is on the lab network")
            } else if !spoke && waited > bootDeadline {
                fail(.console, "the console of \(host.name) stayed silent for \(Int(bootDeadline)) s after power-on; check the console's port and baud rate")
            }
        }
        deadlines.resume()
        let ending = watch.wait(timeout: timeout, control: control, isRunning: { true })
        deadlines.cancel()
        console.close()
        return watch.outcome(ending: ending, otherwise: .stopped(reason: infrastructureFailure?.message ?? "the console ended"))
    }

    func settleTransfers() {
        server.stop()
    }

    /// Ends the boot in progress (a signal came).
    func interrupt(_ reason: String) {
        state.withLockedValue { $0.control }?.stop(reason)
    }

    /// Switches the machine off (unless --keep-on), stops the server, lets the machine go.
    func close() {
        let poweredOn = state.withLockedValue { $0.poweredOn }
        if let controller, poweredOn, !keepOn {
            do {
                try controller.powerOff()
                progress.say("switched \(host.name) off")
            } catch {
                progress.say("could not switch \(host.name) off: \(error.description)")
            }
        }
        server.stop()
        hold.release()
    }
}
