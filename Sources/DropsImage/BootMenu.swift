import DropsModel

/// What every boot-menu format renders: the first stage and the boot modules, in order,
/// with tree paths and command lines. Run-time files are not part of the boot chain.
public struct BootMenu: Sendable, Equatable {
    public struct Image: Sendable, Equatable {
        public var name: String
        /// Path relative to the tree root (`bin/NAME`).
        public var path: String
        public var args: String
        public var modaddr: String?

        public var commandLine: String { args.isEmpty ? name : "\(name) \(args)" }
    }

    public var title: String
    public var profile: String
    /// Absolute TFTP path of the tree on the server (`${tftp_prefix}`), without a trailing slash.
    public var tftpPrefix: String
    public var firstStage: Image
    public var modules: [Image]

    public init(plan: BuildPlan) {
        func image(_ c: PlannedComponent) -> Image {
            Image(name: c.name, path: c.treePath, args: c.args, modaddr: c.modaddr)
        }
        title = plan.description.isEmpty ? plan.profileName : "\(plan.profileName): \(plan.description)"
        profile = plan.profileName
        var prefix = plan.variables["tftp_prefix"] ?? "/\(plan.profileName)"
        while prefix.hasSuffix("/") { prefix.removeLast() }
        tftpPrefix = prefix
        firstStage = image(plan.firstStage)
        modules = plan.bootModules.map(image)
    }

    /// The path of a tree file as an absolute path on the TFTP server.
    public func serverPath(_ treePath: String) -> String { "\(tftpPrefix)/\(treePath)" }

    /// Bytes iPXE's multiboot loader needs for all command lines, each with its NUL.
    public var commandLineBytes: Int {
        ([firstStage] + modules).reduce(0) { $0 + $1.commandLine.utf8.count + 1 }
    }
}

/// iPXE's multiboot loader limits (src/arch/x86/image/multiboot.c): beyond these it drops
/// modules and command-line bytes silently, so the builder never hands it more.
public enum IPXEMultibootLimits {
    public static let maxModules = 8
    public static let maxCommandLineBytes = 512

    /// nil when iPXE can load the chain itself, else the reason it cannot.
    public static func problem(with menu: BootMenu) -> String? {
        var reasons: [String] = []
        if menu.modules.count > maxModules {
            reasons.append("\(menu.modules.count) modules (iPXE keeps at most \(maxModules))")
        }
        if menu.commandLineBytes > maxCommandLineBytes {
            reasons.append("\(menu.commandLineBytes) bytes of command lines (iPXE keeps at most \(maxCommandLineBytes))")
        }
        return reasons.isEmpty ? nil : reasons.joined(separator: " and ")
    }
}
