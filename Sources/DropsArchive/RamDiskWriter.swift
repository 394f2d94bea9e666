import CArchive
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a RAM disk is compressed: libarchive's filters, as the kernel's initramfs unpacker
/// knows them.
public enum RamDiskCompression: String, Sendable, CaseIterable, Codable {
    case none, gzip, xz, zstd, lz4

    /// The compressor libarchive runs for formats whose built-in writer makes streams the
    /// kernel cannot unpack (single-threaded, so the output is the same every time).
    public var kernelProgram: String? {
        switch self {
        case .xz: return "xz --format=xz --check=crc32 --lzma2=preset=6,dict=1MiB --threads=1 -c"
        case .lz4: return "lz4 -l -9 -c"
        default: return nil
        }
    }

    /// The file name suffix tools expect.
    public var suffix: String {
        switch self {
        case .none: return ""
        case .gzip: return ".gz"
        case .xz: return ".xz"
        case .zstd: return ".zst"
        case .lz4: return ".lz4"
        }
    }
}

/// libarchive's file type values (its AE_IF* macros are casts Swift cannot import).
public enum ArchiveFileType {
    public static let regular: UInt32 = 0o100000
    public static let symlink: UInt32 = 0o120000
    public static let character: UInt32 = 0o020000
    public static let block: UInt32 = 0o060000
    public static let directory: UInt32 = 0o040000
    public static let fifo: UInt32 = 0o010000
}

/// Writes a root tree as a cpio archive in the newc format (the initramfs format) through
/// libarchive, reproducibly: entries sorted by path, every time stamp the same
/// (SOURCE_DATE_EPOCH, or 0), inode numbers counted from 1 in that order, no time stamp in
/// the compressed stream. The file appears complete or not at all.
public struct RamDiskWriter: Sendable {
    public var compression: RamDiskCompression
    /// Seconds since 1970 for every entry's modification time.
    public var timestamp: Int

    public init(compression: RamDiskCompression = .gzip, timestamp: Int? = nil) {
        self.compression = compression
        self.timestamp = timestamp ?? Self.sourceDateEpoch() ?? 0
    }

    /// SOURCE_DATE_EPOCH from the environment, when it is a number.
    public static func sourceDateEpoch(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        environment["SOURCE_DATE_EPOCH"].flatMap { Int($0) }
    }

    /// Writes the archive to `path`; returns its size in bytes.
    @discardableResult
    public func write(_ tree: RootTree, to path: String) throws(RamDiskError) -> Int {
        try AtomicOutput.write(path) { (partial: String) throws(RamDiskError) in try writeArchive(tree, to: partial) }
    }

    private func writeArchive(_ tree: RootTree, to path: String) throws(RamDiskError) {
        guard let archive = archive_write_new() else { throw .archive("cannot create a writer") }
        defer { archive_write_free(archive) }
        func check(_ result: Int32, _ what: String) throws(RamDiskError) {
            guard result >= ARCHIVE_WARN else {
                throw .archive("\(what): \(archive_error_string(archive).map { String(cString: $0) } ?? "error \(result)")")
            }
        }
        try check(archive_write_set_format_cpio_newc(archive), "cpio newc format")
        if let program = compression.kernelProgram {
            // libarchive's own xz writes CRC64 checks and its lz4 the frame format; the
            // kernel's initramfs unpacker takes only CRC32 xz and legacy lz4. libarchive
            // then runs the real tool as its filter.
            try check(archive_write_add_filter_program(archive, program), "\(compression.rawValue) filter (\(program); install xz-utils and lz4)")
        } else if compression != .none {
            try check(archive_write_add_filter_by_name(archive, compression.rawValue), "\(compression.rawValue) filter")
        }
        switch compression {
        case .gzip:
            // As `gzip -9`, and without the time stamp gzip would write into its header.
            try check(archive_write_set_filter_option(archive, "gzip", "compression-level", "9"), "gzip level")
            try check(archive_write_set_filter_option(archive, "gzip", "timestamp", nil), "gzip time stamp")
        default:
            break
        }
        // No padding after the last block: the file is exactly the archive.
        try check(archive_write_set_bytes_in_last_block(archive, 1), "block padding")
        try check(archive_write_open_filename(archive, path), "open \(path)")

        guard let entry = archive_entry_new() else { throw .archive("cannot create an entry") }
        defer { archive_entry_free(entry) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        for (index, item) in tree.entries.enumerated() {
            archive_entry_clear(entry)
            // Paths without the leading slash, as `find . | cpio` writes them (minus "./").
            archive_entry_set_pathname(entry, String(item.path.dropFirst()))
            archive_entry_set_perm(entry, mode_t(item.mode))
            archive_entry_set_uid(entry, la_int64_t(item.uid))
            archive_entry_set_gid(entry, la_int64_t(item.gid))
            archive_entry_set_mtime(entry, time_t(timestamp), 0)
            archive_entry_set_ino64(entry, la_int64_t(index + 1))
            archive_entry_set_nlink(entry, 1)
            var size = 0
            switch item.content {
            case .directory:
                archive_entry_set_filetype(entry, ArchiveFileType.directory)
                archive_entry_set_nlink(entry, 2)
            case let .file(_, fileSize):
                archive_entry_set_filetype(entry, ArchiveFileType.regular)
                size = fileSize
            case let .symlink(target):
                archive_entry_set_filetype(entry, ArchiveFileType.symlink)
                archive_entry_set_symlink(entry, target)
            case let .character(major, minor):
                archive_entry_set_filetype(entry, ArchiveFileType.character)
                archive_entry_set_rdevmajor(entry, dev_t(major))
                archive_entry_set_rdevminor(entry, dev_t(minor))
            case let .block(major, minor):
                archive_entry_set_filetype(entry, ArchiveFileType.block)
                archive_entry_set_rdevmajor(entry, dev_t(major))
                archive_entry_set_rdevminor(entry, dev_t(minor))
            case .fifo:
                archive_entry_set_filetype(entry, ArchiveFileType.fifo)
            }
            archive_entry_set_size(entry, la_int64_t(size))
            try check(archive_write_header(archive, entry), "header of \(item.path)")
            if case let .file(source, fileSize) = item.content {
                let descriptor = open(source, O_RDONLY | O_CLOEXEC)
                guard descriptor >= 0 else { throw .unreadable(path: source, reason: String(cString: strerror(errno))) }
                defer { close(descriptor) }
                var written = 0
                while written < fileSize {
                    let count = read(descriptor, &buffer, min(buffer.count, fileSize - written))
                    guard count > 0 else {
                        throw .unreadable(path: source, reason: count == 0 ? "it shrank while being read" : String(cString: strerror(errno)))
                    }
                    guard archive_write_data(archive, buffer, count) == count else {
                        throw .archive("data of \(item.path): \(archive_error_string(archive).map { String(cString: $0) } ?? "short write")")
                    }
                    written += count
                }
            }
        }
        try check(archive_write_close(archive), "close \(path)")
    }
}

/// Reads an archive back (any format and filter libarchive knows): for tests, `--list`
/// and checks.
public enum ArchiveListing {
    public struct Item: Sendable, Equatable {
        public var path: String
        public var type: UInt32
        public var mode: UInt32
        public var uid: Int
        public var gid: Int
        public var rdevMajor: UInt32
        public var rdevMinor: UInt32
        public var symlink: String?
        public var mtime: Int
        public var data: [UInt8]
    }

    public static func read(_ path: String) throws(RamDiskError) -> [Item] {
        guard let archive = archive_read_new() else { throw .archive("cannot create a reader") }
        defer { archive_read_free(archive) }
        archive_read_support_filter_all(archive)
        archive_read_support_format_all(archive)
        guard archive_read_open_filename(archive, path, 1 << 16) == ARCHIVE_OK else {
            throw .archive("open \(path): \(LibArchive.error(archive))")
        }
        var items: [Item] = []
        var entry: OpaquePointer?
        while true {
            let result = archive_read_next_header(archive, &entry)
            if result == ARCHIVE_EOF { break }
            guard result >= ARCHIVE_WARN, let entry else {
                throw .archive("read \(path): \(LibArchive.error(archive))")
            }
            let data = LibArchive.data(archive)
            items.append(Item(
                path: String(cString: archive_entry_pathname(entry)),
                type: UInt32(archive_entry_filetype(entry)),
                mode: UInt32(archive_entry_perm(entry)),
                uid: Int(archive_entry_uid(entry)), gid: Int(archive_entry_gid(entry)),
                rdevMajor: UInt32(archive_entry_rdevmajor(entry)), rdevMinor: UInt32(archive_entry_rdevminor(entry)),
                symlink: archive_entry_symlink(entry).map { String(cString: $0) },
                mtime: Int(archive_entry_mtime(entry)), data: data))
        }
        return items
    }
}
