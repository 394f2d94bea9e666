/// The rules one API imposes on a profile: which first stages it boots with, which roles it
/// needs, which it cannot have, and which architectures its binaries may be built for.
public struct APIRules: Sendable {
    public var firstStages: Set<Role>
    public var required: [Role]
    public var forbidden: Set<Role>
    public var architectures: Set<Architecture>
    /// Why the rules are what they are, shown with every violation.
    public var note: String
    /// Console lines that end a run at once, unless a profile sets its own `failures`.
    public var failures: [FailurePattern] = []

    /// The rule table. Facts from the historic DROPS tree and the L4Re documentation.
    public static func rules(for api: API) -> APIRules {
        switch api {
        case .v2:
            return APIRules(
                firstStages: [.rmgr, .bootstrap], required: [.kernel, .sigma0],
                forbidden: [.kickstart, .moe, .ned], architectures: [.ia32],
                note: "Fiasco V2 boots through RMGR or bootstrap with the kernel and sigma0 as modules",
                failures: FailurePattern.fiasco + FailurePattern.rootTask + FailurePattern.linux)
        case .x0:
            return APIRules(
                firstStages: [.rmgr], required: [.kernel, .sigma0],
                forbidden: [.kickstart, .bootstrap, .moe, .ned, .names, .dm_phys, .simple_ts],
                architectures: [.ia32],
                note: "Hazelnut (X.0) is started by RMGR; L4Env servers do not exist for X.0",
                failures: FailurePattern.rootTask + FailurePattern.linux)
        case .x2:
            return APIRules(
                firstStages: [.kickstart], required: [.kernel, .sigma0],
                forbidden: [.rmgr, .bootstrap, .moe, .ned, .names, .dm_phys, .simple_ts],
                architectures: [.ia32, .amd64],
                note: "Pistachio (X.2) has no RMGR; kickstart is its first stage",
                failures: FailurePattern.linux)
        case .l4env:
            return APIRules(
                firstStages: [.bootstrap, .rmgr],
                required: [.kernel, .sigma0, .names, .dm_phys, .simple_ts],
                forbidden: [.kickstart, .moe, .ned], architectures: [.ia32],
                note: "L4Env needs names, dm_phys and simple_ts besides the kernel and sigma0",
                failures: FailurePattern.fiasco + FailurePattern.rootTask + FailurePattern.linux)
        case .l4re:
            return APIRules(
                firstStages: [.bootstrap], required: [.kernel, .sigma0, .moe],
                forbidden: [.rmgr, .kickstart, .roottask, .names, .dm_phys, .simple_ts],
                architectures: [.ia32, .amd64],
                note: "L4Re boots bootstrap, fiasco, sigma0 and moe as its root task",
                failures: FailurePattern.fiasco + FailurePattern.linux)
        case .multiboot:
            return APIRules(
                firstStages: Role.firstStage.subtracting([.linux]), required: [], forbidden: [],
                architectures: [.ia32, .amd64], note: "a generic Multiboot chain")
        case .linux:
            return APIRules(
                firstStages: [.linux], required: [], forbidden: Set(Role.allCases).subtracting([.linux, .ramdisk, .data, .config]),
                architectures: [.ia32, .amd64], note: "Linux booted with its own boot protocol: a bzImage and its initrd",
                failures: FailurePattern.linux)
        }
    }
}

extension FailurePattern {
    /// Fiasco's kernel debugger: a line of dashes ending in the reason (`--PANIC, 'g' for
    /// exit`, `--Wait`), then the prompt `jdb: `, with the CPU and a counter before it on
    /// newer versions (`(7.00) jdb: `). The prompt is what every entry has in common.
    public static let fiasco: [FailurePattern] = [
        FailurePattern(pattern: #"^(\([0-9.]+\) )?jdb: "#, regex: true, verdict: "kernel debugger entered"),
        FailurePattern(pattern: #"-{8,}--PANIC"#, regex: true, verdict: "kernel debugger entered"),
    ]
    /// roottask and RMGR: `Roottask boot error: …`, then a prompt that waits for a key.
    public static let rootTask: [FailurePattern] = [
        FailurePattern(pattern: #"(Roottask|RMGR|rmgr)[: ].*boot error"#, regex: true, verdict: "boot error"),
    ]
    /// Linux and L4Linux: a panic, a BUG or an Oops.
    public static let linux: [FailurePattern] = [
        FailurePattern(pattern: "Kernel panic - not syncing", verdict: "kernel panic"),
        FailurePattern(pattern: #"(^|\] )(BUG: |kernel BUG at |Oops: )"#, regex: true, verdict: "kernel oops"),
    ]
}

/// Serial lines that show a stage came up, for profiles that set no milestones of their own
/// (imported menus): what the historic programs print first.
public enum DefaultMilestones {
    /// By role of the first stage or module.
    public static let byRole: [Role: String] = [.bootstrap: "L4 Bootstrapper", .roottask: "Roottask"]
    /// The kernel's banner, by API (Fiasco for V2, L4Env and L4Re).
    public static let kernelBanner: [API: String] = [.v2: "Welcome to Fiasco", .l4env: "Welcome to Fiasco", .l4re: "Welcome to Fiasco"]

    /// The milestones for a chain, in boot order: bootstrap, the kernel, the root task.
    public static func milestones(api: API, firstStage: Role, modules: [Role]) -> [Milestone] {
        var result: [Milestone] = []
        if let banner = byRole[firstStage] { result.append(Milestone(pattern: banner)) }
        if modules.contains(.kernel), let banner = kernelBanner[api] { result.append(Milestone(pattern: banner)) }
        if modules.contains(.roottask), let banner = byRole[.roottask] { result.append(Milestone(pattern: banner)) }
        return result
    }
}

/// The fixed module slots a first stage expects, from the historic loaders' sources:
/// bootstrap takes module 0 as the kernel, 1 as sigma0, 2 as the root task; RMGR started
/// as the Multiboot kernel takes module 0 as the kernel and, with `-sigma0`, module 1 as
/// sigma0; kickstart takes the kernel, sigma0 and the root task in that order.
public struct FirstStageLayout: Sendable {
    /// Accepted roles for each leading module slot.
    public var slots: [Set<Role>]
    /// The index of the module whose command line may carry `-symbols`, `-lines` and
    /// `-configfile`, or nil when the first stage itself carries them.
    public var rootTaskSlot: Int?

    public static func layout(for firstStage: Role, args: String) -> FirstStageLayout {
        switch firstStage {
        case .bootstrap:
            return FirstStageLayout(slots: [[.kernel], [.sigma0], [.roottask, .moe]], rootTaskSlot: 2)
        case .rmgr:
            let words = args.split(separator: " ")
            let slots: [Set<Role>] = words.contains("-sigma0") ? [[.kernel], [.sigma0]] : [[.kernel]]
            return FirstStageLayout(slots: slots, rootTaskSlot: nil)
        case .kickstart:
            return FirstStageLayout(
                slots: [[.kernel], [.sigma0], [.roottask, .l4linux, .server]], rootTaskSlot: 2)
        default:
            return FirstStageLayout(slots: [], rootTaskSlot: nil)
        }
    }
}

/// Root-task options that each consume the module after the fixed slots, in order.
public let consumingRootTaskOptions: [(option: String, role: Role)] = [
    ("-symbols", .symbols), ("-lines", .lines), ("-configfile", .config),
]
