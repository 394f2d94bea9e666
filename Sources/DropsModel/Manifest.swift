import Foundation

/// The tool's version, recorded in every manifest.
public enum DropsVersion {
    public static let current = "0.1.0"
}

/// `manifest.json`: what an image tree holds and what the booted kernel must see. The runner
/// and `drops-build verify` read it; nothing in it depends on the time or the host.
public struct Manifest: Codable, Sendable, Equatable {
    public struct ProfileInfo: Codable, Sendable, Equatable {
        public var name: String
        public var description: String
        public var api: API
        public var arch: Architecture
        /// SHA-256 over the profile file and every file it includes, in include order.
        public var sha256: String

        public init(name: String, description: String, api: API, arch: Architecture, sha256: String) {
            self.name = name
            self.description = description
            self.api = api
            self.arch = arch
            self.sha256 = sha256
        }
    }

    public struct Module: Codable, Sendable, Equatable {
        public var name: String
        public var role: Role
        public var delivery: Delivery
        /// Path inside the tree.
        public var path: String
        public var size: Int
        public var sha256: String
        /// The exact command line the kernel or first stage sees for this image.
        public var cmdline: String
        /// Which file the component was taken from, or "generated".
        public var source: String
        /// What the inspection found (ELF class and machine, Multiboot header).
        public var inspection: String
        public var modaddr: String?

        public init(name: String, role: Role, delivery: Delivery, path: String, size: Int, sha256: String,
                    cmdline: String, source: String, inspection: String, modaddr: String?) {
            self.name = name
            self.role = role
            self.delivery = delivery
            self.path = path
            self.size = size
            self.sha256 = sha256
            self.cmdline = cmdline
            self.source = source
            self.inspection = inspection
            self.modaddr = modaddr
        }
    }

    /// One way to boot the tree and whether it can boot this profile.
    public struct BootPath: Codable, Sendable, Equatable {
        public var name: String
        /// The file in the tree that starts this path.
        public var entry: String
        public var usable: Bool
        public var reason: String
        /// How the root task's configuration arrives on this path, when the profile has one.
        public var configuration: String?
        /// With `http_base`: whether this path fetches its kernel and modules over HTTP, and
        /// if not, why (nil: the tree was built for TFTP alone).
        public var http: Bool?
        public var httpReason: String?

        public init(name: String, entry: String, usable: Bool, reason: String, configuration: String? = nil) {
            self.name = name
            self.entry = entry
            self.usable = usable
            self.reason = reason
            self.configuration = configuration
        }
    }

    /// Every file in the tree but the manifest itself, for `verify`.
    public struct File: Codable, Sendable, Equatable {
        public var path: String
        public var size: Int
        public var sha256: String

        public init(path: String, size: Int, sha256: String) {
            self.path = path
            self.size = size
            self.sha256 = sha256
        }
    }

    public var format: Int
    public var tool: String
    public var profile: ProfileInfo
    public var variables: [String: String]
    public var firstStage: Module
    /// Boot modules in the order the boot loader loads them (module 0 first).
    public var modules: [Module]
    /// Files the running system fetches through the TFTP file provider.
    public var runtimeFiles: [Module]
    public var bootPaths: [BootPath]
    public var milestones: [Milestone]
    /// Console lines that end a run at once as a failure (absent in trees of older versions).
    public var failures: [FailurePattern]?
    /// The root task's configuration and how the tree delivers it, when it has one.
    public var rootTaskConfiguration: RootTaskConfiguration?
    public var files: [File]

    public static let fileName = "manifest.json"

    public init(format: Int, tool: String, profile: ProfileInfo, variables: [String: String],
                firstStage: Module, modules: [Module], runtimeFiles: [Module], bootPaths: [BootPath],
                milestones: [Milestone], failures: [FailurePattern]? = nil,
                rootTaskConfiguration: RootTaskConfiguration? = nil, files: [File]) {
        self.format = format
        self.tool = tool
        self.profile = profile
        self.variables = variables
        self.firstStage = firstStage
        self.modules = modules
        self.runtimeFiles = runtimeFiles
        self.bootPaths = bootPaths
        self.milestones = milestones
        self.failures = failures
        self.rootTaskConfiguration = rootTaskConfiguration
        self.files = files
    }

    /// Stable bytes: sorted keys, two-space indentation, a final newline.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        return data
    }

    public static func decode(_ data: Data) throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: data)
    }
}
