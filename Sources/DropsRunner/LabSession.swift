import DropsLab
import DropsModel
import DropsProcess
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
    /// The target's firmware, bios or uefi, where it is known.
    var firmware: String? { get }
    func normalized(_ name: String) -> String
}

/// Failures of the lab, not of the system under test: retried by --retries, never confused
/// with a test failure.
public struct InfrastructureFailure: Error, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case power, console, networkBoot = "network-boot"
    }
    public var kind: Kind
    public var message: String

    public var exitCode: Int32 {
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

/// A lab PC as a boot target: its console stream, its power switch, and the lab's own
/// deadlines (no PXE request, a silent console) after power-on.
final class LabMachine: BootTarget {
    let host: HostTable.Host
    let keepOn: Bool
    /// Seconds after power-on within which the PC must ask for PXE and its console speak.
    let bootDeadline: Double
    let bootsFrom: String
    let progress: Progress
    private let controller: PowerController?
    private let console: ConsoleStream
    private let state = NIOLockedValueBox(MachineState())

    struct MachineState {
        var askedForBoot = false
        var consoleSpoke = false
        var poweredOn = false
        var failure: InfrastructureFailure?
        var control: RunControl?
        /// While true, the lab's deadlines are watched.
        var watching = false
    }

    var subject: String { host.name }
    var failure: InfrastructureFailure? { state.withLockedValue { $0.failure } }

    /// Checks the host's power and console entries and its password file; touches nothing.
    init(host: HostTable.Host, options: RunOptions, bootsFrom: String, progress: Progress) throws {
        self.host = host
        keepOn = options.keepOn
        bootDeadline = options.bootDeadline
        self.bootsFrom = bootsFrom
        self.progress = progress
        guard let source = host.console else {
            throw RunFailure("\(host.location): host \(host.name) has no console; give it console = \"tcp://HOST:PORT\" (ser2net), a tty, or ipmi-sol",
                             exitCode: RunExit.usage)
        }
        if let ipmi = host.power?.ipmi {
            do { try ipmi.checkPasswordFile() } catch { throw RunFailure(error.description, exitCode: RunExit.usage) }
        }
        if host.power != nil {
            do { controller = try PowerController.forHost(host, interface: options.interface) } catch {
                throw RunFailure(error.description, exitCode: RunExit.usage)
            }
        } else {
            controller = nil
        }
        console = ConsoleStream(host: host.name, source: source, bmc: host.power?.ipmi)
    }

    /// The PC's server saw it ask for an address or a boot file.
    func askedForBoot() { state.withLockedValue { $0.askedForBoot = true } }

    /// Records the failure (the first one decides) and ends the run.
    @discardableResult
    func fail(_ kind: InfrastructureFailure.Kind, _ message: String) -> InfrastructureFailure {
        let (failure, control) = state.withLockedValue { value -> (InfrastructureFailure, RunControl?) in
            if value.failure == nil { value.failure = InfrastructureFailure(kind: kind, message: message) }
            return (value.failure!, value.control)
        }
        control?.stop(message)
        return failure
    }

    func openConsole(into watch: ConsoleWatch, control: RunControl) throws {
        state.withLockedValue { $0.control = control }
        do {
            try console.open(onBytes: { [state] bytes in
                state.withLockedValue { $0.consoleSpoke = true }
                watch.feed(Data(bytes))
            }, onEnd: { [self] reason in
                fail(.console, "the console of \(host.name) ended: \(reason)")
                watch.streamEnded()
            })
        } catch {
            throw fail(.console, error.description)
        }
        progress.say("reading \(host.name)'s console (\(console.source.description))")
    }

    func powerOn() throws {
        if let controller {
            progress.say("switching \(host.name) on through \(controller.power.kind); it boots \(bootsFrom)")
            // From here the PC may be on, even if switching it on is reported as failed.
            state.withLockedValue { $0.poweredOn = true }
            do { try controller.powerOnFresh() } catch { throw fail(.power, error.description) }
        } else {
            progress.say("\(host.name) has no power block: switch it on now; it boots \(bootsFrom)")
        }
        startDeadlines()
    }

    /// The lab's own deadlines: no PXE request, or a console that stays silent.
    private func startDeadlines() {
        let started = Date()
        state.withLockedValue { $0.watching = true }
        Thread.detachNewThread { [self] in
            while state.withLockedValue({ $0.watching }) {
                let (asked, spoke) = state.withLockedValue { ($0.askedForBoot, $0.consoleSpoke) }
                let waited = Date().timeIntervalSince(started)
                if !asked && waited > bootDeadline {
                    fail(.networkBoot, "\(host.name) (\(host.mac)) never asked for DHCP/PXE within \(Int(bootDeadline)) s of power-on; check its boot order and that it is on the lab network")
                } else if !spoke && waited > bootDeadline {
                    fail(.console, "the console of \(host.name) stayed silent for \(Int(bootDeadline)) s after power-on; check the console's port and baud rate")
                }
                usleep(250_000)
            }
        }
    }

    /// A PC stays until it is switched off.
    var isRunning: Bool { true }

    /// Switches the PC off unless --keep-on; once, however often it is called.
    func powerOff() {
        let wasOn = state.withLockedValue { value -> Bool in
            defer { value.poweredOn = false; value.watching = false }
            return value.poweredOn
        }
        guard let controller, wasOn, !keepOn else { return }
        do {
            try controller.powerOff()
            progress.say("switched \(host.name) off")
        } catch {
            progress.say("could not switch \(host.name) off: \(error.description)")
        }
    }

    func closeConsole() { console.close() }

    var endingWithoutVerdict: BootOutcome.Ending { .stopped(reason: failure?.message ?? "the console ended") }
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
            if let said = host.firmware, let asked = Self.firmware(ofArchitecture: exchange.architecture), asked != said,
               !warned.withLockedValue({ value in defer { value = true }; return value }) {
                progress.say("\(host.name) asks as \(exchange.architecture), but \(host.location) says firmware = \"\(said)\": "
                             + "check its boot mode in the firmware setup, or correct the hosts file")
            }
        })
        let events = progress.consoleEvents(patterns: watcher.patterns, failures: watcher.failures, subject: "machine", onLine: onLine)
        return try TargetBoot.run(machine, watcher: watcher, timeout: timeout, control: control, onEvent: events)
    }

    /// bios or uefi, from the architecture drops-serve read in a PXE request (option 93).
    static func firmware(ofArchitecture text: String) -> String? {
        if text.hasPrefix("x86 BIOS") { return "bios" }
        if text.contains("UEFI") || text.hasPrefix("EFI") { return "uefi" }
        return nil
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
