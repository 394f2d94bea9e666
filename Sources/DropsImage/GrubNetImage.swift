import Foundation
import DropsArchive
import DropsModel

/// A GRUB 2 PXE boot image (`core.0`) made with Debian's grub-mkimage (grub-pc-bin): the
/// modules a multiboot netboot needs are built in, and its prefix points at the tree's
/// grub/ folder on one TFTP server and port, so it loads grub/grub.cfg and every image from
/// there. GRUB 2 can name a port (`(tftp,IP:PORT)`), which lets it fetch from a server
/// that does not listen on port 69.
public enum GrubNetImage {
    /// Where the image is served from, relative to the tree.
    public static let entry = "grub/i386-pc/core.0"
    public static let tool = "grub-mkimage"
    public static let moduleFolder = "/usr/lib/grub/i386-pc"
    /// Built in, so nothing but grub.cfg and the images has to come over the network.
    public static let modules = ["pxe", "tftp", "multiboot", "normal", "configfile", "echo", "test", "serial", "terminal"]

    /// The prefix GRUB loads grub.cfg and its modules from; `tree` is the tree's folder on
    /// the server when it serves several trees (`l4env`), empty when it serves one.
    public static func prefix(server: String, port: Int?, tree: String = "") -> String {
        let folder = tree.isEmpty ? "" : tree + "/"
        return "(tftp,\(server)\(port.map { ":\($0)" } ?? ""))/\(folder)\(parentDirectory(of: Grub2Config.fileName))"
    }

    /// Why no image can be made here, or nil when it can.
    public static func unavailableReason() -> String? {
        guard findTool() != nil else { return "\(tool) is not installed; install Debian's grub-pc-bin package (make deps does it)" }
        guard FileManager.default.fileExists(atPath: moduleFolder + "/pxe.mod") else {
            return "GRUB's i386-pc modules are missing from \(moduleFolder); install Debian's grub-pc-bin package"
        }
        return nil
    }

    /// Writes the image to `output`.
    public static func make(server: String, port: Int?, tree: String = "", output: String) throws(ImageError) {
        if let reason = unavailableReason() { throw .toolFailed(tool, reason) }
        let made = ToolRun.run([findTool()!, "-O", "i386-pc-pxe", "-d", moduleFolder, "-p", prefix(server: server, port: port, tree: tree),
                                "-o", output] + modules)
        guard made.status == 0 else {
            throw .toolFailed(tool, "exit status \(made.status): \(made.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    static func findTool() -> String? {
        ["/usr/bin/", "/usr/local/bin/", "/bin/"].map { $0 + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
