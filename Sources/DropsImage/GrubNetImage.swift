import Foundation
import DropsArchive
import DropsModel

/// A GRUB 2 network boot image made with Debian's grub-mkimage: the modules a multiboot (or
/// Linux) netboot needs are built in, and its prefix points at the tree's grub/ folder on one
/// TFTP server and port, so it loads grub/grub.cfg and every image from there (a tree built
/// with --http-base names its images on the HTTP server, `(http,IP:PORT)`, which the http
/// module reads). GRUB 2 can name a port (`(tftp,IP:PORT)`), which lets it fetch from a
/// server that does not listen on port 69. The same grub.cfg serves both platforms.
public enum GrubNetImage {
    /// The firmware an image is made for.
    public enum Platform: String, Sendable, CaseIterable {
        /// A BIOS PXE ROM loads `core.0` (grub-pc-bin).
        case bios = "i386-pc"
        /// x86-64 UEFI firmware loads `core.efi` (grub-efi-amd64-bin). UEFI cannot boot a
        /// multiboot chain itself; GRUB loads it and leaves the firmware before the kernel runs.
        case efiX64 = "x86_64-efi"

        /// Where the image is served from, relative to the tree.
        public var entry: String { "grub/\(rawValue)/" + (self == .bios ? "core.0" : "core.efi") }

        /// The Debian package that holds GRUB's modules for this platform.
        public var package: String { self == .bios ? "grub-pc-bin" : "grub-efi-amd64-bin" }

        var format: String { self == .bios ? "i386-pc-pxe" : "x86_64-efi" }
        var moduleFolder: String { "/usr/lib/grub/\(rawValue)" }

        /// Built in, so nothing but grub.cfg and the images has to come over the network:
        /// the firmware's network driver, TFTP, the loaders and the commands grub.cfg uses.
        var modules: [String] {
            [self == .bios ? "pxe" : "efinet", "tftp", "http", "multiboot", "linux", "normal", "configfile", "echo", "test", "serial", "terminal"]
        }
    }

    public static let tool = "grub-mkimage"

    /// The prefix GRUB loads grub.cfg and its modules from; `tree` is the tree's folder on
    /// the server when it serves several trees (`l4env`), empty when it serves one.
    public static func prefix(server: String, port: Int?, tree: String = "") -> String {
        let folder = tree.isEmpty ? "" : tree + "/"
        return "(tftp,\(server)\(port.map { ":\($0)" } ?? ""))/\(folder)\(parentDirectory(of: Grub2Config.fileName))"
    }

    /// Why no image for `platform` can be made here, or nil when it can.
    public static func unavailableReason(for platform: Platform = .bios) -> String? {
        guard findTool() != nil else { return "\(tool) is not installed; install Debian's grub-common package (make deps does it)" }
        let network = platform.modules[0]
        guard FileManager.default.fileExists(atPath: "\(platform.moduleFolder)/\(network).mod") else {
            return "GRUB's \(platform.rawValue) modules are missing from \(platform.moduleFolder); install Debian's \(platform.package) package"
        }
        return nil
    }

    /// Writes the image for `platform` to `output`.
    public static func make(_ platform: Platform = .bios, server: String, port: Int?, tree: String = "", output: String) throws(ImageError) {
        if let reason = unavailableReason(for: platform) { throw .toolFailed(tool, reason) }
        let made = ToolRun.run([findTool()!, "-O", platform.format, "-d", platform.moduleFolder,
                                "-p", prefix(server: server, port: port, tree: tree), "-o", output] + platform.modules)
        guard made.status == 0 else {
            throw .toolFailed(tool, "exit status \(made.status): \(made.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    static func findTool() -> String? {
        ["/usr/bin/", "/usr/local/bin/", "/bin/"].map { $0 + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
