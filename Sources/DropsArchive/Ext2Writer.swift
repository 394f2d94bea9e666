import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a root tree as an ext2 file system image (the initrd-as-file-system format
/// L4Linux 2.4 mounted as `root=/dev/ram0`) with e2fsprogs: `mke2fs -d` copies folders,
/// files and symlinks from a staging copy; `debugfs` then adds the device nodes and FIFOs
/// and sets every owner, mode and time, so no root is needed. The UUID, hash seed and every
/// time are fixed, so the same inputs give the same bytes; `e2fsck -fn` must find the image
/// clean before it is renamed into place.
public struct Ext2Writer: Sendable {
    public var sizeKiB: Int
    public var timestamp: Int
    /// Fixed, so rebuilds are identical (any UUID would do; this one spells "drops").
    public static let uuid = "d7095000-0000-4000-8000-000000000001"

    public init(sizeKiB: Int, timestamp: Int? = nil) {
        self.sizeKiB = sizeKiB
        self.timestamp = timestamp ?? RamDiskWriter.sourceDateEpoch() ?? 0
    }

    /// Why no image can be made here, or nil.
    public static func unavailableReason() -> String? {
        if let missing = ["/sbin/mke2fs", "/sbin/debugfs", "/sbin/e2fsck"].first(where: { !FileManager.default.isExecutableFile(atPath: $0) }) {
            return "\(missing) is missing; install Debian's e2fsprogs package"
        }
        // e2fsprogs 1.47.0 stamps superblocks and reserved inodes with the clock and does
        // not read SOURCE_DATE_EPOCH: its clock is frozen with libfaketime instead.
        return FileManager.default.isExecutableFile(atPath: faketime) ? nil : "\(faketime) is missing; install Debian's faketime package"
    }

    static let faketime = "/usr/bin/faketime"

    /// `faketime`'s frozen clock at `timestamp`.
    var frozenClock: [String] {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return [Self.faketime, "-f", formatter.string(from: Date(timeIntervalSince1970: TimeInterval(timestamp)))]
    }

    @discardableResult
    public func write(_ tree: RootTree, to path: String) throws(RamDiskError) -> Int {
        if let reason = Self.unavailableReason() { throw .archive(reason) }
        let staging = AtomicOutput.partialPath(path) + ".d"
        defer { try? FileManager.default.removeItem(atPath: staging) }
        try stage(tree, in: staging)
        return try AtomicOutput.write(path) { (partial: String) throws(RamDiskError) in try format(tree, staging: staging, into: partial) }
    }

    /// Makes the file system in `partial` from the staged folder, fixes owners and device
    /// nodes with debugfs, and has e2fsck check it.
    private func format(_ tree: RootTree, staging: String, into partial: String) throws(RamDiskError) {
        // mke2fs formats an existing file of the size; it would take a missing one for a device.
        guard FileManager.default.createFile(atPath: partial, contents: nil), truncate(partial, off_t(sizeKiB) * 1024) == 0 else {
            throw .writeFailed(path: partial, reason: String(cString: strerror(errno)))
        }
        let environment = ["TZ": "UTC", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let made = ToolRun.run(frozenClock + ["/sbin/mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-I", "128", "-m", "0", "-L", "drops",
                             "-U", Self.uuid, "-E", "hash_seed=\(Self.uuid),root_owner=0:0", "-d", staging, partial, "\(sizeKiB)k"],
                            environment: environment)
        guard made.status == 0 else {
            let needed = Self.contentKiB(tree)
            if made.output.contains("Could not allocate") || made.output.contains("No space") || made.output.contains("too small") || needed > sizeKiB {
                throw .archive("an ext2 RAM disk of \(sizeKiB) KiB is too small for its content (about \(needed) KiB of files); raise its size")
            }
            throw .archive("mke2fs failed: \(made.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let commands = debugfsCommands(tree)
        let script = partial + ".debugfs"
        defer { unlink(script) }
        guard FileManager.default.createFile(atPath: script, contents: Data(commands.utf8)) else {
            throw .writeFailed(path: script, reason: "cannot create it")
        }
        let fixed = ToolRun.run(frozenClock + ["/sbin/debugfs", "-w", "-f", script, partial], environment: environment)
        // debugfs echoes each command ("debugfs: sif …") and its version; anything else is a complaint.
        let complaints = fixed.output.split(separator: "\n").filter { !$0.hasPrefix("debugfs") && !$0.hasPrefix("Allocated inode") && !$0.isEmpty }
        guard fixed.status == 0, complaints.isEmpty else {
            let full = complaints.first.map(String.init) ?? "exit \(fixed.status)"
            throw .archive(full.contains("Could not allocate") || full.contains("No free space")
                           ? "an ext2 RAM disk of \(sizeKiB) KiB is too small for its device nodes; raise its size"
                           : "debugfs: \(full)")
        }
        let checked = ToolRun.run(["/sbin/e2fsck", "-fn", partial], environment: environment)
        guard checked.status == 0 else { throw .archive("e2fsck finds the new image damaged: \(checked.output.suffix(500))") }
    }

    /// A copy of the folders, files and symlinks for `mke2fs -d`, created in sorted order.
    private func stage(_ tree: RootTree, in staging: String) throws(RamDiskError) {
        do { try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true) } catch {
            throw .writeFailed(path: staging, reason: (error as NSError).localizedDescription)
        }
        for entry in tree.entries {
            let target = staging + entry.path
            switch entry.content {
            case .directory:
                guard mkdir(target, 0o755) == 0 || errno == EEXIST else { throw .writeFailed(path: target, reason: String(cString: strerror(errno))) }
            case let .file(source, _):
                do { try FileManager.default.copyItem(atPath: source, toPath: target) } catch {
                    throw .unreadable(path: source, reason: (error as NSError).localizedDescription)
                }
                chmod(target, 0o644)
            case let .symlink(link):
                guard symlink(link, target) == 0 else { throw .writeFailed(path: target, reason: String(cString: strerror(errno))) }
            case .character, .block, .fifo:
                continue
            }
        }
    }

    /// Device nodes and FIFOs, then each entry's owner, mode and times.
    func debugfsCommands(_ tree: RootTree) -> String {
        var lines: [String] = []
        // debugfs links a new node only into its current folder: change there first.
        for entry in tree.entries {
            let name = (entry.path as NSString).lastPathComponent
            let folder = RootTree.parent(entry.path)
            switch entry.content {
            case let .character(major, minor): lines += ["cd \(folder)", "mknod \(name) c \(major) \(minor)"]
            case let .block(major, minor): lines += ["cd \(folder)", "mknod \(name) b \(major) \(minor)"]
            case .fifo: lines += ["cd \(folder)", "mknod \(name) p"]
            default: break
            }
        }
        lines.append("cd /")
        for entry in tree.entries {
            let type: UInt32
            switch entry.content {
            case .directory: type = ArchiveFileType.directory
            case .file: type = ArchiveFileType.regular
            case .symlink: type = ArchiveFileType.symlink
            case .character: type = ArchiveFileType.character
            case .block: type = ArchiveFileType.block
            case .fifo: type = ArchiveFileType.fifo
            }
            lines.append("sif \(entry.path) mode 0\(String(type | entry.mode, radix: 8))")
            lines.append("sif \(entry.path) uid \(entry.uid)")
            lines.append("sif \(entry.path) gid \(entry.gid)")
            for field in ["atime", "mtime", "ctime"] { lines.append("sif \(entry.path) \(field) \(timestamp)") }
        }
        for field in ["atime", "mtime", "ctime"] { lines.append("sif / \(field) \(timestamp)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Roughly what the files need, in KiB (1 KiB blocks, plus a block per entry).
    public static func contentKiB(_ tree: RootTree) -> Int {
        tree.entries.reduce(0) { total, entry in
            if case let .file(_, size) = entry.content { return total + (size + 1023) / 1024 + 1 }
            return total + 1
        }
    }
}

/// Runs a program of the builder (dpkg-query, busybox, e2fsprogs) to its end and returns its
/// exit status and what it wrote.
public enum ToolRun {
    /// `errors`: also collect standard error (else it is dropped). `environment`: nil keeps ours.
    public static func run(_ arguments: [String], environment: [String: String]? = nil, errors: Bool = true) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        if let environment { process.environment = environment }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errors ? output : FileHandle.nullDevice
        do { try process.run() } catch { return (127, "\(arguments[0]): \(error.localizedDescription)") }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
