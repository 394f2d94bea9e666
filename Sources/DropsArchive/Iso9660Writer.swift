import CArchive
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes an ISO 9660 image (Rock Ridge and Joliet names) with libarchive, optionally with
/// an El Torito no-emulation boot record such as ISOLINUX needs. The image appears complete
/// or not at all.
public struct Iso9660Writer: Sendable {
    /// One file on the CD: its path there and where its bytes come from.
    public struct File: Sendable {
        public var path: String
        public var source: Source
        public enum Source: Sendable {
            case file(String)
            case bytes([UInt8])
        }

        public init(path: String, source: Source) {
            self.path = path
            self.source = source
        }
    }

    /// The boot image (for example `isolinux/isolinux.bin`) and the catalog libarchive writes.
    public struct Boot: Sendable {
        public var image: String
        public var catalog: String
        public init(image: String, catalog: String) {
            self.image = image
            self.catalog = catalog
        }
    }

    public var volumeID: String
    public var boot: Boot?
    /// Seconds since 1970 for every file's time.
    public var timestamp: Int

    public init(volumeID: String, boot: Boot? = nil, timestamp: Int = 0) {
        self.volumeID = volumeID
        self.boot = boot
        self.timestamp = timestamp
    }

    @discardableResult
    public func write(_ files: [File], to path: String) throws(RamDiskError) -> Int {
        try AtomicOutput.write(path) { (partial: String) throws(RamDiskError) in try writeImage(files, to: partial) }
    }

    private func writeImage(_ files: [File], to path: String) throws(RamDiskError) {
        guard let archive = archive_write_new() else { throw .archive("cannot create a writer") }
        defer { archive_write_free(archive) }
        func check(_ result: Int32, _ what: String) throws(RamDiskError) {
            guard result >= ARCHIVE_WARN else { throw .archive("\(what): \(LibArchive.error(archive))") }
        }
        try check(archive_write_set_format_iso9660(archive), "ISO 9660 format")
        // Volume IDs are upper-case letters, digits and underscores, 32 at most.
        let volume = String(volumeID.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(32))
        var options = ["volume-id=\(volume)", "rockridge", "joliet"]
        if let boot {
            options += ["boot=\(boot.image)", "boot-catalog=\(boot.catalog)", "boot-load-size=4", "boot-info-table", "boot-type=no-emulation"]
        }
        for option in options {
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            try check(archive_write_set_format_option(archive, "iso9660", parts[0], parts.count > 1 ? parts[1] : "1"), "option \(option)")
        }
        try check(archive_write_open_filename(archive, path), "open \(path)")
        guard let entry = archive_entry_new() else { throw .archive("cannot create an entry") }
        defer { archive_entry_free(entry) }
        for file in files.sorted(by: { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }) {
            let bytes: [UInt8]
            switch file.source {
            case let .bytes(data): bytes = data
            case let .file(source):
                guard let data = FileManager.default.contents(atPath: source) else {
                    throw .unreadable(path: source, reason: "cannot open it")
                }
                bytes = [UInt8](data)
            }
            archive_entry_clear(entry)
            archive_entry_set_pathname(entry, file.path)
            archive_entry_set_filetype(entry, ArchiveFileType.regular)
            archive_entry_set_perm(entry, 0o644)
            archive_entry_set_mtime(entry, time_t(timestamp), 0)
            archive_entry_set_size(entry, la_int64_t(bytes.count))
            try check(archive_write_header(archive, entry), "header of \(file.path)")
            if !bytes.isEmpty {
                let written = bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
                guard written == bytes.count else { throw .archive("data of \(file.path): \(LibArchive.error(archive))") }
            }
        }
        try check(archive_write_close(archive), "close \(path)")
    }
}
