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
    /// True when the first stage is a Linux kernel started with the Linux boot protocol:
    /// the modules are then its initrds, not Multiboot modules.
    public var linux: Bool
    /// Absolute TFTP path of the tree on the server (`${tftp_prefix}`), without a trailing slash.
    public var tftpPrefix: String
    public var firstStage: Image
    public var modules: [Image]
    /// `${server_ip}` when the profile has one: the host in the URIs iPXE builds.
    public var serverIP: String?
    /// `${http_base}` without a trailing slash, when the tree boots over HTTP: the URL of the
    /// served root, so a tree file is `HTTP_BASE${tftp_prefix}/PATH`.
    public var httpBase: String?
    /// The root task's configuration and how it is delivered, when there is one.
    public var rootTaskConfiguration: RootTaskConfiguration?

    public init(plan: BuildPlan) {
        func image(_ c: PlannedComponent) -> Image {
            Image(name: c.name, path: c.treePath, args: c.args, modaddr: c.modaddr)
        }
        // Menus are line-based: a line break in the description would start a new command.
        let description = plan.description.split(whereSeparator: \.isNewline).joined(separator: " ")
        title = description.isEmpty ? plan.profileName : "\(plan.profileName): \(description)"
        serverIP = plan.variables["server_ip"]
        var base = plan.variables["http_base"] ?? ""
        while base.hasSuffix("/") { base.removeLast() }
        httpBase = base.isEmpty ? nil : base
        profile = plan.profileName
        var prefix = plan.variables["tftp_prefix"] ?? "/\(plan.profileName)"
        while prefix.hasSuffix("/") { prefix.removeLast() }
        tftpPrefix = prefix
        firstStage = image(plan.firstStage)
        linux = plan.firstStage.role == .linux
        modules = plan.bootModules.map(image)
        rootTaskConfiguration = plan.rootTaskConfiguration
    }

    /// The path of a tree file as an absolute path on the TFTP server.
    public func serverPath(_ treePath: String) -> String { "\(tftpPrefix)/\(treePath)" }

    /// Where a boot loader that speaks HTTP fetches a tree file: its http:// URL when the tree
    /// boots over HTTP, else `relative` (the path as TFTP menus write it).
    public func fetchPath(_ treePath: String, relative: String) -> String {
        httpBase.map { "\($0)\(serverPath(treePath))" } ?? relative
    }

    /// Bytes of all `name args` command lines, each with its NUL.
    public var commandLineBytes: Int {
        ([firstStage] + modules).reduce(0) { $0 + $1.commandLine.utf8.count + 1 }
    }
}

/// iPXE's multiboot loader limits (src/arch/x86/image/multiboot.c): beyond these it drops
/// modules and command-line bytes silently, so the builder never hands it more.
public enum IPXEMultibootLimits {
    public static let maxModules = 8
    public static let maxCommandLineBytes = 512

    /// The start of the URIs iPXE resolves the script's relative paths to, as long as it can
    /// get: the port is not known when the tree is built, nor the host without `${server_ip}`.
    public static func uriBase(_ menu: BootMenu) -> String {
        // Over HTTP the script names every image by its whole URL, which is known.
        if let base = menu.httpBase { return "\(base)\(menu.tftpPrefix)/" }
        return "tftp://\(menu.serverIP ?? "255.255.255.255"):65535\(menu.tftpPrefix)/"
    }

    /// What iPXE copies for each image: its full URI (with or without `--name`), a space and
    /// the arguments, and a NUL (multiboot_add_cmdline).
    public static func commandLineBytes(_ menu: BootMenu) -> Int {
        let base = uriBase(menu).utf8.count
        return ([menu.firstStage] + menu.modules).reduce(0) { total, image in
            total + base + image.path.utf8.count + (image.args.isEmpty ? 0 : 1 + image.args.utf8.count) + 1
        }
    }

    /// nil when iPXE can load the chain itself, else the reason it cannot.
    public static func problem(with menu: BootMenu) -> String? {
        var reasons: [String] = []
        if menu.modules.count > maxModules {
            reasons.append("\(menu.modules.count) modules (iPXE keeps at most \(maxModules))")
        }
        let bytes = commandLineBytes(menu)
        if bytes > maxCommandLineBytes {
            reasons.append("up to \(bytes) bytes of command lines with their URIs (iPXE keeps at most \(maxCommandLineBytes))")
        }
        // iPXE expands ${…} in script lines and has no escape for it.
        if ([menu.firstStage] + menu.modules).contains(where: { $0.args.contains("${") }) {
            reasons.append("a literal ${ in a command line (iPXE would expand it)")
        }
        return reasons.isEmpty ? nil : reasons.joined(separator: " and ")
    }
}
