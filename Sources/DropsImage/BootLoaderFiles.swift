import DropsModel
import Foundation
import Logging

/// PXELINUX files copied from Debian's pxelinux and syslinux-common packages, so that the
/// tree can boot chains too large for iPXE's own multiboot loader.
public enum BootLoaderFiles {
    /// Tree path and where Debian installs it.
    public static let pxelinux: [(treePath: String, hostPath: String)] = [
        ("lpxelinux.0", "/usr/lib/PXELINUX/lpxelinux.0"),
        ("ldlinux.c32", "/usr/lib/syslinux/modules/bios/ldlinux.c32"),
        ("mboot.c32", "/usr/lib/syslinux/modules/bios/mboot.c32"),
        ("libcom32.c32", "/usr/lib/syslinux/modules/bios/libcom32.c32"),
    ]

    /// Copies what is installed; returns the tree paths copied. All or nothing: a partial set
    /// would only fail later on the target.
    static func install(into root: String, logger: Logger) throws(ImageError) -> [String] {
        let manager = FileManager.default
        guard pxelinux.allSatisfy({ manager.fileExists(atPath: $0.hostPath) }) else {
            logger.notice("PXELINUX files not installed (Debian packages pxelinux, syslinux-common): the tree has no PXELINUX boot path")
            return []
        }
        for file in pxelinux {
            guard let data = manager.contents(atPath: file.hostPath) else {
                throw .unreadable(path: file.hostPath, reason: "no permission")
            }
            try writeFile(root + "/" + file.treePath, data)
        }
        return pxelinux.map(\.treePath)
    }
}

/// Decides which boot paths can boot a tree and says why the others cannot.
public enum BootPathAnalysis {
    public static func paths(menu: BootMenu, supportFiles: [String]) -> [Manifest.BootPath] {
        let hasPXELinux = BootLoaderFiles.pxelinux.allSatisfy { supportFiles.contains($0.treePath) }
        let noPXELinux = "the PXELINUX files (Debian packages pxelinux and syslinux-common) were not installed when the tree was built"
        var result: [Manifest.BootPath] = [
            .init(name: "qemu-multiboot", entry: menu.firstStage.path, usable: true,
                  reason: "QEMU's own loader (-kernel, -initrd) with bin/ as working directory gives every image `name args`"),
        ]
        if menu.linux {
            result.append(.init(name: "ipxe", entry: IPXEScript.fileName, usable: true,
                                reason: "iPXE boots the Linux kernel with its initrd itself; the kernel sees its arguments"))
        } else if let problem = IPXEMultibootLimits.problem(with: menu) {
            result.append(.init(name: "ipxe", entry: IPXEScript.fileName, usable: hasPXELinux,
                                reason: hasPXELinux
                                    ? "iPXE cannot load \(problem) itself, so boot.ipxe chains to PXELINUX"
                                    : "iPXE cannot load \(problem) itself and \(noPXELinux)"))
        } else {
            result.append(.init(name: "ipxe", entry: IPXEScript.fileName, usable: true,
                                reason: "within iPXE's multiboot limits (\(menu.modules.count) of \(IPXEMultibootLimits.maxModules) modules, at most \(IPXEMultibootLimits.commandLineBytes(menu)) of \(IPXEMultibootLimits.maxCommandLineBytes) command-line bytes); iPXE passes `URI args` (the image's full URI as the first word)"))
        }
        result.append(.init(name: "pxelinux", entry: "lpxelinux.0", usable: hasPXELinux,
                            reason: hasPXELinux
                                ? (menu.linux ? "PXELINUX boots the Linux kernel with its initrd itself" : "mboot.c32 passes `bin/NAME args` (the path as the first word)")
                                : noPXELinux))
        let rewritten = ([menu.firstStage] + menu.modules).filter { $0.args.contains { "\"'\\".contains($0) } }.map(\.name)
        let rewriting = rewritten.isEmpty ? "" : "; GRUB 2 puts a backslash before quotes and backslashes, so \(rewritten.joined(separator: ", ")) would see changed command lines"
        result.append(.init(name: "grub2", entry: Grub2Config.fileName, usable: false,
                            reason: "grub.cfg is written; GRUB 2's network images name the server, so they are made per run (drops-run --chain grub, and drops-serve pxe for BIOS and UEFI PCs), the tree holds none" + rewriting))
        result.append(.init(name: "grub-legacy", entry: GrubLegacyMenu.fileName, usable: false,
                            reason: "menu.lst is written for a GRUB legacy netboot loader of your own (it passes `(nd)PATH args`); no such loader is shipped"))
        if let base = menu.httpBase {
            for index in result.indices {
                switch result[index].name {
                case "ipxe":
                    let chained = !menu.linux && IPXEMultibootLimits.problem(with: menu) != nil
                    result[index].http = true
                    result[index].httpReason = chained
                        ? "boot.ipxe chains to lpxelinux.0 over TFTP; PXELINUX then fetches every module from \(base)"
                        : "boot.ipxe fetches the kernel and every module from \(base)"
                case "pxelinux":
                    result[index].http = true
                    result[index].httpReason = "lpxelinux.0 and its configuration come over TFTP, every image from \(base)"
                case "grub2":
                    result[index].http = true
                    result[index].httpReason = "grub.cfg loads the kernel and every module from \(Grub2Config.httpDevice(menu).map { $0.device + $0.path } ?? base); the GRUB image and grub.cfg come over TFTP"
                case "qemu-multiboot":
                    result[index].http = false
                    result[index].httpReason = "QEMU's loader reads the tree's files from disk"
                default:
                    result[index].http = false
                    result[index].httpReason = "this loader fetches over TFTP only"
                }
            }
        }
        if let configuration = menu.rootTaskConfiguration {
            for index in result.indices {
                result[index].configuration = describe(configuration, rewrittenByGRUB2: result[index].name == "grub2")
            }
        }
        return result
    }

    /// What the root task's configuration looks like when it arrives on one boot path.
    static func describe(_ configuration: RootTaskConfiguration, rewrittenByGRUB2: Bool) -> String {
        if let module = configuration.module {
            return "\(module) (\(configuration.header)) through -configfile: \(configuration.owner) reads it unchanged"
        }
        let changed = configuration.text.contains { RootTaskConfiguration.rewrittenByGRUB2.contains($0) }
        if rewrittenByGRUB2 && changed {
            return "on \(configuration.owner)'s command line with a backslash before each quote and backslash, which its configuration parser refuses; config_delivery = \"auto\" or \"module\" delivers it as a file"
        }
        return "on \(configuration.owner)'s command line, unchanged"
    }
}
