import CArchive
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads single files out of the archives components are shipped in: tar (plain, gzip, xz,
/// zstd, bzip2, lz4), cpio, zip, and Debian packages (.deb, whose data.tar.* holds the files),
/// all through libarchive, streaming, never the whole archive in memory.
public enum ArchiveMembers {
    /// Paths of the regular files, in archive order, without a leading `./` or `/`.
    public static func list(_ archive: String) throws(RamDiskError) -> [String] {
        var paths: [String] = []
        try walk(archive) { path, _ in
            paths.append(path)
            return false
        }
        return paths
    }

    /// Copies `member` (an exact path from `list`) into a new file at `destination`; returns
    /// its size. `progress` gets the compressed bytes read and the archive's size.
    public static func extract(_ member: String, from archive: String, to destination: String,
                               progress: ((Int64, Int64) -> Void)? = nil) throws(RamDiskError) -> Int {
        let wanted = normalized(member)
        let fd = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .writeFailed(path: destination, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var written = 0
        var writeError: String?
        var found = false
        try walk(archive, progress: progress) { path, reader in
            guard path == wanted else { return false }
            found = true
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = archive_read_data(reader, &chunk, chunk.count)
                if count < 0 { writeError = "reading \(path): \(LibArchive.error(reader))"; break }
                if count == 0 { break }
                let done = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, count) }
                if done != count { writeError = "writing \(destination): \(String(cString: strerror(errno)))"; break }
                written += count
            }
            return true
        }
        if let writeError { throw .badArchive(path: archive, reason: writeError) }
        guard found else { throw .badArchive(path: archive, reason: "no member '\(wanted)' in it") }
        return written
    }

    public static func normalized(_ path: String) -> String {
        var text = Substring(path)
        while text.hasPrefix("./") { text = text.dropFirst(2) }
        while text.hasPrefix("/") { text = text.dropFirst() }
        return String(text)
    }

    /// Calls `visit` for each regular file with its normalized path and the reader positioned
    /// at its data, until `visit` returns true.
    static func walk(_ archive: String, progress: ((Int64, Int64) -> Void)? = nil,
                     _ visit: (String, OpaquePointer) -> Bool) throws(RamDiskError) {
        guard let reader = archive_read_new() else { throw .archive("cannot create a reader") }
        defer { archive_read_free(reader) }
        archive_read_support_filter_all(reader)
        archive_read_support_format_all(reader)
        var info = stat()
        guard stat(archive, &info) == 0 else {
            throw .badArchive(path: archive, reason: "cannot open it: \(String(cString: strerror(errno)))")
        }
        // A .deb is an ar archive; its files are in the data.tar.* member, read from memory.
        let payload: [UInt8]?
        if try isDebianPackage(archive) {
            do { payload = try DebianPackage.member(of: archive) { $0.hasPrefix("data.tar") } } catch {
                throw .badArchive(path: archive, reason: "a Debian package without a readable data.tar member (\(error))")
            }
        } else {
            payload = nil
        }
        if let payload {
            // libarchive reads from the buffer lazily: the walk runs inside withUnsafeBytes so
            // the package's bytes stay put without a second copy.
            var failure: RamDiskError?
            payload.withUnsafeBytes { buffer in
                do throws(RamDiskError) {
                    guard archive_read_open_memory(reader, buffer.baseAddress, buffer.count) == ARCHIVE_OK else {
                        throw .badArchive(path: archive, reason: "cannot read its data.tar: \(LibArchive.error(reader))")
                    }
                    try entries(reader, archive: archive, total: Int64(info.st_size), progress: progress, visit)
                } catch {
                    failure = error
                }
            }
            if let failure { throw failure }
            return
        }
        let opened = archive_read_open_filename(reader, archive, 1 << 16)
        guard opened == ARCHIVE_OK else {
            throw .badArchive(path: archive, reason: "not an archive libarchive can read (\(LibArchive.error(reader))); give a tar, tar.gz/xz/zst, cpio, zip or .deb")
        }
        try entries(reader, archive: archive, total: Int64(info.st_size), progress: progress, visit)
    }

    static func entries(_ reader: OpaquePointer, archive: String, total: Int64, progress: ((Int64, Int64) -> Void)?,
                        _ visit: (String, OpaquePointer) -> Bool) throws(RamDiskError) {
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { return }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw .badArchive(path: archive, reason: "it is damaged or truncated (\(LibArchive.error(reader)))")
            }
            progress?(archive_filter_bytes(reader, -1), total)
            guard UInt32(archive_entry_filetype(entry)) == ArchiveFileType.regular,
                  let name = archive_entry_pathname(entry) else { continue }
            if visit(normalized(String(cString: name)), reader) { return }
        }
    }

    static func isDebianPackage(_ path: String) throws(RamDiskError) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw .badArchive(path: path, reason: "cannot open it (no such file or no permission)")
        }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 8)) == Data("!<arch>\n".utf8)
    }
}
