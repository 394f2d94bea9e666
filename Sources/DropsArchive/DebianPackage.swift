import CArchive
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads files out of a Debian package (.deb) with libarchive, without dpkg: a .deb is an
/// ar archive whose data.tar.* member holds the files.
public enum DebianPackage {
    /// Writes every file of `deb` whose path (without a leading `./`) satisfies `wanted` into
    /// `folder`, flat, under its last path component. Returns the paths written.
    public static func extract(_ deb: String, into folder: String, where wanted: (String) -> Bool) throws(RamDiskError) -> [String] {
        let payload = try member(of: deb) { $0.hasPrefix("data.tar") }
        guard let archive = archive_read_new() else { throw .archive("cannot create a reader") }
        defer { archive_read_free(archive) }
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        let opened = payload.withUnsafeBytes { archive_read_open_memory(archive, $0.baseAddress, $0.count) }
        guard opened == ARCHIVE_OK else { throw .archive("\(deb): data member: \(LibArchive.error(archive))") }
        var written: [String] = []
        var entry: OpaquePointer?
        while archive_read_next_header(archive, &entry) == ARCHIVE_OK, let entry {
            var path = String(cString: archive_entry_pathname(entry))
            if path.hasPrefix("./") { path.removeFirst(2) }
            guard UInt32(archive_entry_filetype(entry)) == ArchiveFileType.regular, wanted(path) else { continue }
            let data = LibArchive.data(archive)
            let target = folder + "/" + (path.split(separator: "/").last.map(String.init) ?? path)
            guard FileManager.default.createFile(atPath: target, contents: Data(data)) else {
                throw .writeFailed(path: target, reason: "cannot create it")
            }
            written.append(target)
        }
        return written
    }

    /// The bytes of the first ar member whose name satisfies `matches`.
    static func member(of deb: String, _ matches: (String) -> Bool) throws(RamDiskError) -> [UInt8] {
        guard let archive = archive_read_new() else { throw .archive("cannot create a reader") }
        defer { archive_read_free(archive) }
        archive_read_support_format_ar(archive)
        guard archive_read_open_filename(archive, deb, 1 << 16) == ARCHIVE_OK else {
            throw .unreadable(path: deb, reason: LibArchive.error(archive))
        }
        var entry: OpaquePointer?
        while archive_read_next_header(archive, &entry) == ARCHIVE_OK, let entry {
            if matches(String(cString: archive_entry_pathname(entry))) { return LibArchive.data(archive) }
        }
        throw .unreadable(path: deb, reason: "it is not a Debian package (no data.tar member)")
    }
}

/// Small helpers over libarchive's C interface.
enum LibArchive {
    /// The rest of the current entry's data.
    static func data(_ archive: OpaquePointer) -> [UInt8] {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = archive_read_data(archive, &chunk, chunk.count)
            if count <= 0 { break }
            data += chunk[..<count]
        }
        return data
    }

    /// libarchive's last error message.
    static func error(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }
}
