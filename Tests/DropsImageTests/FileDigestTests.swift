import DropsImage
import DropsTestSupport
import Foundation
import Testing

/// SHA-256 of bytes and of files read in chunks, against published vectors and coreutils.
@Suite struct FileDigestTests {
    let folder = TemporaryDirectory("drops-digest")

    @Test func knownVectors() {
        // FIPS 180-2 examples.
        #expect(FileDigest.sha256([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(FileDigest.sha256(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test(.enabled(if: sha256sumAvailable), arguments: [0, 1, 1 << 20, (1 << 20) + 3, 3 << 20])
    func fileHashMatchesCoreutilsAcrossChunkBoundaries(size: Int) throws {
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let path = folder.write("file-\(size)", bytes)
        let digest = try FileDigest.sha256(file: path)
        #expect(digest.size == size)
        #expect(digest.sha256 == (try coreutilsSHA256([path]))[path])
        #expect(digest.sha256 == FileDigest.sha256(bytes))
    }

    @Test func missingFileIsUnreadable() {
        let path = folder.path + "/nothing"
        let error = imageError { () throws(ImageError) in try FileDigest.sha256(file: path) }
        guard case let .unreadable(errorPath, _) = error else {
            Issue.record("expected unreadable, got \(String(describing: error))")
            return
        }
        #expect(errorPath == path)
    }
}
