import DropsModel
import Foundation

/// One way a tree differs from its manifest.
public enum TreeDifference: Sendable, Equatable, CustomStringConvertible {
    case missing(path: String)
    case unexpected(path: String)
    case changed(path: String, expectedSize: Int, actualSize: Int, expectedSHA256: String, actualSHA256: String)
    case moduleMismatch(module: String, detail: String)

    public var description: String {
        switch self {
        case let .missing(path): return "missing: \(path)"
        case let .unexpected(path): return "not in the manifest: \(path)"
        case let .changed(path, es, as_, eh, ah):
            return es == as_
                ? "changed: \(path) (sha256 \(ah), manifest says \(eh))"
                : "changed: \(path) (\(as_) bytes, manifest says \(es); sha256 \(ah), manifest says \(eh))"
        case let .moduleMismatch(module, detail): return "module \(module): \(detail)"
        }
    }
}

/// Re-hashes a tree against its manifest (`drops-build verify`).
public enum TreeVerifier {
    public static func loadManifest(directory: String) throws(ImageError) -> Manifest {
        let path = directory + "/" + Manifest.fileName
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .noManifest(directory: directory, reason: "no such file")
        }
        do { return try Manifest.decode(data) } catch {
            throw .noManifest(directory: directory, reason: "not a drops manifest: \(error)")
        }
    }

    public static func verify(directory: String) throws(ImageError) -> (manifest: Manifest, differences: [TreeDifference]) {
        let manifest = try loadManifest(directory: directory)
        let actual = try TreeScanner.files(in: directory)
        let actualByPath = Dictionary(actual.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let expectedByPath = Dictionary(manifest.files.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var differences: [TreeDifference] = []
        for expected in manifest.files {
            guard let found = actualByPath[expected.path] else {
                differences.append(.missing(path: expected.path))
                continue
            }
            if found.size != expected.size || found.sha256 != expected.sha256 {
                differences.append(.changed(path: expected.path, expectedSize: expected.size, actualSize: found.size,
                                            expectedSHA256: expected.sha256, actualSHA256: found.sha256))
            }
        }
        for found in actual where expectedByPath[found.path] == nil {
            differences.append(.unexpected(path: found.path))
        }
        // The module table must agree with the file list, or the runner would check the wrong values.
        for module in [manifest.firstStage] + manifest.modules + manifest.runtimeFiles {
            guard let file = expectedByPath[module.path] else {
                differences.append(.moduleMismatch(module: module.name, detail: "\(module.path) is not in the file list"))
                continue
            }
            if file.size != module.size || file.sha256 != module.sha256 {
                differences.append(.moduleMismatch(module: module.name, detail: "size/sha256 differ from the file list's entry for \(module.path)"))
            }
        }
        return (manifest, differences)
    }
}
