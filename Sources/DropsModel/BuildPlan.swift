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

    /// Modules the boot loader loads, in order.
    public var bootModules: [PlannedComponent] { modules.filter { $0.delivery == .boot } }
    /// Modules fetched by the running system.
    public var runtimeModules: [PlannedComponent] { modules.filter { $0.delivery == .runtime } }
}
