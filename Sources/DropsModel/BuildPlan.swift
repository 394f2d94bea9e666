/// Where a component's bytes come from.
public enum ComponentSource: Sendable, Equatable {
    /// A file found in the search path (absolute path).
    case file(String)
    /// Text generated from the profile (`content = …`), variables already expanded.
    case generated(String)
    /// Built by drops-build from a root folder (`ramdisk = { … }`).
    case ramDisk(RamDiskSpec)
    /// Not found; only in plans made with `PlanOptions.allowMissing` (for `show`).
    case missing(file: String)
    /// In an archive or at a URL: DropsFetch turns it into `.cached` before the build.
    case remote(RemoteComponent)
    /// A file in the download cache, and where it came from (what the manifest records).
    case cached(path: String, origin: String)
}

/// A component to be taken from archives or downloads.
public struct RemoteComponent: Sendable, Equatable {
    /// Tried in order; the first that holds the file wins.
    public var origins: [ComponentOrigin]
    /// The path inside the archive; nil when the one origin is a URL of the file itself.
    public var member: String?
    /// An optional component is left out when no origin holds it.
    public var optional: Bool

    public init(origins: [ComponentOrigin], member: String?, optional: Bool = false) {
        self.origins = origins
        self.member = member
        self.optional = optional
    }
}

/// One component with everything decided: the file, the command line, how it is delivered.
public struct PlannedComponent: Sendable, Equatable {
    public var name: String
    public var role: Role
    public var inspection: Inspection
    public var delivery: Delivery
    /// Arguments after the name, variables expanded.
    public var args: String
    public var modaddr: String?
    public var source: ComponentSource

    /// Path inside the image tree.
    public var treePath: String { "bin/\(name)" }

    /// The command line the kernel sees: the module's name, then its arguments, as GRUB
    /// legacy passed it and as DROPS' roottask and bootstrap expect (they match the first word).
    public var commandLine: String { args.isEmpty ? name : "\(name) \(args)" }

    public init(name: String, role: Role, inspection: Inspection, delivery: Delivery, args: String,
                modaddr: String?, source: ComponentSource) {
        self.name = name
        self.role = role
        self.inspection = inspection
        self.delivery = delivery
        self.args = args
        self.modaddr = modaddr
        self.source = source
    }
}

/// A profile resolved against the search path and the variables: the input of the builder.
public struct BuildPlan: Sendable {
    public var profileName: String
    public var description: String
    public var api: API
    public var arch: Architecture
    public var variables: [String: String]
    public var firstStage: PlannedComponent
    /// Every module in profile order, boot and run-time ones.
    public var modules: [PlannedComponent]
    public var milestones: [Milestone]
    /// Folders searched, in order.
    public var searchPath: [String]
    /// Optional modules left out because their file was not found.
    public var omitted: [String]
    /// The profile files, outermost first, with their text.
    public var sources: [(path: String, text: String)]
    /// The root task's configuration and how it is delivered, when it has one.
    public var rootTaskConfiguration: RootTaskConfiguration?
    /// Console lines that end a run at once as a failure.
    public var failures: [FailurePattern] = []
    /// Folders of the profile's own search_path that do not exist (skipped).
    public var absentSearchFolders: [String] = []

    public init(profileName: String, description: String, api: API, arch: Architecture, variables: [String: String],
                firstStage: PlannedComponent, modules: [PlannedComponent], milestones: [Milestone],
                searchPath: [String], omitted: [String], sources: [(path: String, text: String)]) {
        self.profileName = profileName
        self.description = description
        self.api = api
        self.arch = arch
        self.variables = variables
        self.firstStage = firstStage
        self.modules = modules
        self.milestones = milestones
        self.searchPath = searchPath
        self.omitted = omitted
        self.sources = sources
    }

    /// Modules the boot loader loads, in order.
    public var bootModules: [PlannedComponent] { modules.filter { $0.delivery == .boot } }
    /// Modules fetched by the running system.
    public var runtimeModules: [PlannedComponent] { modules.filter { $0.delivery == .runtime } }
}
