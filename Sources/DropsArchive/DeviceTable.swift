import Foundation

/// Errors building a RAM disk: each names the input and what to do.
public enum RamDiskError: Error, Sendable, Equatable, CustomStringConvertible {
    case deviceTable(file: String, line: Int, reason: String)
    case symlinkOutside(path: String, target: String)
    case unreadable(path: String, reason: String)
    case unsupported(path: String, kind: String)
    case missingFolder(String)
    case archive(String)
    case writeFailed(path: String, reason: String)
    /// An archive a component is taken from cannot be read, or lacks the member.
    case badArchive(path: String, reason: String)

    public var description: String {
        switch self {
        case let .deviceTable(file, line, reason):
            return "\(file):\(line): \(reason); a line is: path type mode uid gid major minor (type d, c, b or p; mode octal)"
        case let .symlinkOutside(path, target):
            return "\(path) is a symlink to \(target), which leads outside the root file system; point it inside (an absolute target is read inside the RAM disk)"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason); fix its permissions or leave it out of the root file system"
        case let .unsupported(path, kind):
            return "\(path) is \(kind), which a RAM disk cannot hold from a folder; list device nodes and FIFOs in the device table instead"
        case let .missingFolder(path):
            return "root file system folder \(path) does not exist"
        case let .archive(reason):
            return "libarchive: \(reason)"
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason); nothing was written"
        case let .badArchive(path, reason):
            return "archive \(path): \(reason)"
        }
    }
}

/// One line of a device table (the genext2fs/makedevs format): the nodes, folders and
/// FIFOs a root file system needs, with owners and device numbers, so building it needs
/// neither root nor the builder's own /dev.
///
///     # path        type mode uid gid major minor [start inc count]
///     /dev/console  c    600  0   0   5     1
///     /dev/tty      c    666  0   0   5     0
///     /dev/ttyS     c    660  0   0   4     64    0     1   4     # ttyS0 … ttyS3
public struct DeviceEntry: Sendable, Equatable {
    public enum Kind: Character, Sendable {
        case directory = "d", character = "c", block = "b", fifo = "p"
    }

    public var path: String
    public var kind: Kind
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var major: UInt32
    public var minor: UInt32

    public init(path: String, kind: Kind, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, major: UInt32 = 0, minor: UInt32 = 0) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.major = major
        self.minor = minor
    }
}

public enum DeviceTable {
    /// Parses a device table; `name` is how errors call the file.
    public static func parse(_ text: String, name: String) throws(RamDiskError) -> [DeviceEntry] {
        var entries: [DeviceEntry] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if fields.isEmpty { continue }
            func fail(_ reason: String) -> RamDiskError { .deviceTable(file: name, line: index + 1, reason: reason) }
            guard fields.count == 7 || fields.count == 10 else {
                throw fail("\(fields.count) fields, expected 7 (or 10 for a numbered series)")
            }
            let path = fields[0]
            guard path.hasPrefix("/"), path.count > 1, !path.split(separator: "/").contains("..") else {
                throw fail("path '\(path)' must be absolute, below / and free of '..'")
            }
            guard fields[1].count == 1, let kind = DeviceEntry.Kind(rawValue: fields[1].first!) else {
                throw fail("type '\(fields[1])' is not d, c, b or p")
            }
            guard let mode = UInt32(fields[2], radix: 8), mode <= 0o7777 else { throw fail("mode '\(fields[2])' is not an octal permission (like 644)") }
            var numbers: [UInt32] = []
            for (field, label) in zip(fields[3...], ["uid", "gid", "major", "minor", "start", "inc", "count"]) {
                guard let value = UInt32(field) else { throw fail("\(label) '\(field)' is not a number") }
                numbers.append(value)
            }
            let entry = DeviceEntry(path: path, kind: kind, mode: mode, uid: numbers[0], gid: numbers[1], major: numbers[2], minor: numbers[3])
            if fields.count == 10 {
                let (start, increment, count) = (numbers[4], numbers[5], numbers[6])
                guard kind == .character || kind == .block, count > 0, count <= 1024 else {
                    throw fail("a numbered series needs type c or b and a count from 1 to 1024")
                }
                for step in 0..<count {
                    var item = entry
                    item.path = path + String(start + step * increment)
                    item.minor = entry.minor + step * increment
                    entries.append(item)
                }
            } else {
                entries.append(entry)
            }
        }
        return entries
    }
}
