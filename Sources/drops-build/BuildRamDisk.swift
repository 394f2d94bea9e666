import ArgumentParser
import Crypto
import DropsArchive
import DropsCLI
import Foundation

struct BuildRamDisk: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ramdisk",
        abstract: "Build a RAM disk (cpio newc, the initramfs format) from rootfs/.",
        discussion: """
            The RAM disk holds the files of --rootfs, then of each --overlay (a later folder \
            replaces what an earlier one has at the same path), then the nodes and folders of \
            the device table (default: ROOTFS/devices.txt, which itself is left out), and \
            BusyBox from Debian's busybox-static package with a link for each of its applets \
            (unless the folders already hold a file at that path).

            Every entry is owned by root unless the device table says otherwise, every time \
            stamp is $SOURCE_DATE_EPOCH (or 0), entries are sorted by path and inode numbers \
            counted in that order: the same inputs give the same bytes. The file is written \
            beside its final name and renamed into place, so a failed build leaves nothing.

            A device table line: path type mode uid gid major minor [start inc count], type \
            d (folder), c, b (character, block device) or p (FIFO), mode in octal; with \
            start, inc and count a numbered series (/dev/ttyS c 660 0 0 4 64 0 1 4 makes \
            ttyS0 to ttyS3, minor 64 to 67).

            Example:
              drops-build ramdisk --overlay ~/l4/rootfs-extra --compression xz -o out/ramdisk.img
            """)

    @Option(name: .long, help: ArgumentHelp("The root file system folder.", valueName: "dir"))
    var rootfs = "rootfs"

    @Option(name: .long, help: ArgumentHelp("A folder added on top of the root file system (repeatable).", valueName: "dir"))
    var overlay: [String] = []

    @Option(name: .long, help: ArgumentHelp("The device table (default: ROOTFS/devices.txt when it exists).", valueName: "file"))
    var devices: String?

    @Option(name: .long, help: ArgumentHelp("cpio (newc, an initramfs) or ext2 (a file system image for root=/dev/ram0).", valueName: "format"))
    var format = "cpio"

    @Option(name: .long, help: ArgumentHelp("none, gzip, xz, zstd or lz4 (cpio only).", valueName: "filter"))
    var compression = "gzip"

    @Option(name: .long, help: ArgumentHelp("Size of an ext2 image, like 16M or 4096K (default: the content plus a quarter).", valueName: "size"))
    var size: String?

    @Option(name: .long, help: ArgumentHelp("The BusyBox binary to install, or 'none'.", valueName: "path"))
    var busybox = Busybox.defaultPath

    @Option(name: .shortAndLong, help: ArgumentHelp("The RAM disk to write (default: out/ramdisk.cpio plus the compression's suffix).", valueName: "file"))
    var output: String?

    @OptionGroup var options: OutputOptions

    func validate() throws {
        guard ["cpio", "ext2"].contains(format) else { throw ValidationError("--format \(format) is not cpio or ext2") }
        if let size, RamDiskRecipe.kibibytes(size) == nil { throw ValidationError("--size \(size) is not a size like 16M or 4096K") }
        if size != nil && format != "ext2" { throw ValidationError("--size is for --format ext2") }
        guard RamDiskCompression(rawValue: compression) != nil else {
            throw ValidationError("--compression \(compression) is not one of \(RamDiskCompression.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    struct Summary: Encodable {
        var path: String
        var size: Int
        var sha256: String
        var entries: Int
        var compression: String
        var busybox: String?
        var seconds: Double
    }

    func run() throws {
        CommandMain.bootstrapLogging(options.logLevel)
        var recipe = RamDiskRecipe(rootfs: rootfs)
        recipe.overlays = overlay
        recipe.devices = devices
        recipe.format = RamDiskRecipe.Format(rawValue: format)!
        recipe.compression = RamDiskCompression(rawValue: compression)!
        recipe.sizeKiB = size.flatMap(RamDiskRecipe.kibibytes)
        recipe.busybox = busybox == "none" ? nil : busybox
        let target = output ?? (recipe.format == .ext2 ? "out/ramdisk.ext2" : "out/ramdisk.cpio\(recipe.compression.suffix)")
        let start = Date()
        do {
            let folder = (target as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: folder.isEmpty ? "." : folder, withIntermediateDirectories: true)
            let result = try recipe.build(to: target)
            let digest = SHA256.hash(data: try Data(contentsOf: URL(fileURLWithPath: target), options: .alwaysMapped))
            let summary = Summary(path: target, size: result.size, sha256: digest.map { String(format: "%02x", $0) }.joined(),
                                  entries: result.entries, compression: recipe.format == .ext2 ? "ext2" : recipe.compression.rawValue,
                                  busybox: result.busybox, seconds: Date().timeIntervalSince(start))
            if options.json {
                try CommandMain.printJSON(summary)
            } else if !options.quiet {
                print("wrote \(target): \(result.size) bytes, \(summary.entries) entries, \(summary.compression), sha256 \(summary.sha256.prefix(16))"
                      + (summary.busybox.map { ", busybox \($0)" } ?? ""))
            }
        } catch let error as RamDiskError {
            throw CommandFailure(error.description)
        }
    }
}
