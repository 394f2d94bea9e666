import Foundation

/// BusyBox from Debian's busybox-static package: the one binary of the RAM disk's userland,
/// installed as /bin/busybox with a symlink for each applet at the path BusyBox itself lists
/// (`busybox --list-full`), the way `busybox --install` lays it out.
public struct Busybox: Sendable, Equatable {
    public static let package = "busybox-static"
    public static let defaultPath = "/bin/busybox"

    /// The binary on the builder.
    public var path: String
    /// The Debian package version it came from, for the manifest.
    public var version: String
    /// Applet paths inside the RAM disk, without the leading slash (`bin/sh`, `sbin/init`).
    public var applets: [String]

    /// Finds the installed package's binary and asks it for its applets.
    public static func installed(path: String = defaultPath) throws(RamDiskError) -> Busybox {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw .unreadable(path: path, reason: "not installed; install Debian's \(package) package (make deps does it)")
        }
        // A binary unpacked from a package of another architecture (make busybox-i386) has its
        // version beside it; the installed one is asked of dpkg.
        let recorded = try? String(contentsOfFile: path + ".version", encoding: .utf8)
        let asked = ToolRun.run(["/usr/bin/dpkg-query", "-W", "-f", "${Version} ${Architecture}", package], errors: false)
        let version = (recorded ?? (asked.status == 0 ? asked.output : nil))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown (not from a Debian package)"
        let listed = ToolRun.run([path, "--list-full"], errors: false)
        guard listed.status == 0 else {
            throw .unreadable(path: path, reason: "busybox --list-full failed with status \(listed.status)")
        }
        let listing = listed.output
        let applets = listing.split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.contains("..") }
        guard !applets.isEmpty else { throw .unreadable(path: path, reason: "busybox --list-full listed no applets") }
        return Busybox(path: path, version: version.isEmpty ? "unknown" : version, applets: applets)
    }

    /// Puts the binary and its applet links into `tree`; files the tree already has win.
    public func install(into tree: inout RootTree) throws(RamDiskError) {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let size = (attributes?[.size] as? NSNumber)?.intValue else {
            throw .unreadable(path: path, reason: "cannot read its size")
        }
        tree.addUnlessPresent(RootEntry(path: "/bin/busybox", content: .file(source: path, size: size), mode: 0o755))
        for applet in applets where applet != "bin/busybox" {
            tree.addUnlessPresent(RootEntry(path: "/" + applet, content: .symlink(target: "/bin/busybox"), mode: 0o777))
        }
    }
}
