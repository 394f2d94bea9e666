import DropsLab
import DropsModel
import Foundation
import NIOConcurrencyHelpers

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
