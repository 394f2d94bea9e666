import DropsTFTP
import Foundation

/// What a GET or HEAD asks for, in the served tree's terms: the request target's path,
/// percent-decoded once, then held to the same rules as a TFTP file name (PathResolver:
/// no `..` in any spelling once decoded, no NUL, no way out of the root through a symlink,
/// regular files only). Pure, so the rules are tested and fuzzed without a socket.
public enum HTTPRequestPath {
    public enum Failure: Error, Equatable, Sendable {
        /// 400: not an origin-form target, or a bad percent escape.
        case badRequest(String)
        /// 403 or 404, from the path rules.
        case refused(status: Int, reason: String)
    }

    /// The file name a target names, decoded: `/selftest/bin/sigma0?x=1` → `/selftest/bin/sigma0`.
    public static func name(fromTarget target: String) throws(Failure) -> String {
        guard target.hasPrefix("/") else { throw .badRequest("the request target \(target.prefix(80)) is not a path") }
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        var bytes: [UInt8] = []
        var iterator = Array(path.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw .badRequest("a % in the path is not followed by two hex digits")
            }
            bytes.append(high << 4 | low)
        }
        guard let name = String(validating: bytes, as: UTF8.self) else { throw .badRequest("the path is not UTF-8 once decoded") }
        return name
    }

    /// The real path of the file to serve, or why not. `extraFiles` are served by their
    /// root-relative names from where they are.
    public static func resolve(target: String, with resolver: PathResolver, extraFiles: [String: String] = [:]) throws(Failure) -> String {
        let name = try name(fromTarget: target)
        if !extraFiles.isEmpty {
            // Every HTTP path starts with a slash; the boot programs' names do not.
            let bare = String(name.drop { $0 == "/" })
            if let path = extraFiles[bare] ?? (try? resolver.relativePath(name)).flatMap({ extraFiles[$0] }) { return path }
        }
        do { return try resolver.resolveForReading(name) } catch {
            throw .refused(status: error.code == .fileNotFound ? 404 : 403, reason: error.reason)
        }
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// A `Range: bytes=…` header against a file of `size` bytes (RFC 9110, 14.1.2). One range
/// only; a list of ranges gets the whole file (200), as the RFC allows.
public enum ByteRange: Equatable, Sendable {
    case whole
    case part(first: Int, last: Int)
    case unsatisfiable

    public init(header: String?, size: Int) {
        guard let header = header?.trimmingCharacters(in: .whitespaces), header.lowercased().hasPrefix("bytes=") else { self = .whole; return }
        let spec = header.dropFirst(6)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { self = .whole; return }
        let start = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let end = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        switch (Int(start), Int(end)) {
        case let (first?, last?) where first <= last && first >= 0:
            self = first < size ? .part(first: first, last: min(last, size - 1)) : .unsatisfiable
        case let (first?, nil) where end.isEmpty && first >= 0:
            self = first < size ? .part(first: first, last: size - 1) : .unsatisfiable
        case let (nil, suffix?) where start.isEmpty && suffix > 0:
            self = size > 0 ? .part(first: max(0, size - suffix), last: size - 1) : .unsatisfiable
        case (nil, .some(0)) where start.isEmpty:
            self = .unsatisfiable
        default:
            // Not a range this server understands: ignored, the whole file is sent.
            self = .whole
        }
    }
}
