import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Output that appears complete or not at all: written to a hidden file beside its final
/// name, renamed into place, removed when anything fails.
enum AtomicOutput {
    /// The partial file's name beside `path`.
    static func partialPath(_ path: String) -> String {
        let folder = (path as NSString).deletingLastPathComponent
        return (folder.isEmpty ? "." : folder) + "/.\((path as NSString).lastPathComponent).partial-\(getpid())"
    }

    /// Runs `body` on the partial path, then renames it to `path`; returns the final size.
    static func write(_ path: String, _ body: (String) throws(RamDiskError) -> Void) throws(RamDiskError) -> Int {
        let partial = partialPath(path)
        do { try body(partial) } catch {
            unlink(partial)
            throw error
        }
        guard rename(partial, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(partial)
            throw .writeFailed(path: path, reason: reason)
        }
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }
}
