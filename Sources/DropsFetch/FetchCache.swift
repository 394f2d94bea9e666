import DropsImage
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The content-addressed download cache: `sha256/HEX` holds verified files only; downloads
/// grow in `partial/` and extractions in `tmp/`, and enter `sha256/` by rename after their
/// hash is checked, so a torn or wrong file never looks cached.
public struct FetchCache: Sendable {
    public var root: String

    public init(root: String) {
        self.root = root
    }

    /// `$DROPS_CACHE_DIR`, else `$XDG_CACHE_HOME/drops`, else `~/.cache/drops`.
    public static func defaultRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let dir = environment["DROPS_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/drops" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.cache/drops"
    }

    public func path(for sha256: String) -> String { root + "/sha256/" + sha256 }

    /// Where a download of `key` (its pin, or a hash of its URL) grows until verified.
    func partialPath(key: String) -> String { root + "/partial/" + key }

    /// A fresh name for an extraction in progress.
    func temporaryPath() -> String { root + "/tmp/extract-\(getpid())-\(UUID().uuidString)" }

    func prepare() throws(FetchError) {
        for folder in ["sha256", "partial", "tmp"] {
            do {
                try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
            } catch {
                throw .cache(path: root, reason: error.localizedDescription)
            }
        }
    }

    /// The cached file with this hash, re-hashed: a damaged copy is removed and reported absent.
    func verified(_ sha256: String) -> String? {
        let path = path(for: sha256)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard (try? FileDigest.sha256(file: path).sha256) == sha256 else {
            unlink(path)
            return nil
        }
        return path
    }

    /// Moves a verified file into the cache under its hash.
    func store(_ file: String, sha256: String) throws(FetchError) -> String {
        let target = path(for: sha256)
        guard rename(file, target) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(file)
            throw .cache(path: target, reason: reason)
        }
        return target
    }

    static func size(of path: String) -> Int64 {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : 0
    }
}
