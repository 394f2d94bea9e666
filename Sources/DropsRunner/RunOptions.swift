import DropsImage
import DropsModel
import DropsQEMU
import Foundation

/// The ways into a tree, as `--chain` names them.
public enum Chain: String, CaseIterable, Sendable {
    case ipxe, pxelinux, grub, qemu, iso

    /// The file the firmware fetches first, relative to the tree.
    public var entry: String? {
        switch self {
        case .ipxe: return IPXEScript.fileName
        case .pxelinux: return IPXEScript.pxelinuxEntry
        case .grub: return GrubNetImage.Platform.bios.entry
        case .qemu, .iso: return nil
        }
    }
}

/// Whose TFTP server the firmware fetches from.
public enum TFTPProvider: String, CaseIterable, Sendable {
    case drops, qemu
}

/// Where the guest's network card leads (--network).
public enum GuestNetwork: String, CaseIterable, Sendable {
    /// QEMU's user networking, our server on the host: no root needed.
    case user
    /// A network namespace made for the run, with drops-serve pxe on port 69 in it.
    case `private`
}

/// Exit statuses, as drops-run's `--help` documents them.
public enum RunExit {
    public static let mismatch: Int32 = 1
    public static let usage: Int32 = 2
    public static let timeout: Int32 = 3
    public static let qemuEnded: Int32 = 4
    public static let rebooted: Int32 = 5
    public static let failed: Int32 = 6
    /// Infrastructure failures of a lab PC: power, console, the network boot never started.
    public static let power: Int32 = 7
    public static let console: Int32 = 8
    public static let networkBoot: Int32 = 9
    /// SIGINT or SIGTERM ended the run (128 + SIGINT, as a shell reports it).
    public static let interrupted: Int32 = 130
}

/// A run that cannot go on, already explained in a line a person can act on.
public struct RunFailure: Error, CustomStringConvertible {
    public var description: String
    public var exitCode: Int32

    public init(_ description: String, exitCode: Int32 = RunExit.mismatch) {
        self.description = description
        self.exitCode = exitCode
    }
}

/// Everything a run is told: which tree, on what, how it is judged and reported. The
/// command line fills it in; the runner never sees the parser.
public struct RunOptions: Sendable {
    /// A profile name whose tree is in `out`/NAME, or the path of a tree.
    public var image = ""
    public var out = "out"
    /// Build the profile's tree first.
    public var build = false
    public var chain: Chain = .ipxe
    public var expect: [String] = []
    public var noMilestones = false
    public var failOn: [String] = []
    public var timeout: Double?
    public var kvm: KVMMode = .off
    public var memory: Int?
    public var cpus = 1
    /// QEMU's device name of the network card.
    public var nic = "e1000"
    public var tapDevice: String?
    public var network: GuestNetwork = .user
    public var tftpPort: Int?
    public var mac: String?
    public var firmware = "bios"
    public var tftp: TFTPProvider = .drops
    /// Serve the tree over HTTP too, at the port of its http_base (--http).
    public var http = false
    public var serialLog: String?
    public var qemuArguments: [String] = []
    public var noVerify = false
    public var dryRun = false
    /// The result's form on standard output: TAP or JSON (else a table and a line).
    public var tap = false
    public var json = false
    public var junit: String?
    public var quiet = false
    public var verbose = 0
    /// Lab PCs: the host (name or MAC), the hosts file, and how it is reached.
    public var host: String?
    public var hosts: String?
    public var interface: String?
    public var control: String?
    public var keepOn = false
    public var wait = false
    public var retries = 0
    public var bootDeadline: Double = 90

    public init() {}

    /// The hosts file: --hosts, else the system's.
    public var hostsFile: String { hosts ?? "/etc/drops/hosts.toml" }

    /// A tree's CD image sits beside it: OUT/NAME.iso for OUT/NAME.
    public func isoPath(treeDirectory: String) -> String { treeDirectory + ".iso" }

    /// The port our in-process server listens on: --tftp-port, else the profile's
    /// runtime_port when it is not 69 (so its run-time clients reach us), else any free port.
    public func hostTFTPPort(_ manifest: Manifest) -> Int {
        if let tftpPort { return tftpPort }
        let wanted = RuntimeDelivery.profilePort(manifest)
        return !manifest.runtimeFiles.isEmpty && wanted != RuntimeDelivery.standardPort ? wanted : 0
    }

    /// Where this run's guest network leads, for the run-time delivery report.
    public func runtimeNetwork(port: Int) -> RuntimeDelivery.Network {
        if network == .private || tapDevice != nil || host != nil { return .lab }
        switch chain {
        case .qemu: return .none("--chain qemu boots without a network server")
        case .iso: return .none("the CD boot has no network server")
        default: return tftp == .qemu ? .builtinTFTP : .user(port: port)
        }
    }

    /// The profile's milestones (unless --no-milestones), then every --expect.
    public func expectedPatterns(_ manifest: Manifest) -> [ExpectedPattern] {
        let milestones = noMilestones ? [] : manifest.milestones.map { ExpectedPattern($0.pattern, kind: .text, budget: $0.timeout) }
        // An --expect that repeats a milestone would wait for a second copy of that line.
        let extra = expect.filter { pattern in !milestones.contains { $0.source == pattern } }
        return milestones + extra.map { ExpectedPattern($0, kind: .regex) }
    }
}

/// Progress lines, stamped with the seconds since the run started; the command decides
/// where they go (standard error).
public struct Progress: Sendable {
    public let quiet: Bool
    public let start = Date()
    private let sink: @Sendable (String) -> Void

    public init(quiet: Bool, sink: @escaping @Sendable (String) -> Void) {
        self.quiet = quiet
        self.sink = sink
    }

    public func say(_ text: String) {
        guard !quiet else { return }
        sink(String(format: "[%6.1fs] ", Date().timeIntervalSince(start)) + text)
    }
}
