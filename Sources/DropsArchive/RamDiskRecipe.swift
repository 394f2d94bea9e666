import Foundation

/// Everything a RAM disk is made of and how it is written: what `drops-build ramdisk` and
/// a profile's `ramdisk = { … }` module both describe.
public struct RamDiskRecipe: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable { case cpio, ext2 }

    public var rootfs: String
    public var overlays: [String] = []
    /// The device table; nil takes ROOTFS/devices.txt when it exists.
    public var devices: String?
    public var format: Format = .cpio
    public var compression: RamDiskCompression = .gzip
    /// ext2 only; nil sizes the image by its content.
    public var sizeKiB: Int?
    /// The BusyBox binary, or nil for none.
    public var busybox: String? = Busybox.defaultPath

    public init(rootfs: String) {
        self.rootfs = rootfs
    }

    public struct Result: Sendable {
        public var size: Int
        public var entries: Int
        /// The BusyBox package version and applet count, when BusyBox went in.
        public var busybox: String?
    }

    /// The device table actually used.
    public var deviceTable: String? {
        devices ?? (FileManager.default.fileExists(atPath: rootfs + "/devices.txt") ? rootfs + "/devices.txt" : nil)
    }

    /// Builds the RAM disk into `path` (complete or not at all).
    public func build(to path: String) throws(RamDiskError) -> Result {
        var table: [DeviceEntry] = []
        if let tablePath = deviceTable {
            guard let text = try? String(contentsOfFile: tablePath, encoding: .utf8) else {
                throw .unreadable(path: tablePath, reason: "cannot read the device table")
            }
            table = try DeviceTable.parse(text, name: tablePath)
        }
        var tree = try RootTree(folders: [rootfs] + overlays, devices: table, excluding: Set(deviceTable.map { [$0] } ?? []))
        var box: Busybox?
        if let busybox {
            box = try Busybox.installed(path: busybox)
            try box!.install(into: &tree)
        }
        let size: Int
        switch format {
        case .cpio:
            size = try RamDiskWriter(compression: compression).write(tree, to: path)
        case .ext2:
            size = try Ext2Writer(sizeKiB: sizeKiB ?? max(1024, Ext2Writer.contentKiB(tree) * 5 / 4 + 512)).write(tree, to: path)
        }
        return Result(size: size, entries: tree.entries.count, busybox: box.map { "\($0.version) (\($0.applets.count) applets)" })
    }

    /// A size like `16M`, `4096K`, `1G` or plain KiB, in KiB; nil when it is not one.
    public static func kibibytes(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1, "M": 1024, "G": 1024 * 1024]
        if let last = text.uppercased().last, let unit = units[last] {
            return Int(text.dropLast()).flatMap { $0 > 0 ? $0 * unit : nil }
        }
        return Int(text).flatMap { $0 > 0 ? $0 : nil }
    }

    /// Words for manifests and logs.
    public var summary: String {
        let what = format == .ext2 ? "ext2" : "cpio\(compression == .none ? "" : ", \(compression.rawValue)")"
        return "RAM disk (\(what)) from \(([rootfs] + overlays).joined(separator: " + "))"
    }
}
