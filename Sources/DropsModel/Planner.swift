import Foundation

/// What the user adds on the command line to a profile.
public struct PlanOptions: Sendable {
    /// `--search-path` folders, searched first.
    public var searchPath: [String] = []
    /// `DROPS_SEARCH_PATH`, colon-separated, searched after `--search-path`.
    public var environmentSearchPath: String?
    /// `--set name=value`, overriding the profile's variables.
    public var variables: [String: String] = [:]
    /// `--server-ip`, the value of `${server_ip}`.
    public var serverIP: String?
    /// Plan components that are not found as `.missing` instead of failing (for `show`).
    public var allowMissing = false
    /// `--source`: archives and pinned URLs searched before the profile's `sources`.
    public var origins: [ComponentOrigin] = []

    public init(searchPath: [String] = [], environmentSearchPath: String? = nil,
                variables: [String: String] = [:], serverIP: String? = nil, allowMissing: Bool = false) {
        self.searchPath = searchPath
        self.environmentSearchPath = environmentSearchPath
        self.variables = variables
        self.serverIP = serverIP
        self.allowMissing = allowMissing
    }
}

/// Resolves a profile into a `BuildPlan`: finds each component's file, expands variables,
/// and enforces the API's role and order rules.
public enum Planner {
    public static func plan(_ profile: Profile, options: PlanOptions) throws(ModelError) -> BuildPlan {
        let (folders, absent) = try searchFolders(profile: profile, options: options)
        // A missing component's error names the profile's absent folders too, marked.
        let tried = folders + absent.map { "\($0) (does not exist)" }
        let scope = variableScope(profile: profile, options: options)
        let origins = options.origins + profile.origins
        for case let .archive(path) in origins where !FileManager.default.fileExists(atPath: path) {
            throw .searchPathMissing(path: path, origin: options.origins.contains(.archive(path: path)) ? "--source" : "profile \(profile.name) sources")
        }

        let missing = options.allowMissing
        let firstStage = try plan(profile.loader, isFirstStage: true, scope: scope, folders: folders, tried: tried, origins: origins, allowMissing: missing)
        guard let firstStage else { throw .missingComponent(module: profile.loader.name, file: profile.loader.file ?? profile.loader.name, searched: tried) }
        var modules: [PlannedComponent] = []
        var omitted: [String] = []
        for spec in profile.modules {
            if let planned = try plan(spec, isFirstStage: false, scope: scope, folders: folders, tried: tried, origins: origins, allowMissing: missing) {
                modules.append(planned)
            } else {
                omitted.append(spec.name)
            }
        }
        var plan = BuildPlan(
            profileName: profile.name, description: profile.description, api: profile.api,
            arch: profile.arch, variables: scope.values, firstStage: firstStage, modules: modules,
            milestones: profile.milestones, searchPath: folders, omitted: omitted, sources: profile.sources)
        plan.failures = profile.failures
        plan.absentSearchFolders = absent
        // The order rules hold for the chain as written; the configuration module then goes
        // where they say -configfile takes it, and the result is checked again.
        try RuleChecker.check(plan)
        try deliverConfiguration(&plan, mode: profile.configDelivery)
        try RuleChecker.check(plan)
        return plan
    }

    /// `--search-path`, then `DROPS_SEARCH_PATH`, then the profiles' own folders. The folders
    /// the user names must exist; a profile's own folder that does not (a build output not
    /// made yet) is skipped, as L4Re's MODULE_SEARCH_PATH skips it, and returned second.
    static func searchFolders(profile: Profile, options: PlanOptions) throws(ModelError) -> (existing: [String], absent: [String]) {
        let cwd = FileManager.default.currentDirectoryPath
        var folders: [(String, String)] = options.searchPath.map { (absolutePath($0, relativeTo: cwd), "--search-path") }
        if let environment = options.environmentSearchPath {
            folders += environment.split(separator: ":").map { (absolutePath(String($0), relativeTo: cwd), "DROPS_SEARCH_PATH") }
        }
        folders += profile.searchPath.map { ($0, "profile \(profile.name) search_path") }
        let own = folders.count - profile.searchPath.count
        var result: [String] = []
        var absent: [String] = []
        for (index, (folder, origin)) in folders.enumerated() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                guard index >= own else { throw .searchPathMissing(path: folder, origin: origin) }
                if !absent.contains(folder) { absent.append(folder) }
                continue
            }
            if !result.contains(folder) { result.append(folder) }
        }
        return (result, absent)
    }

    /// Built-in defaults, then the profile's `[variables]`, then `--set`, then `--server-ip`.
    static func variableScope(profile: Profile, options: PlanOptions) -> VariableScope {
        // http_base: empty means every file comes over TFTP.
        var values = ["profile": profile.name, "tftp_prefix": "/\(profile.name)", "http_base": ""]
        for (name, variable) in profile.variables { values[name] = variable.value }
        for (name, value) in options.variables { values[name] = value }
        if let ip = options.serverIP { values["server_ip"] = ip }
        return VariableScope(values)
    }

    static func expand(_ text: String, scope: VariableScope, spec: ModuleSpec, field: String) throws(ModelError) -> String {
        switch scope.expand(text) {
        case let .success(value):
            return value
        case let .failure(error):
            let context = error.cycle.isEmpty
                ? "\(field) of '\(spec.name)'"
                : "\(field) of '\(spec.name)' (variables refer to each other: \(error.cycle.joined(separator: " -> ")))"
            throw .undefinedVariable(spec.location, variable: error.name, context: context)
        }
    }

    /// nil when an optional component's file is missing.
    static func plan(_ spec: ModuleSpec, isFirstStage: Bool, scope: VariableScope, folders: [String], tried: [String],
                     origins: [ComponentOrigin], allowMissing: Bool) throws(ModelError) -> PlannedComponent? {
        let role = spec.role ?? .multiboot
        let args = try expand(spec.args ?? "", scope: scope, spec: spec, field: "args")
        let deliveryText = try expand(spec.delivery ?? "boot", scope: scope, spec: spec, field: "delivery")
        guard let delivery = Delivery(rawValue: deliveryText) else {
            throw .invalidValue(spec.location, key: "delivery", message: "'\(deliveryText)' is not one of: boot, runtime")
        }
        if isFirstStage && delivery != .boot {
            throw .invalidValue(spec.location, key: "delivery", message: "the first stage is always loaded by the boot loader; remove delivery")
        }
        let source: ComponentSource
        if let content = spec.content {
            source = .generated(try expand(content, scope: scope, spec: spec, field: "content"))
        } else if let ramdisk = spec.ramdisk {
            source = .ramDisk(ramdisk)
        } else if let archive = spec.archive {
            let file = try expand(spec.file ?? spec.name, scope: scope, spec: spec, field: "file")
            let member = try spec.member.map { (m) throws(ModelError) in try expand(m, scope: scope, spec: spec, field: "member") }
            source = .remote(RemoteComponent(origins: [.archive(path: archive)], member: member ?? file))
        } else if let url = spec.url {
            let expanded = try expand(url, scope: scope, spec: spec, field: "url")
            let member = try spec.member.map { (m) throws(ModelError) in try expand(m, scope: scope, spec: spec, field: "member") }
            source = .remote(RemoteComponent(origins: [.url(expanded, sha256: spec.sha256, location: spec.location)], member: member))
        } else {
            let file = try expand(spec.file ?? spec.name, scope: scope, spec: spec, field: "file")
            if let path = locate(file, in: folders) {
                source = .file(path)
            } else if !origins.isEmpty {
                source = .remote(RemoteComponent(origins: origins, member: file, optional: spec.optional == true))
            } else if spec.optional == true {
                return nil
            } else if allowMissing {
                source = .missing(file: file)
            } else {
                throw .missingComponent(module: spec.name, file: file, searched: tried)
            }
        }
        let inspection = spec.inspect ?? (spec.content != nil || spec.ramdisk != nil ? .data : role.defaultInspection)
        return PlannedComponent(name: spec.name, role: role, inspection: inspection, delivery: delivery,
                                args: args, modaddr: spec.modaddr, source: source)
    }

    /// The first folder holding a regular file by that name wins.
    public static func locate(_ file: String, in folders: [String]) -> String? {
        for folder in folders {
            let candidate = normalizePath(folder + "/" + file)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
        }
        return nil
    }
}
