import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A request the server refuses, with the ERROR it answers and the reason it logs.
public struct Refusal: Error, Sendable, Equatable {
    public var code: TFTPErrorCode
    public var reason: String

    public init(_ code: TFTPErrorCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// Maps requested file names to real files inside the served root, and nothing else.
///
/// Names are relative to the root; a leading `/` is allowed when the first component exists
/// in the root (DROPS menus ask for `/PROFILE/bin/…`), and `--strip-prefix` folders (such as
/// `/tftpboot`) are removed first, like tftpd-hpa's remapping. `..` segments, NUL bytes,
/// over-long names, symlinks that lead out of the root and anything but regular files are
/// refused with ERROR 2.
public struct PathResolver: Sendable {
    public static let maxNameLength = 1024

    /// The root as given and after symlinks are resolved.
    public let root: String
    public let realRoot: String
    public let stripPrefixes: [String]

    public init(root: String, stripPrefixes: [String] = []) throws(Refusal) {
        self.root = root
        guard let real = Self.realPath(root) else {
            throw Refusal(.fileNotFound, "served root \(root) does not exist")
        }
        realRoot = real
        self.stripPrefixes = stripPrefixes.map { prefix in
            var p = prefix
            while p.hasSuffix("/") && p.count > 1 { p.removeLast() }
            return p.hasPrefix("/") ? p : "/" + p
        }
    }

    /// The real path of the file to serve for a read request.
    public func resolveForReading(_ name: String) throws(Refusal) -> String {
        let relative = try relativePath(name)
        let candidate = realRoot + "/" + relative
        guard let real = Self.realPath(candidate) else {
            throw Refusal(.fileNotFound, "no file \(relative) in the served root")
        }
        guard real.hasPrefix(realRoot + "/") else {
            throw Refusal(.accessViolation, "\(name) leads outside the served root (through a symlink)")
        }
        var info = stat()
        guard stat(real, &info) == 0 else { throw Refusal(.fileNotFound, "cannot stat \(relative)") }
        guard info.st_mode & S_IFMT == S_IFREG else {
            let kind = info.st_mode & S_IFMT == S_IFDIR ? "a folder" : "not a regular file"
            throw Refusal(.accessViolation, "\(relative) is \(kind)")
        }
        return real
    }

    /// Checks the name and returns it relative to the root, `..`-free.
    public func relativePath(_ name: String) throws(Refusal) -> String {
        guard !name.isEmpty else { throw Refusal(.accessViolation, "empty file name") }
        guard name.utf8.count <= Self.maxNameLength else {
            throw Refusal(.accessViolation, "file name longer than \(Self.maxNameLength) bytes")
        }
        guard !name.utf8.contains(0) else { throw Refusal(.accessViolation, "file name contains a NUL byte") }
        var path = name
        for prefix in stripPrefixes where path == prefix || path.hasPrefix(prefix + "/") {
            path = String(path.dropFirst(prefix.count))
            break
        }
        let wasAbsolute = path.hasPrefix("/")
        if wasAbsolute && (path == realRoot || path.hasPrefix(realRoot + "/") || path.hasPrefix(root + "/")) {
            path = String(path.dropFirst(path.hasPrefix(realRoot) ? realRoot.count : root.count))
        }
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == ".." { throw Refusal(.accessViolation, "\(name) contains '..'") }
            if part == "." { continue }
            parts.append(part)
        }
        guard let first = parts.first else { throw Refusal(.accessViolation, "\(name) names the root folder, not a file") }
        if wasAbsolute && name.hasPrefix("/") && !FileManager.default.fileExists(atPath: realRoot + "/" + first) {
            throw Refusal(.accessViolation, "\(name) is an absolute path outside the served root (map it with --strip-prefix)")
        }
        return parts.joined(separator: "/")
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
