import ArgumentParser
import DropsCLI
import DropsImage
import DropsModel
import Foundation
import Logging

struct DropsBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drops-build",
        abstract: "Turn a DROPS/L4 profile and your built binaries into a network-bootable image tree.",
        discussion: """
            A profile (profiles/NAME.toml) says which components make up one bootable system, \
            in which order, with which command lines, for which L4 API. drops-build finds each \
            component in the search path, checks it (ELF class and machine, Multiboot header), \
            and writes out/NAME/ with bin/, boot.ipxe, pxelinux.cfg/default, grub/grub.cfg, \
            menu.lst and manifest.json. The tree is built beside the old one and swapped in at \
            the end: a failed build never leaves a half-written tree.

            Exit status: 0 success, 1 failure (the error names the input and the fix), 2 usage error.

            Examples:
              drops-build list
              drops-build show l4env --search-path ~/drops/bin
              drops-build profile l4env --search-path ~/drops/bin --server-ip 192.0.2.1
              drops-build verify out/l4env
              drops-build import /tftpboot/me/menu.lst -o profiles/mine.toml
              drops-build fetch l4env && drops-build profile l4env --offline
            """,
        version: DropsVersion.current,
        subcommands: [BuildProfile.self, ShowProfile.self, ListProfiles.self, VerifyTree.self, BuildRamDisk.self, ImportMenu.self, FetchProfile.self]
    )
}

/// Where the profiles are.
struct ProfileLocation: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Folder with the profiles (NAME.toml).",
        discussion: "Default: $DROPS_PROFILES_DIR, else ./profiles, else the profiles installed beside drops-build.",
        valueName: "dir"))
    var profilesDir: String?

    func loader() -> ProfileLoader {
        ProfileLoader(directory: resolvedDirectory())
    }

    func resolvedDirectory() -> String {
        if let profilesDir { return profilesDir }
        if let environment = ProcessInfo.processInfo.environment["DROPS_PROFILES_DIR"], !environment.isEmpty {
            return environment
        }
        if FileManager.default.fileExists(atPath: "profiles") { return "profiles" }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let installed = executable.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("share/drops/profiles").path
        return FileManager.default.fileExists(atPath: installed) ? installed : "profiles"
    }
}

/// How a profile is resolved into a plan.
struct PlanArguments: ParsableArguments {
    @Argument(help: "Profile name (profiles/NAME.toml) or path to a .toml file.")
    var profile: String

    @OptionGroup var location: ProfileLocation

    @Option(name: .long, help: ArgumentHelp(
        "Folder to search for component binaries, before $DROPS_SEARCH_PATH and the profile's own (repeatable).",
        valueName: "dir"))
    var searchPath: [String] = []

    @Option(name: .long, help: ArgumentHelp("Value of ${server_ip}: the TFTP server the target fetches files from.", valueName: "ip"))
    var serverIP: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Set a profile variable, overriding the profile (repeatable).", valueName: "name=value"))
    var variables: [String] = []

    @Option(name: .customLong("http-base"), help: ArgumentHelp(
        "Value of ${http_base}: the http:// URL of the served root (the folder holding NAME/); boot.ipxe and pxelinux.cfg then fetch the kernel and modules over HTTP.",
        discussion: "The first stage (iPXE's script, lpxelinux.0) still comes over TFTP, and so do files the system fetches at run time. Any web server that serves the output folder will do: drops-serve --http-port, or nginx with root set to it.",
        valueName: "url"))
    var httpBase: String?

    @Option(name: .long, help: ArgumentHelp(
        "An archive (tar, tar.gz/xz/zst, cpio, zip, .deb) or an archive URL with its pin (URL#sha256=HEX) searched for components after the folders and before the profile's sources (repeatable).",
        valueName: "archive|url"))
    var source: [String] = []

    func validate() throws {
        for assignment in variables where !assignment.contains("=") || assignment.hasPrefix("=") {
            throw ValidationError("--set '\(assignment)' must look like name=value")
        }
        let bases = (httpBase.map { [$0] } ?? []) + variables.filter { $0.hasPrefix("http_base=") }.map { String($0.dropFirst(10)) }
        for base in bases where !base.isEmpty {
            guard let url = URL(string: base), url.scheme == "http", url.host?.isEmpty == false, url.query == nil, url.fragment == nil else {
                throw ValidationError("--http-base '\(base)' is not an http:// URL such as http://10.0.0.1:8080 (boot loaders fetch plain HTTP only)")
            }
        }
    }

    func plan(allowMissing: Bool = false) throws -> BuildPlan {
        do {
            let profile = try location.loader().load(self.profile)
            var values: [String: String] = [:]
            for assignment in variables {
                let parts = assignment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                values[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            if let httpBase { values["http_base"] = httpBase }
            let options = PlanOptions(
                searchPath: searchPath,
                environmentSearchPath: ProcessInfo.processInfo.environment["DROPS_SEARCH_PATH"].flatMap { $0.isEmpty ? nil : $0 },
                variables: values, serverIP: serverIP, allowMissing: allowMissing)
            var withSources = options
            let cwd = FileManager.default.currentDirectoryPath
            withSources.origins = source.map { ComponentOrigin.parse($0, relativeTo: cwd) }
            let plan = try Planner.plan(profile, options: withSources)
            for folder in plan.absentSearchFolders {
                Logger(label: "drops.build").notice("note: search path folder \(folder) (from profile \(profile.name) search_path) does not exist yet; skipped")
            }
            return plan
        } catch {
            throw CommandFailure(error.description)
        }
    }
}

struct BuildProfile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Build the image tree of a profile into OUT/NAME/.",
        discussion: """
            Components are found by file name in the search path: --search-path folders first, \
            then $DROPS_SEARCH_PATH (colon-separated), then the profile's search_path. The first \
            match wins. Components not in a folder come from archives (--source, the profile's \
            sources, or a module's archive/member) or pinned URLs (url/sha256), fetched with \
            libcurl into the download cache (see drops-build fetch --help). manifest.json records which file was used, its size, SHA-256 and the \
            exact command line the kernel will see. Unchanged inputs give byte-identical trees.
            """)

    @OptionGroup var plan: PlanArguments

    @Option(name: .long, help: ArgumentHelp("Folder the tree is written under.", valueName: "dir"))
    var out = "out"

    @Flag(name: .long, help: "Also write OUT/NAME.iso: a CD that boots the same chain with ISOLINUX (drops-run NAME --iso boots it).")
    var iso = false

    @OptionGroup var fetch: FetchOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        CommandMain.bootstrapLogging(output.logLevel)
        let plan = try fetch.resolve(try plan.plan(), quiet: output.quiet || output.json)
        if iso, let reason = IsoImage.unavailableReason() { throw CommandFailure("--iso: \(reason)") }
        let result: BuildResult
        var isoPath: String?
        do {
            result = try ImageBuilder().build(plan, outputRoot: out)
            if iso {
                isoPath = "\(out)/\(plan.profileName).iso"
                let size = try IsoImage.write(treeDirectory: result.directory, manifest: result.manifest, to: isoPath!)
                if !output.json { print("wrote \(isoPath!) (\(size) bytes)") }
            }
        } catch {
            throw CommandFailure(error.description)
        }
        if output.json {
            try CommandMain.printJSON(BuildSummary(directory: result.directory, manifest: result.manifest))
            return
        }
        let manifest = result.manifest
        print("built \(manifest.profile.name) (\(manifest.profile.api.rawValue), \(manifest.profile.arch.rawValue)) in \(result.directory)")
        print(ModuleTable.render(first: manifest.firstStage, modules: manifest.modules, runtime: manifest.runtimeFiles))
        if let configuration = manifest.rootTaskConfiguration {
            print("\(configuration.owner) configuration: \(configuration.delivery) - \(configuration.reason)")
        }
        for path in manifest.bootPaths {
            print("boot path \(path.name): \(path.usable ? "yes" : "no") - \(path.reason)")
            if let configuration = path.configuration, manifest.rootTaskConfiguration?.delivery != "module" {
                print("  configuration: \(configuration)")
            }
        }
        if !plan.omitted.isEmpty {
            print("left out (optional, not found): \(plan.omitted.joined(separator: ", "))")
        }
    }
}

struct BuildSummary: Encodable {
    var directory: String
    var manifest: Manifest
}

struct ShowProfile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print the resolved plan of a profile: what would be booted, from which files, with which command lines.")

    @OptionGroup var plan: PlanArguments
    @OptionGroup var output: OutputOptions

    func run() throws {
        CommandMain.bootstrapLogging(output.logLevel)
        let plan = try plan.plan(allowMissing: true)
        let components = [plan.firstStage] + plan.modules
        if output.json {
            try CommandMain.printJSON(PlanSummary(plan))
            return
        }
        print("profile \(plan.profileName): \(plan.description)")
        print("api \(plan.api.rawValue), arch \(plan.arch.rawValue)")
        print("search path: \(plan.searchPath.isEmpty ? "(empty)" : plan.searchPath.joined(separator: ":"))")
        for component in components {
            let source: String
            switch component.source {
            case let .file(path): source = path
            case .generated: source = "(generated from the profile)"
            case let .ramDisk(spec): source = "(built from \(spec.rootfs), \(spec.format))"
            case let .missing(file): source = "NOT FOUND: no '\(file)' in the search path"
            case let .remote(remote): source = Self.describe(remote)
            case let .cached(_, origin): source = origin
            }
            let slot = component == plan.firstStage ? "first stage" : component.delivery == .boot ? "boot module" : "run time"
            print("- \(component.name) [\(component.role.rawValue), \(slot)] \(source)")
            print("    cmdline: \(component.commandLine)")
        }
        if !plan.omitted.isEmpty { print("left out (optional, not found): \(plan.omitted.joined(separator: ", "))") }
        let missing = components.filter { if case .missing = $0.source { return true } else { return false } }
        if !missing.isEmpty {
            print("not found: \(missing.map(\.name).joined(separator: ", ")); add their folders with --search-path or DROPS_SEARCH_PATH before building")
        }
        print("milestones: \(plan.milestones.map(\.pattern).joined(separator: " -> "))")
    }

    static func describe(_ remote: RemoteComponent) -> String {
        let origins = remote.origins.map { origin -> String in
            switch origin {
            case let .archive(path): return path
            case let .url(url, pin, _): return "\(url) (\(pin.map { "sha256 \($0.prefix(12))…" } ?? "NO PIN"))"
            }
        }
        let member = remote.member.map { "'\($0)' from " } ?? ""
        return "\(member)\(origins.joined(separator: " or "))\(remote.optional ? " (optional)" : "")"
    }
}

/// The JSON form of a plan for `show --json`.
struct PlanSummary: Encodable {
    struct Component: Encodable {
        var name: String
        var role: String
        var delivery: String
        var source: String
        var cmdline: String
    }
    var profile: String
    var description: String
    var api: String
    var arch: String
    var searchPath: [String]
    var variables: [String: String]
    var firstStage: Component
    var modules: [Component]
    var omitted: [String]
    var milestones: [Milestone]

    init(_ plan: BuildPlan) {
        func component(_ c: PlannedComponent) -> Component {
            let source: String
            switch c.source {
            case let .file(path): source = path
            case .generated: source = "generated"
            case .ramDisk: source = "ramdisk"
            case .missing: source = "missing"
            case let .remote(remote): source = ShowProfile.describe(remote)
            case let .cached(_, origin): source = origin
            }
            return Component(name: c.name, role: c.role.rawValue, delivery: c.delivery.rawValue, source: source, cmdline: c.commandLine)
        }
        profile = plan.profileName
        description = plan.description
        api = plan.api.rawValue
        arch = plan.arch.rawValue
        searchPath = plan.searchPath
        variables = plan.variables
        firstStage = component(plan.firstStage)
        modules = plan.modules.map(component)
        omitted = plan.omitted
        milestones = plan.milestones
    }
}

struct ListProfiles: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the profiles with their API and description.")

    @OptionGroup var location: ProfileLocation
    @OptionGroup var output: OutputOptions

    struct Entry: Encodable {
        var name: String
        var api: String?
        var description: String?
        var error: String?
    }

    func run() throws {
        let loader = location.loader()
        let names = loader.profileNames()
        guard !names.isEmpty else {
            throw CommandFailure("no profiles (NAME.toml) in \(loader.directory); pass --profiles-dir")
        }
        let entries = names.map { name -> Entry in
            do {
                let profile = try loader.load(name)
                return Entry(name: name, api: profile.api.rawValue, description: profile.description)
            } catch {
                return Entry(name: name, error: "\(error)")
            }
        }
        if output.json {
            try CommandMain.printJSON(entries)
            return
        }
        let width = (entries.map(\.name.count).max() ?? 4) + 2
        for entry in entries {
            let name = entry.name.padding(toLength: width, withPad: " ", startingAt: 0)
            if let error = entry.error {
                print("\(name)BROKEN     \(error)")
            } else {
                let api = (entry.api ?? "").padding(toLength: 11, withPad: " ", startingAt: 0)
                print("\(name)\(api)\(entry.description ?? "")")
            }
        }
    }
}

struct VerifyTree: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-hash an image tree against its manifest.json and name every difference.",
        discussion: "Exit status 0 when the tree matches its manifest, 1 when anything differs.")

    @Argument(help: "The image tree (a folder with manifest.json), for example out/l4env.")
    var directory: String

    @OptionGroup var output: OutputOptions

    struct Report: Encodable {
        var directory: String
        var ok: Bool
        var files: Int
        var differences: [String]
    }

    func run() throws {
        let result: (manifest: Manifest, differences: [TreeDifference])
        do {
            result = try TreeVerifier.verify(directory: directory)
        } catch {
            throw CommandFailure(error.description)
        }
        let report = Report(directory: directory, ok: result.differences.isEmpty,
                            files: result.manifest.files.count, differences: result.differences.map(\.description))
        if output.json {
            try CommandMain.printJSON(report)
        } else if report.ok {
            print("\(directory): all \(report.files) files match the manifest")
        } else {
            for difference in report.differences { print(difference) }
        }
        if !report.ok {
            throw CommandFailure("\(directory) differs from its manifest in \(report.differences.count) place(s)")
        }
    }
}
