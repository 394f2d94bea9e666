import DropsModel

/// Whether a run can deliver a tree's run-time files (the ones a booted system fetches over
/// TFTP itself, such as the L4Env file provider's programs), and why: said at the start of a
/// run, so a missing file is not a mystery at its end.
public struct RuntimeDelivery: Sendable, Equatable {
    /// Where the guest's network leads.
    public enum Network: Sendable, Equatable {
        /// QEMU's user networking with our server on the host at `port` (QEMU forwards every
        /// port but 69, which it keeps).
        case user(port: Int)
        /// QEMU's user networking with QEMU's own TFTP server.
        case builtinTFTP
        /// A private lab network: drops-serve pxe on port 69 of the next server.
        case lab
        /// No network server at all (QEMU's Multiboot loader, the CD image).
        case none(String)
    }

    /// The profile variable that names the TFTP port the run-time clients ask (default 69).
    public static let portVariable = "runtime_port"
    public static let standardPort = 69

    public var files: [String]
    public var deliverable: Bool
    public var reason: String

    /// The port the profile's run-time clients ask, from its `runtime_port` variable.
    public static func profilePort(_ manifest: Manifest) -> Int {
        manifest.variables[portVariable].flatMap { Int($0) } ?? standardPort
    }

    /// nil when the tree has no run-time files.
    public static func assess(_ manifest: Manifest, network: Network) -> RuntimeDelivery? {
        let files = manifest.runtimeFiles.map(\.path)
        guard !files.isEmpty else { return nil }
        let wanted = profilePort(manifest)
        switch network {
        case .lab:
            guard wanted == standardPort else {
                return RuntimeDelivery(files: files, deliverable: false,
                                       reason: "the profile's clients ask port \(wanted) (runtime_port) and drops-serve pxe listens on 69 of the private network; build with --set \(portVariable)=69")
            }
            return RuntimeDelivery(files: files, deliverable: true,
                                   reason: "drops-serve pxe serves them on port 69 of the next server every DHCP answer names")
        case let .user(port):
            if wanted == port {
                return RuntimeDelivery(files: files, deliverable: true,
                                       reason: "our server listens on the host's port \(port), which the profile's clients ask (runtime_port \(wanted)) at 10.0.2.2")
            }
            if wanted == standardPort {
                return RuntimeDelivery(files: files, deliverable: false,
                                       reason: "the profile's clients ask port 69 of the next server, which QEMU's user networking keeps for itself; "
                                           + "run as root with --network private, or build with --set \(portVariable)=6969 (drops-run then serves on that port)")
            }
            return RuntimeDelivery(files: files, deliverable: false,
                                   reason: "the profile's clients ask port \(wanted) (runtime_port) and our server listens on \(port); drop --tftp-port or give --tftp-port \(wanted)")
        case .builtinTFTP:
            return RuntimeDelivery(files: files, deliverable: false,
                                   reason: "--tftp qemu: QEMU's own TFTP server answers port 69 and does not know the tree's /\(manifest.profile.name)/ paths")
        case let .none(why):
            return RuntimeDelivery(files: files, deliverable: false, reason: why)
        }
    }

    /// The start-of-run line.
    public var summary: String {
        let names = files.count <= 4 ? files.joined(separator: ", ") : files.prefix(3).joined(separator: ", ") + " and \(files.count - 3) more"
        return "run-time files (\(names)) " + (deliverable ? "can be delivered: " : "cannot be delivered: ") + reason
    }
}
