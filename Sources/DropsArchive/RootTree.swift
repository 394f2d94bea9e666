import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One thing in a root file system, as the RAM disk will hold it.
public struct RootEntry: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        case directory
        /// A regular file, read from this path on the builder when written.
        case file(source: String, size: Int)
        case symlink(target: String)
        case character(major: UInt32, minor: UInt32)
        case block(major: UInt32, minor: UInt32)
        case fifo
    }

    /// Absolute inside the RAM disk, `/` for the root itself is never listed.
    public var path: String
    public var content: Content
    public var mode: UInt32
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
}

/// The root file system a RAM disk is made of: folders read in order (rootfs/, then
/// overlays, a later one replacing what an earlier one has at the same path), plus the
/// device table. Every file is owned by root; permissions come from the files, owners and
/// device numbers from the table. Entries are sorted by path, so the result does not depend
/// on the order the file system lists them in.
public struct RootTree: Sendable {
    private var byPath: [String: RootEntry] = [:]

    /// Every entry, sorted by path.
    public var entries: [RootEntry] { byPath.values.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) } }

    /// `excluding` names files (paths on the builder) that are inputs, not content, such as
    /// the device table kept in rootfs/.
    public init(folders: [String], devices: [DeviceEntry] = [], excluding: Set<String> = []) throws(RamDiskError) {
        var byPath: [String: RootEntry] = [:]
        for folder in folders {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw .missingFolder(folder)
            }
            try Self.collect(folder: folder, relative: "", into: &byPath)
            for path in excluding {
                let standardized = URL(fileURLWithPath: path).standardizedFileURL.path
                let base = URL(fileURLWithPath: folder).standardizedFileURL.path
                if standardized.hasPrefix(base + "/") { byPath[String(standardized.dropFirst(base.count))] = nil }
            }
        }
        for device in devices {
            let content: RootEntry.Content
            switch device.kind {
            case .directory: content = .directory
            case .character: content = .character(major: device.major, minor: device.minor)
            case .block: content = .block(major: device.major, minor: device.minor)
            case .fifo: content = .fifo
            }
            byPath[device.path] = RootEntry(path: device.path, content: content, mode: device.mode, uid: device.uid, gid: device.gid)
        }
        self.byPath = byPath
        addParents()
    }

    /// Adds (or replaces) an entry, with any parent folders it needs.
    public mutating func add(_ entry: RootEntry) {
        byPath[entry.path] = entry
        addParents()
    }

    /// Adds what `entry` needs unless something is at its path already (a user's own file wins).
    public mutating func addUnlessPresent(_ entry: RootEntry) {
        guard byPath[entry.path] == nil else { return }
        add(entry)
    }

    /// Every parent folder exists, even when only the table names something inside it.
    private mutating func addParents() {
        for path in Array(byPath.keys) {
            var parent = Self.parent(path)
            while parent != "/" && byPath[parent] == nil {
                byPath[parent] = RootEntry(path: parent, content: .directory, mode: 0o755)
                parent = Self.parent(parent)
            }
        }
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    private static func collect(folder: String, relative: String, into byPath: inout [String: RootEntry]) throws(RamDiskError) {
        let here = folder + relative
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: here.isEmpty ? "/" : here) } catch {
            throw .unreadable(path: here, reason: (error as NSError).localizedDescription)
        }
        for name in names.sorted() {
            let inside = relative + "/" + name
            let full = folder + inside
            var info = stat()
            guard lstat(full, &info) == 0 else { throw .unreadable(path: full, reason: String(cString: strerror(errno))) }
            let mode = UInt32(info.st_mode) & 0o7777
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                guard access(full, R_OK | X_OK) == 0 else { throw .unreadable(path: full, reason: String(cString: strerror(errno))) }
                byPath[inside] = RootEntry(path: inside, content: .directory, mode: mode)
                try collect(folder: folder, relative: inside, into: &byPath)
            case S_IFREG:
                guard access(full, R_OK) == 0 else { throw .unreadable(path: full, reason: String(cString: strerror(errno))) }
                byPath[inside] = RootEntry(path: inside, content: .file(source: full, size: Int(info.st_size)), mode: mode)
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let count = readlink(full, &buffer, buffer.count - 1)
                guard count >= 0 else { throw .unreadable(path: full, reason: String(cString: strerror(errno))) }
                let target = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                guard Self.staysInside(link: inside, target: target) else { throw .symlinkOutside(path: full, target: target) }
                byPath[inside] = RootEntry(path: inside, content: .symlink(target: target), mode: 0o777)
            case S_IFCHR, S_IFBLK:
                throw .unsupported(path: full, kind: "a device node")
            case S_IFIFO:
                throw .unsupported(path: full, kind: "a FIFO")
            default:
                throw .unsupported(path: full, kind: "a socket or other special file")
            }
        }
    }

    /// True when a relative target, resolved from the link's folder, stays at or below the
    /// root; absolute targets are read inside the RAM disk and always stay.
    static func staysInside(link: String, target: String) -> Bool {
        guard !target.hasPrefix("/") else { return true }
        var depth = link.split(separator: "/").count - 1
        for part in target.split(separator: "/") {
            if part == ".." {
                depth -= 1
                if depth < 0 { return false }
            } else if part != "." {
                depth += 1
            }
        }
        return true
    }
}
