import DropsTFTP
import Foundation

/// What a tree boots on: a QEMU guest or a lab PC. A boot is the same on both (open the
/// console, switch on, watch, switch off, judge); only these steps differ. Where it boots
/// from is set up before: a QEMU command names its network and server, a lab PC is pointed
/// at the tree through drops-serve (QEMUSession, LabSession).
public protocol BootTarget: AnyObject, Sendable {
    /// Starts handing console bytes to `watch`. Called before `powerOn`, so nothing the
    /// target prints is missed; `control` ends the run when the target fails on its own.
    func openConsole(into watch: ConsoleWatch, control: RunControl) throws
    /// Switches the target on: starts QEMU, or powers (or power-cycles) the PC.
    func powerOn() throws
    /// False once the target is gone by itself (QEMU exited). A PC never goes by itself.
    var isRunning: Bool { get }
    /// Switches it off: ends QEMU, or powers the PC off (unless it is to be kept on).
    func powerOff()
    /// Takes what the console still holds and closes it.
    func closeConsole()
    /// The ending when the target ended and the console had decided nothing.
    var endingWithoutVerdict: BootOutcome.Ending { get }
}

/// One boot of a target, start to outcome: the one place where the console is watched for
/// milestones, failure patterns, reboots and time limits, whatever the target is.
public enum TargetBoot {
    /// Boots `target` until there is a verdict, `control` stops it, `timeout` seconds (nil:
    /// no limit) pass, or the target ends. Errors from opening the console or switching on
    /// are the target's: an `InfrastructureFailure` becomes the outcome's reason (the target
    /// has recorded it), anything else is thrown after the target is switched off again.
    public static func run(_ target: some BootTarget, watcher: SerialWatcher, timeout: Double?, control: RunControl = RunControl(),
                           onEvent: @escaping @Sendable (SerialEvent) -> Void = { _ in },
                           finished: @escaping @Sendable (String) -> Bool = { _ in false }) throws -> BootOutcome {
        let watch = ConsoleWatch(watcher: watcher, onEvent: onEvent, finished: finished)
        do {
            try target.openConsole(into: watch, control: control)
        } catch let failure as InfrastructureFailure {
            return watch.outcome(ending: .stopped(reason: failure.message), otherwise: .stopped(reason: failure.message))
        }
        do {
            try target.powerOn()
        } catch {
            // A PC whose switch-on was reported failed may still be on.
            target.powerOff()
            target.closeConsole()
            guard let failure = error as? InfrastructureFailure else { throw error }
            return watch.outcome(ending: .stopped(reason: failure.message), otherwise: .stopped(reason: failure.message))
        }
        let ending = watch.wait(timeout: timeout, control: control, isRunning: { target.isRunning })
        target.powerOff()
        target.closeConsole()
        return watch.outcome(ending: ending, otherwise: target.endingWithoutVerdict)
    }
}

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
