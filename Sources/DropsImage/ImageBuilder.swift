import DropsModel
import DropsArchive
import Foundation
import Logging

/// The result of a build: where the tree is and what it holds.
public struct BuildResult: Sendable {
    public var directory: String
    public var manifest: Manifest
}

/// Writes an image tree for a plan: components under bin/, the four boot menus and
/// manifest.json. It builds into a hidden folder beside the target and swaps it in at the
/// end, so a failed build leaves the previous tree untouched.
public struct ImageBuilder: Sendable {
    /// Files the L4 tftp file provider fetches must stay below this (it cannot pass block 65535).
    public static let runtimeFileLimit = 65535 * 1432

    public var logger: Logger

    public init(logger: Logger = Logger(label: "drops.build")) {
        self.logger = logger
    }

    /// Builds `plan` into `outputRoot/NAME` and returns the manifest written.
    public func build(_ plan: BuildPlan, outputRoot: String) throws(ImageError) -> BuildResult {
        let target = normalizePath(absolutePath(outputRoot + "/" + plan.profileName, relativeTo: FileManager.default.currentDirectoryPath))
        let staging = TreeStaging(target: target)
        try staging.create()
        do {
            let manifest = try write(plan, into: staging.temporary)
            try staging.commit()
            logger.info("wrote \(target)")
            return BuildResult(directory: target, manifest: manifest)
        } catch {
            staging.discard()
            throw error
        }
    }

    func write(_ plan: BuildPlan, into root: String) throws(ImageError) -> Manifest {
        try makeDirectory(root + "/bin")
        let firstStage = try install(plan.firstStage, arch: plan.arch, root: root)
        var modules: [Manifest.Module] = []
        var runtimeFiles: [Manifest.Module] = []
        for component in plan.modules {
            let entry = try install(component, arch: plan.arch, root: root)
            if component.delivery == .runtime {
                guard entry.size < Self.runtimeFileLimit else {
                    throw .ruleViolation(ModelError.runtimeFileTooLarge(module: component.name, size: entry.size, limit: Self.runtimeFileLimit).description)
                }
                runtimeFiles.append(entry)
            } else {
                modules.append(entry)
            }
        }

        let menu = BootMenu(plan: plan)
        let menus: [(String, String)] = [
            (IPXEScript.fileName, IPXEScript.render(menu)),
            (PXELinuxConfig.fileName, PXELinuxConfig.render(menu)),
            (Grub2Config.fileName, Grub2Config.render(menu)),
            (GrubLegacyMenu.fileName, GrubLegacyMenu.render(menu)),
        ]
        for (path, text) in menus {
            try writeFile(root + "/" + path, Data(text.utf8))
        }
        if !runtimeFiles.isEmpty {
            try writeFile(root + "/" + Self.runtimeListName, Data(Self.runtimeList(runtimeFiles).utf8))
        }
        let supportFiles = try BootLoaderFiles.install(into: root, logger: logger)

        let manifest = Manifest(
            format: 1, tool: "drops \(DropsVersion.current)",
            profile: .init(name: plan.profileName, description: plan.description, api: plan.api,
                           arch: plan.arch, sha256: Self.profileHash(plan)),
            variables: plan.variables, firstStage: firstStage, modules: modules,
            runtimeFiles: runtimeFiles,
            bootPaths: BootPathAnalysis.paths(menu: menu, supportFiles: supportFiles),
            milestones: plan.milestones, failures: plan.failures,
            rootTaskConfiguration: plan.rootTaskConfiguration,
            files: try TreeScanner.files(in: root, known: ([firstStage] + modules + runtimeFiles).map {
                Manifest.File(path: $0.path, size: $0.size, sha256: $0.sha256)
            }))
        let data: Data
        do { data = try manifest.encoded() } catch {
            throw .writeFailed(path: root + "/" + Manifest.fileName, reason: "\(error)")
        }
        try writeFile(root + "/" + Manifest.fileName, data)
        return manifest
    }

    /// The run-time files and their SHA-256 in sha256sum's format, for clients that fetch them
    /// (the RAM disk's run-time step) and for a quick `sha256sum -c` by hand.
    public static let runtimeListName = "runtime.sha256"

    static func runtimeList(_ files: [Manifest.Module]) -> String {
        files.map { "\($0.sha256)  \($0.path)\n" }.joined()
    }

    /// Copies (or generates) one component into bin/, inspecting it first.
    func install(_ component: PlannedComponent, arch: Architecture, root: String) throws(ImageError) -> Manifest.Module {
        let bytes: [UInt8]
        let source: String
        switch component.source {
        case let .file(path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw .unreadable(path: path, reason: "no such file or no permission")
            }
            bytes = [UInt8](data)
            source = path
        case let .generated(text):
            bytes = Array(text.utf8)
            source = "generated"
        case let .ramDisk(spec):
            (bytes, source) = try Self.buildRamDisk(spec, arch: arch, component: component.name, scratch: root + "/." + component.name + ".ramdisk")
        case let .cached(path, origin):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw .unreadable(path: path, reason: "the cached copy of \(origin) is gone; build again to fetch it")
            }
            bytes = [UInt8](data)
            source = origin
        case let .missing(file):
            throw .unreadable(path: file, reason: "component '\(component.name)' was not found in the search path")
        case let .remote(remote):
            throw .unreadable(path: remote.origins.map(\.description).joined(separator: ", "),
                              reason: "component '\(component.name)' comes from an archive or URL that was not fetched before the build")
        }
        let report = try ComponentInspector.inspect(bytes, component: component.name, path: source,
                                                    inspection: component.inspection, arch: arch)
        try writeFile(root + "/" + component.treePath, Data(bytes))
        logger.debug("\(component.treePath): \(bytes.count) bytes, \(report.summary)")
        return Manifest.Module(
            name: component.name, role: component.role, delivery: component.delivery,
            path: component.treePath, size: bytes.count, sha256: FileDigest.sha256(bytes),
            cmdline: component.commandLine, source: source, inspection: report.summary,
            modaddr: component.modaddr)
    }

    /// The BusyBox of the profile's architecture: ia32 L4Linux runs i386 programs.
    static func busybox(for arch: Architecture, rootfs: String) throws(ImageError) -> String {
        guard arch == .ia32 else { return Busybox.defaultPath }
        let path = ProcessInfo.processInfo.environment["DROPS_BUSYBOX_I386"].flatMap { $0.isEmpty ? nil : $0 }
            ?? parentDirectory(of: rootfs) + "/build/busybox-i386/busybox"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw .toolFailed("RAM disk", "an ia32 profile needs i386 BusyBox and \(path) is missing; run make busybox-i386 (Debian's busybox-static:i386), set $DROPS_BUSYBOX_I386, or give busybox = PATH")
        }
        return path
    }

    /// Builds a `ramdisk = { … }` module with DropsArchive; returns its bytes and the words the
    /// manifest records as its source (folders, format, BusyBox package version).
    static func buildRamDisk(_ spec: RamDiskSpec, arch: Architecture, component: String, scratch: String) throws(ImageError) -> ([UInt8], String) {
        var recipe = RamDiskRecipe(rootfs: spec.rootfs)
        recipe.overlays = spec.overlays
        recipe.devices = spec.devices
        recipe.format = RamDiskRecipe.Format(rawValue: spec.format) ?? .cpio
        recipe.compression = RamDiskCompression(rawValue: spec.compression) ?? .gzip
        recipe.sizeKiB = spec.size.flatMap(RamDiskRecipe.kibibytes)
        switch spec.busybox {
        case "none": recipe.busybox = nil
        case "auto": recipe.busybox = try Self.busybox(for: arch, rootfs: spec.rootfs)
        default: recipe.busybox = spec.busybox
        }
        defer { unlink(scratch) }
        do {
            let result = try recipe.build(to: scratch)
            guard let data = FileManager.default.contents(atPath: scratch) else { throw ImageError.unreadable(path: scratch, reason: "just written, now gone") }
            return ([UInt8](data), recipe.summary + (result.busybox.map { ", busybox-static \($0)" } ?? ", no BusyBox"))
        } catch let error as RamDiskError {
            throw .toolFailed("RAM disk '\(component)'", error.description)
        } catch let error as ImageError {
            throw error
        } catch {
            throw .toolFailed("RAM disk '\(component)'", "\(error)")
        }
    }

    /// Hash of the profile texts in include order; paths are left out so the hash does not
    /// depend on where the checkout lives.
    static func profileHash(_ plan: BuildPlan) -> String {
        var bytes: [UInt8] = []
        for source in plan.sources {
            bytes += Array(source.text.utf8)
            bytes.append(0)
        }
        return FileDigest.sha256(bytes)
    }
}

func makeDirectory(_ path: String) throws(ImageError) {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw .writeFailed(path: path, reason: error.localizedDescription)
    }
}

func writeFile(_ path: String, _ data: Data) throws(ImageError) {
    try makeDirectory(parentDirectory(of: path))
    do {
        try data.write(to: URL(fileURLWithPath: path))
    } catch {
        throw .writeFailed(path: path, reason: error.localizedDescription)
    }
}
