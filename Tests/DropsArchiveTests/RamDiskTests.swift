import DropsArchive
import DropsTestSupport
import Foundation
import Testing

@Suite struct DeviceTableTests {
    @Test func parsesNodesFoldersFifosAndSeries() throws {
        let table = """
            # path        type mode uid gid major minor [start inc count]
            /dev          d    755  0   0   0     0
            /dev/console  c    600  0   0   5     1
            /dev/ram0     b    660  0   6   1     0     # the initrd
            /dev/initctl  p    600  0   0   0     0
            /dev/ttyS     c    660  0   5   4     64    0     1   3

            """
        let entries = try DeviceTable.parse(table, name: "devices.txt")
        #expect(entries.map(\.path) == ["/dev", "/dev/console", "/dev/ram0", "/dev/initctl", "/dev/ttyS0", "/dev/ttyS1", "/dev/ttyS2"])
        #expect(entries[1] == DeviceEntry(path: "/dev/console", kind: .character, mode: 0o600, uid: 0, gid: 0, major: 5, minor: 1))
        #expect(entries[2].gid == 6 && entries[2].kind == .block)
        #expect(entries[6].minor == 66)
    }

    @Test func badLinesNameFileAndLine() {
        let cases: [(String, String)] = [
            ("/dev/console c 600 0 0 5", "6 fields"),
            ("/dev/console x 600 0 0 5 1", "type 'x'"),
            ("/dev/console c 689 0 0 5 1", "mode '689'"),
            ("dev/console c 600 0 0 5 1", "must be absolute"),
            ("/dev/../etc c 600 0 0 5 1", "must be absolute"),
            ("/dev/console c 600 root 0 5 1", "uid 'root'"),
            ("/dev/d d 755 0 0 0 0 0 1 3", "numbered series"),
        ]
        for (line, words) in cases {
            do {
                _ = try DeviceTable.parse("# header\n" + line + "\n", name: "rootfs/devices.txt")
                Issue.record("accepted: \(line)")
            } catch {
                #expect(error.description.hasPrefix("rootfs/devices.txt:2: "), "\(error)")
                #expect(error.description.contains(words), "\(error)")
            }
        }
    }
}

@Suite struct RamDiskTests {
    /// A small root: an init script, a data file, folders, absolute and relative symlinks.
    func sampleRoot(_ work: TemporaryDirectory) -> String {
        work.write("root/init", text: "#!/bin/sh\necho DROPS-ROOTFS init reached\n")
        chmod(work.path + "/root/init", 0o755)
        work.write("root/etc/hostname", text: "drops\n")
        work.write("root/bin/busybox", (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) })
        chmod(work.path + "/root/bin/busybox", 0o755)
        try? FileManager.default.createSymbolicLink(atPath: work.path + "/root/bin/sh", withDestinationPath: "busybox")
        try? FileManager.default.createSymbolicLink(atPath: work.path + "/root/sbin", withDestinationPath: "/bin")
        try? FileManager.default.createDirectory(atPath: work.path + "/root/tmp", withIntermediateDirectories: true)
        chmod(work.path + "/root/tmp", 0o1777)
        return work.path + "/root"
    }

    let devices = """
        /dev/console c 600 0 0 5 1
        /dev/null    c 666 0 0 1 3
        /dev/ram0    b 660 0 6 1 0
        """

    func build(_ work: TemporaryDirectory, _ compression: RamDiskCompression, name: String = "ramdisk", timestamp: Int = 1_000_000) throws -> String {
        let tree = try RootTree(folders: [sampleRoot(work)], devices: try DeviceTable.parse(devices, name: "devices"))
        let path = work.path + "/\(name).cpio\(compression.suffix)"
        try RamDiskWriter(compression: compression, timestamp: timestamp).write(tree, to: path)
        return path
    }

    @Test(arguments: RamDiskCompression.allCases)
    func archiveListsBackAsTheTreeAndTable(_ compression: RamDiskCompression) throws {
        let work = TemporaryDirectory("drops-ramdisk")
        let items = try ArchiveListing.read(try build(work, compression))
        let byPath = Dictionary(uniqueKeysWithValues: items.map { ($0.path, $0) })
        #expect(items.map(\.path) == ["bin", "bin/busybox", "bin/sh", "dev", "dev/console", "dev/null", "dev/ram0",
                                      "etc", "etc/hostname", "init", "sbin", "tmp"])
        let busybox = try #require(byPath["bin/busybox"])
        #expect(busybox.data == [UInt8](try Data(contentsOf: URL(fileURLWithPath: work.path + "/root/bin/busybox"))))
        #expect(busybox.mode == 0o755 && busybox.type == ArchiveFileType.regular)
        #expect(byPath["init"]?.data == Array("#!/bin/sh\necho DROPS-ROOTFS init reached\n".utf8))
        #expect(byPath["bin/sh"]?.symlink == "busybox")
        #expect(byPath["sbin"]?.symlink == "/bin")
        #expect(byPath["tmp"]?.mode == 0o1777 && byPath["tmp"]?.type == ArchiveFileType.directory)
        let console = try #require(byPath["dev/console"])
        #expect(console.type == ArchiveFileType.character && console.rdevMajor == 5 && console.rdevMinor == 1 && console.mode == 0o600)
        let ram = try #require(byPath["dev/ram0"])
        #expect(ram.type == ArchiveFileType.block && ram.gid == 6)
        // The folder only the table names exists, owned by root.
        #expect(byPath["dev"]?.type == ArchiveFileType.directory)
        #expect(items.allSatisfy { $0.mtime == 1_000_000 })
        #expect(items.filter { $0.path != "dev/ram0" }.allSatisfy { $0.uid == 0 && $0.gid == 0 })
    }

    @Test(arguments: RamDiskCompression.allCases)
    func rebuildsAreByteIdentical(_ compression: RamDiskCompression) throws {
        let first = TemporaryDirectory("drops-ramdisk"), second = TemporaryDirectory("drops-ramdisk")
        let a = try Data(contentsOf: URL(fileURLWithPath: try build(first, compression)))
        // Other folder, other file times: the same bytes.
        let b = try Data(contentsOf: URL(fileURLWithPath: try build(second, compression)))
        #expect(a == b)
        #expect(a != (try Data(contentsOf: URL(fileURLWithPath: try build(second, compression, name: "other", timestamp: 5)))))
    }

    @Test func formatsAreWhatTheirNamesSay() throws {
        let work = TemporaryDirectory("drops-ramdisk")
        let magic: [RamDiskCompression: [UInt8]] = [
            .none: Array("070701".utf8), .gzip: [0x1F, 0x8B], .xz: [0xFD, 0x37, 0x7A, 0x58, 0x5A],
            .zstd: [0x28, 0xB5, 0x2F, 0xFD], .lz4: [0x02, 0x21, 0x4C, 0x18],  // legacy lz4, as the kernel reads it
        ]
        for (compression, prefix) in magic {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try build(work, compression))))
            #expect(Array(bytes.prefix(prefix.count)) == prefix, "\(compression)")
            if compression == .xz {
                // The stream flags name CRC32 (0x01), the one check the kernel's decoder knows.
                #expect(bytes[7] == 0x01, "xz check type \(bytes[7])")
            }
            if compression == .gzip {
                // No time stamp in the gzip header (bytes 4 to 7).
                #expect(bytes[4..<8].allSatisfy { $0 == 0 })
            }
            if compression == .none {
                // newc ends with its TRAILER!!! entry, padded to 4 bytes, nothing after.
                let text = String(decoding: bytes.suffix(140), as: UTF8.self)
                #expect(text.contains("TRAILER!!!"))
                #expect(bytes.count % 4 == 0)
            }
        }
    }

    @Test func laterFoldersReplaceEarlierOnes() throws {
        let work = TemporaryDirectory("drops-ramdisk")
        let root = sampleRoot(work)
        work.write("overlay/etc/hostname", text: "lab-pc\n")
        work.write("overlay/usr/bin/myserver", text: "mine\n")
        let tree = try RootTree(folders: [root, work.path + "/overlay"])
        let hostname = try #require(tree.entries.first { $0.path == "/etc/hostname" })
        #expect(hostname.content == .file(source: work.path + "/overlay/etc/hostname", size: 7))
        #expect(tree.entries.contains { $0.path == "/usr/bin/myserver" })
    }

    @Test func symlinkLeavingTheTreeIsRefused() throws {
        let work = TemporaryDirectory("drops-ramdisk")
        let root = sampleRoot(work)
        try FileManager.default.createSymbolicLink(atPath: root + "/etc/passwd", withDestinationPath: "../../../etc/passwd")
        #expect(throws: RamDiskError.symlinkOutside(path: root + "/etc/passwd", target: "../../../etc/passwd")) {
            try RootTree(folders: [root])
        }
        // Up and down again, staying inside, is fine.
        try FileManager.default.removeItem(atPath: root + "/etc/passwd")
        try FileManager.default.createSymbolicLink(atPath: root + "/etc/passwd", withDestinationPath: "../etc/hostname")
        #expect(throws: Never.self) { try RootTree(folders: [root]) }
    }

    @Test func specialFilesAndMissingFoldersAreRefused() throws {
        let work = TemporaryDirectory("drops-ramdisk")
        let root = sampleRoot(work)
        #expect(mkfifo(root + "/fifo", 0o600) == 0)
        #expect(throws: RamDiskError.unsupported(path: root + "/fifo", kind: "a FIFO")) { try RootTree(folders: [root]) }
        #expect(throws: RamDiskError.missingFolder(work.path + "/nothing")) { try RootTree(folders: [work.path + "/nothing"]) }
    }

    @Test func failedWriteLeavesNothing() throws {
        let work = TemporaryDirectory("drops-ramdisk")
        let tree = try RootTree(folders: [sampleRoot(work)])
        #expect(throws: RamDiskError.self) { try RamDiskWriter().write(tree, to: work.path + "/no/such/folder/ramdisk.img") }
        // A file that vanished after it was listed: the archive is not left half-written.
        try FileManager.default.removeItem(atPath: work.path + "/root/etc/hostname")
        #expect(throws: RamDiskError.self) { try RamDiskWriter().write(tree, to: work.path + "/ramdisk.img") }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: work.path).filter { $0.contains("ramdisk") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    @Test func sourceDateEpochSetsTheTime() {
        #expect(RamDiskWriter.sourceDateEpoch(["SOURCE_DATE_EPOCH": "1700000000"]) == 1_700_000_000)
        #expect(RamDiskWriter.sourceDateEpoch(["SOURCE_DATE_EPOCH": "soon"]) == nil)
        #expect(RamDiskWriter(compression: .none, timestamp: 42).timestamp == 42)
    }
}

/// GNU cpio, the tool the kernel's initramfs format comes from, reads our archives.
@Suite struct CpioInteropTests {
    @Test func gnuCpioListsAndExtractsTheArchive() throws {
        let cpio = "/usr/bin/cpio"
        try #require(FileManager.default.isExecutableFile(atPath: cpio), "install cpio (make deps)")
        let work = TemporaryDirectory("drops-cpio")
        work.write("root/init", text: "#!/bin/sh\n")
        chmod(work.path + "/root/init", 0o755)
        work.write("root/etc/hostname", text: "drops\n")
        try FileManager.default.createSymbolicLink(atPath: work.path + "/root/sh", withDestinationPath: "init")
        let tree = try RootTree(folders: [work.path + "/root"], devices: [DeviceEntry(path: "/dev/null", kind: .character, mode: 0o666, major: 1, minor: 3)])
        try RamDiskWriter(compression: .none, timestamp: 0).write(tree, to: work.path + "/initrd.cpio")
        try FileManager.default.createDirectory(atPath: work.path + "/x", withIntermediateDirectories: true)
        // List: names and the device's numbers as GNU cpio sees them.
        let listing = try ChildProcess(["/bin/sh", "-c", "\(cpio) -itv < \(work.path)/initrd.cpio"], output: work.path + "/list", errors: work.path + "/err")
        #expect(listing.wait() == 0, "\((try? String(contentsOfFile: work.path + "/err", encoding: .utf8)) ?? "")")
        let lines = try String(contentsOfFile: work.path + "/list", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 6)  // dev, dev/null, etc, etc/hostname, init, sh
        #expect(lines.contains { $0.hasPrefix("crw-rw-rw-") && $0.contains("1,   3") && $0.hasSuffix("dev/null") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("lrwxrwxrwx") && $0.hasSuffix("sh -> init") }, "\(lines)")
        // Extract the files (not the device: that needs root on some systems) and compare.
        let extract = try ChildProcess(["/bin/sh", "-c", "cd \(work.path)/x && \(cpio) -idm --quiet init etc etc/hostname < \(work.path)/initrd.cpio"],
                                       errors: work.path + "/err")
        #expect(extract.wait() == 0, "\((try? String(contentsOfFile: work.path + "/err", encoding: .utf8)) ?? "")")
        #expect(try String(contentsOfFile: work.path + "/x/etc/hostname", encoding: .utf8) == "drops\n")
        #expect(FileManager.default.isExecutableFile(atPath: work.path + "/x/init"))
    }
}

@Suite struct RootfsFolderTests {
    /// The shipped rootfs/ with its device table and BusyBox builds, and holds what /init needs.
    @Test func shippedRootfsBuildsWithBusyboxAndDevices() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Busybox.defaultPath), "install busybox-static (make deps)")
        let root = Repository.root + "/rootfs"
        let table = try DeviceTable.parse(try String(contentsOfFile: root + "/devices.txt", encoding: .utf8), name: "rootfs/devices.txt")
        var tree = try RootTree(folders: [root], devices: table, excluding: [root + "/devices.txt"])
        let busybox = try Busybox.installed()
        #expect(busybox.applets.contains("bin/sh") && busybox.applets.contains("sbin/init") && busybox.applets.contains("bin/mount"))
        try busybox.install(into: &tree)
        let paths = Set(tree.entries.map(\.path))
        for needed in ["/init", "/etc/inittab", "/etc/fstab", "/etc/passwd", "/etc/group", "/etc/hostname", "/bin/busybox", "/bin/sh",
                       "/sbin/init", "/dev/console", "/dev/ttyS0", "/dev/ttyS3", "/proc", "/sys", "/tmp", "/etc/drops.d"] {
            #expect(paths.contains(needed), "\(needed) missing")
        }
        #expect(!paths.contains("/devices.txt"))
        #expect(tree.entries.first { $0.path == "/init" }?.mode == 0o755)
        #expect(tree.entries.first { $0.path == "/bin/sh" }?.content == .symlink(target: "/bin/busybox"))
        // A file of the user's own at an applet's path wins over the link.
        let work = TemporaryDirectory("drops-rootfs")
        work.write("overlay/bin/sh", text: "#!/my/shell\n")
        var mine = try RootTree(folders: [root, work.path + "/overlay"])
        try busybox.install(into: &mine)
        #expect(mine.entries.first { $0.path == "/bin/sh" }?.content == .file(source: work.path + "/overlay/bin/sh", size: 12))
    }
}

/// ext2 images made with e2fsprogs: clean for e2fsck, listed back with debugfs, identical
/// when rebuilt, refused when too small.
@Suite struct Ext2Tests {
    func debugfs(_ image: String, _ request: String, _ work: TemporaryDirectory) throws -> String {
        let child = try ChildProcess(["/sbin/debugfs", "-R", request, image], output: work.path + "/dbg.out", errors: "/dev/null")
        _ = child.wait()
        return (try? String(contentsOfFile: work.path + "/dbg.out", encoding: .utf8)) ?? ""
    }

    func sample(_ work: TemporaryDirectory) throws -> RootTree {
        work.write("root/init", text: "#!/bin/sh\necho hi\n")
        chmod(work.path + "/root/init", 0o755)
        work.write("root/etc/hostname", text: "drops\n")
        work.write("root/bin/busybox", [UInt8](repeating: 0x5A, count: 70_000))
        try FileManager.default.createSymbolicLink(atPath: work.path + "/root/bin/sh", withDestinationPath: "busybox")
        let devices = try DeviceTable.parse("/dev/console c 600 0 0 5 1\n/dev/ram0 b 660 0 6 1 0\n/dev/initctl p 600 0 0 0 0\n/tmp d 1777 0 0 0 0\n", name: "t")
        return try RootTree(folders: [work.path + "/root"], devices: devices)
    }

    @Test func imageIsCleanAndHoldsTheTree() throws {
        try #require(Ext2Writer.unavailableReason() == nil, "install e2fsprogs and faketime (make deps)")
        let work = TemporaryDirectory("drops-ext2")
        let image = work.path + "/ramdisk.ext2"
        try Ext2Writer(sizeKiB: 1024, timestamp: 1_000_000).write(try sample(work), to: image)
        let check = try ChildProcess(["/sbin/e2fsck", "-fn", image], output: work.path + "/fsck")
        #expect(check.wait() == 0, "\((try? String(contentsOfFile: work.path + "/fsck", encoding: .utf8)) ?? "")")
        let console = try debugfs(image, "stat /dev/console", work)
        #expect(console.contains("Type: character special") && console.contains("Mode:  0600"), "\(console)")
        #expect(console.contains("Device major/minor number: 05:01"), "\(console)")
        let ram = try debugfs(image, "stat /dev/ram0", work)
        #expect(ram.contains("Type: block special") && ram.contains("Group:     6"), "\(ram)")
        #expect(try debugfs(image, "stat /dev/initctl", work).contains("Type: FIFO"))
        let initFile = try debugfs(image, "stat /init", work)
        #expect(initFile.contains("Mode:  0755") && initFile.contains("User:     0") && initFile.contains("Size: 18"), "\(initFile)")
        #expect(initFile.contains("mtime: 0x000f4240"), "\(initFile)")
        #expect(try debugfs(image, "cat /etc/hostname", work) == "drops\n")
        #expect(try debugfs(image, "stat /bin/sh", work).contains("Fast link dest: \"busybox\""))
        #expect(try debugfs(image, "stat /tmp", work).contains("Mode:  01777"))
    }

    @Test func rebuildsAreByteIdentical() throws {
        try #require(Ext2Writer.unavailableReason() == nil, "install e2fsprogs and faketime (make deps)")
        let first = TemporaryDirectory("drops-ext2"), second = TemporaryDirectory("drops-ext2")
        try Ext2Writer(sizeKiB: 1024, timestamp: 7).write(try sample(first), to: first.path + "/a.ext2")
        sleep(1)
        try Ext2Writer(sizeKiB: 1024, timestamp: 7).write(try sample(second), to: second.path + "/b.ext2")
        #expect(FileManager.default.contentsEqual(atPath: first.path + "/a.ext2", andPath: second.path + "/b.ext2"))
    }

    @Test func tooSmallIsRefusedAndLeavesNothing() throws {
        try #require(Ext2Writer.unavailableReason() == nil, "install e2fsprogs and faketime (make deps)")
        let work = TemporaryDirectory("drops-ext2")
        let tree = try sample(work)
        #expect {
            try Ext2Writer(sizeKiB: 64).write(tree, to: work.path + "/small.ext2")
        } throws: { error in
            "\(error)".contains("too small") && "\(error)".contains("raise its size")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: work.path).filter { $0.contains("small") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }
}
