import DropsArchive
import DropsModel
import Foundation

/// A bootable CD image of a built tree: ISOLINUX (Debian's isolinux package) in an El Torito
/// no-emulation record, mboot.c32 and its libraries, isolinux.cfg booting the same multiboot
/// chain with the same command lines as the network menus, and the tree's files.
public enum IsoImage {
    public static let isolinux = "/usr/lib/ISOLINUX/isolinux.bin"
    public static let folder = "isolinux"
    /// The syslinux modules ISOLINUX needs beside it (from syslinux-common).
    static let modules = ["ldlinux.c32", "mboot.c32", "libcom32.c32"]

    /// Why no image can be made here, or nil.
    public static func unavailableReason() -> String? {
        guard FileManager.default.fileExists(atPath: isolinux) else {
            return "\(isolinux) is missing; install Debian's isolinux package (make deps does it)"
        }
        let missing = BootLoaderFiles.pxelinux.filter { modules.contains($0.treePath) && !FileManager.default.fileExists(atPath: $0.hostPath) }
        return missing.isEmpty ? nil : "\(missing.map(\.hostPath).joined(separator: ", ")) missing; install Debian's syslinux-common package"
    }

    /// ISOLINUX's configuration: images by their absolute path on the CD, so each sees
    /// `/bin/NAME args`.
    public static func config(_ manifest: Manifest) -> String {
        let title = manifest.profile.description.isEmpty ? manifest.profile.name : "\(manifest.profile.name): \(manifest.profile.description)"
        if manifest.firstStage.role == .linux {
            return PXELinuxConfig.linux(title: title, profile: manifest.profile.name, kernel: "/" + manifest.firstStage.path,
                                        args: String(manifest.firstStage.cmdline.dropFirst(manifest.firstStage.name.count).drop { $0 == " " }),
                                        initrds: manifest.modules.map { "/" + $0.path }, paths: "absolute on the CD")
        }
        let images = ([manifest.firstStage] + manifest.modules).map { module in
            (path: "/" + module.path, args: String(module.cmdline.dropFirst(module.name.count).drop { $0 == " " }))
        }
        return PXELinuxConfig.render(title: manifest.profile.description.isEmpty ? manifest.profile.name : "\(manifest.profile.name): \(manifest.profile.description)",
                                     profile: manifest.profile.name, images: images, paths: "absolute on the CD")
    }

    /// Writes the CD image of the tree in `directory` to `path`; returns its size.
    @discardableResult
    public static func write(treeDirectory directory: String, manifest: Manifest, to path: String) throws(ImageError) -> Int {
        if let reason = unavailableReason() { throw .toolFailed("ISO image", reason) }
        var files: [Iso9660Writer.File] = [
            .init(path: "\(folder)/isolinux.bin", source: .file(isolinux)),
            .init(path: "\(folder)/isolinux.cfg", source: .bytes(Array(config(manifest).utf8))),
        ]
        for module in BootLoaderFiles.pxelinux where modules.contains(module.treePath) {
            files.append(.init(path: "\(folder)/\(module.treePath)", source: .file(module.hostPath)))
        }
        // Every file of the tree, as it is on the TFTP server (menus, manifest, bin/).
        for file in manifest.files where !BootLoaderFiles.pxelinux.contains(where: { $0.treePath == file.path }) {
            files.append(.init(path: file.path, source: .file(directory + "/" + file.path)))
        }
        files.append(.init(path: Manifest.fileName, source: .file(directory + "/" + Manifest.fileName)))
        do {
            return try Iso9660Writer(volumeID: "DROPS_" + manifest.profile.name, boot: .init(image: "\(folder)/isolinux.bin", catalog: "\(folder)/boot.cat"),
                                     timestamp: RamDiskWriter.sourceDateEpoch() ?? 0).write(files, to: path)
        } catch {
            throw .toolFailed("ISO image", error.description)
        }
    }
}
