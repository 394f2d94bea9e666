import DropsModel
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A hidden folder beside the target tree that becomes the tree in one step. The swap uses
/// renameat2(RENAME_EXCHANGE) where the kernel offers it, so readers (a running TFTP server)
/// see either the old tree or the new one, never a mix.
struct TreeStaging {
    let target: String
    let parent: String
    /// `.NAME.partial-`: every staging folder of this target starts so, then the builder's pid.
    let prefix: String
    let temporary: String

    init(target: String) {
        self.target = target
        parent = parentDirectory(of: target)
        prefix = ".\(target.split(separator: "/").last ?? "tree").partial-"
        temporary = "\(parent)/\(prefix)\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    func create() throws(ImageError) {
        removeAbandoned()
        try makeDirectory(temporary)
    }

    /// Staging folders of builds that died (their process is gone, or it is this one) are
    /// removed; those of builds still running are left alone.
    private func removeAbandoned() {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        for entry in entries where entry.hasPrefix(prefix) {
            let pidText = entry.dropFirst(prefix.count).prefix(while: { $0.isNumber })
            guard let pid = Int32(pidText) else { continue }
            if pid == getpid() || (kill(pid, 0) != 0 && errno == ESRCH) {
                try? FileManager.default.removeItem(atPath: parent + "/" + entry)
            }
        }
    }

    func discard() {
        try? FileManager.default.removeItem(atPath: temporary)
    }

    /// Moves the finished tree into place and removes the previous one.
    func commit() throws(ImageError) {
        let manager = FileManager.default
        guard manager.fileExists(atPath: target) else {
            guard rename(temporary, target) == 0 else {
                throw .writeFailed(path: target, reason: String(cString: strerror(errno)))
            }
            return
        }
        if exchange(temporary, target) {
            // The old tree now sits at the temporary name.
            try? manager.removeItem(atPath: temporary)
            return
        }
        let old = temporary + ".old"
        try? manager.removeItem(atPath: old)
        guard rename(target, old) == 0 else {
            throw .writeFailed(path: target, reason: String(cString: strerror(errno)))
        }
        guard rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            _ = rename(old, target)
            throw .writeFailed(path: target, reason: reason)
        }
        try? manager.removeItem(atPath: old)
    }

    private func exchange(_ a: String, _ b: String) -> Bool {
        #if os(Linux)
        // glibc has renameat2 since 2.28 but Swift's Glibc module does not declare it.
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return false }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        let renameExchange: UInt32 = 2
        let result = a.withCString { pa in
            b.withCString { pb in
                renameat2(AT_FDCWD, pa, AT_FDCWD, pb, renameExchange)
            }
        }
        return result == 0
        #else
        return false
        #endif
    }
}

/// Lists the files of a tree with their sizes and hashes, sorted, manifest excluded.
public enum TreeScanner {
    /// `known` holds entries already hashed while the tree was written (the components), so
    /// their bytes are not read a second time.
    public static func files(in root: String, known: [Manifest.File] = []) throws(ImageError) -> [Manifest.File] {
        let knownByPath = Dictionary(known.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        guard let enumerator = FileManager.default.enumerator(atPath: root) else {
            throw .unreadable(path: root, reason: "not a folder")
        }
        var paths: [String] = []
        while let relative = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory)
            if !isDirectory.boolValue && relative != Manifest.fileName { paths.append(relative) }
        }
        var result: [Manifest.File] = []
        for path in paths.sorted() {
            if let entry = knownByPath[path] {
                result.append(entry)
                continue
            }
            let digest = try FileDigest.sha256(file: root + "/" + path)
            result.append(Manifest.File(path: path, size: digest.size, sha256: digest.sha256))
        }
        return result
    }
}
