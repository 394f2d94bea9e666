/// How a roottask or RMGR configuration (`task modname "names" …` after the options) reaches
/// the program. GRUB 2 passes command lines with a backslash before each `"`, `'` and `\`,
/// and the configuration parser of roottask and RMGR then fails; a configuration file passed
/// as a module (`-configfile`) reaches it unchanged on every boot path.
public enum ConfigDelivery: String, Sendable, Codable, CaseIterable {
    /// A module when the configuration holds a character GRUB 2 changes, else the command line.
    case auto
    /// Always a generated configuration module with `-configfile`.
    case module
    /// Always on the command line, as written (GRUB 2 paths then change it).
    case cmdline
}

/// The configuration of the root task (roottask, or RMGR as the first stage) and how the
/// tree delivers it. Recorded in the manifest, so the runner can check what the program saw.
public struct RootTaskConfiguration: Sendable, Codable, Equatable {
    /// The component whose command line carries the options (roottask or rmgr).
    public var owner: String
    /// Index of the owner among the boot modules, or nil when it is the first stage.
    public var ownerModule: Int?
    /// The first boot module that `-symbols`, `-lines` and `-configfile` take, in the order
    /// the options appear on the owner's command line.
    public var firstOptionModule: Int
    /// The first line a configuration file must have (`#!roottask`, `#!rmgr`).
    public var header: String
    /// The configuration as the profile wrote it (after the options), blanks collapsed.
    public var text: String
    /// Where it goes: "module" or "cmdline".
    public var delivery: String
    /// The generated module (`bin/NAME`) when delivered as a module.
    public var module: String?
    /// Why this delivery was chosen, for people.
    public var reason: String

    public init(owner: String, ownerModule: Int?, firstOptionModule: Int, header: String, text: String,
                delivery: String, module: String?, reason: String) {
        self.owner = owner
        self.ownerModule = ownerModule
        self.firstOptionModule = firstOptionModule
        self.header = header
        self.text = text
        self.delivery = delivery
        self.module = module
        self.reason = reason
    }

    /// Roles whose programs read a configuration, with the header their file must start with.
    public static let headers: [Role: String] = [.roottask: "#!roottask", .rmgr: "#!rmgr"]

    /// Characters GRUB 2's multiboot loader puts a backslash before.
    public static let rewrittenByGRUB2: Set<Character> = ["\"", "'", "\\"]

    /// A command line's arguments split the way roottask and RMGR read them: the leading
    /// words that start with `-` are options, the rest is configuration.
    public static func split(_ args: String) -> (options: [String], configuration: String) {
        let words = args.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        let options = Array(words.prefix { $0.hasPrefix("-") })
        return (options, words.dropFirst(options.count).joined(separator: " "))
    }

    /// The options that each take the next module (`-symbols`, `-lines`, `-configfile`), in
    /// the order they appear: the k-th takes module `firstOptionModule + k`.
    public static func moduleTakingOptions(_ options: [String]) -> [String] {
        options.filter { option in consumingRootTaskOptions.contains { $0.option == option } }
    }

    /// The file text of a configuration module: the header, then the configuration.
    public static func fileText(header: String, configuration: String) -> String {
        "\(header)\n\(configuration)\n"
    }

    /// The configuration in a file's text: what follows the header line, blanks collapsed;
    /// nil when the text does not start with `header`.
    public static func configuration(inFile text: String, header: String) -> String? {
        guard text.hasPrefix(header + "\n") || text == header else { return nil }
        return text.dropFirst(header.count).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            .joined(separator: " ")
    }
}

extension Planner {
    /// Decides how the root task's configuration is delivered and, for a module, adds the
    /// generated file after the modules the owner's options already take and adds
    /// `-configfile` after those options.
    static func deliverConfiguration(_ plan: inout BuildPlan, mode: ConfigDelivery) throws(ModelError) {
        let layout = FirstStageLayout.layout(for: plan.firstStage.role, args: plan.firstStage.args)
        let boot = plan.bootModules
        let ownerModule = layout.rootTaskSlot.flatMap { $0 < boot.count ? $0 : nil }
        let owner = ownerModule.map { boot[$0] } ?? plan.firstStage
        guard let header = RootTaskConfiguration.headers[owner.role] else { return }
        let (options, configuration) = RootTaskConfiguration.split(owner.args)
        guard !configuration.isEmpty else { return }
        let consumed = RootTaskConfiguration.moduleTakingOptions(options).count
        let changed = configuration.contains { RootTaskConfiguration.rewrittenByGRUB2.contains($0) }
        var record = RootTaskConfiguration(
            owner: owner.name, ownerModule: ownerModule, firstOptionModule: layout.slots.count, header: header,
            text: configuration, delivery: "cmdline", module: nil, reason: "")
        func keep(_ reason: String) { record.reason = reason; plan.rootTaskConfiguration = record }

        switch mode {
        case .cmdline:
            return keep("config_delivery = \"cmdline\": on \(owner.name)'s command line as written"
                        + (changed ? "; GRUB 2 puts a backslash before its quotes and backslashes" : ""))
        case .auto where !changed:
            return keep("no quote or backslash in it: every boot loader passes it unchanged on \(owner.name)'s command line")
        case .auto where options.contains("-configfile"):
            return keep("\(owner.name) already has -configfile, so it stays on the command line; GRUB 2 puts a backslash before its quotes and backslashes")
        case .module where options.contains("-configfile"):
            throw .ruleViolation(profile: plan.profileName, message: "config_delivery = \"module\", but '\(owner.name)' already has -configfile with a configuration module of its own; move the command-line configuration into that file, or set config_delivery = \"cmdline\"")
        default:
            break
        }
        let name = owner.name + ".cfg"
        guard plan.firstStage.name != name, !plan.modules.contains(where: { $0.name == name }) else {
            throw .ruleViolation(profile: plan.profileName, message: "the configuration of '\(owner.name)' goes into a module named '\(name)', but the profile has a module of that name already; rename it, or set config_delivery = \"cmdline\"")
        }
        let generated = PlannedComponent(
            name: name, role: .config, inspection: .data, delivery: .boot, args: "", modaddr: nil,
            source: .generated(RootTaskConfiguration.fileText(header: header, configuration: configuration)))
        let newArgs = (options + ["-configfile"]).joined(separator: " ")
        // The file goes where -configfile takes it: after the modules the earlier options take.
        let bootIndex = layout.slots.count + consumed
        let insertAt = bootIndex < boot.count ? plan.modules.firstIndex(of: boot[bootIndex])! : (plan.modules.lastIndex { $0.delivery == .boot }.map { $0 + 1 } ?? plan.modules.count)
        plan.modules.insert(generated, at: insertAt)
        if ownerModule != nil, let index = plan.modules.firstIndex(of: owner) {
            plan.modules[index].args = newArgs
        } else {
            plan.firstStage.args = newArgs
        }
        record.delivery = "module"
        record.module = generated.treePath
        record.reason = (mode == .module ? "config_delivery = \"module\"" : "it holds quotes or backslashes, which GRUB 2 would change")
            + ": \(generated.treePath) (\(header)) through -configfile, the same on every boot path"
        plan.rootTaskConfiguration = record
    }
}
