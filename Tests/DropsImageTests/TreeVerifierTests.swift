import DropsImage
import DropsModel
import DropsTestSupport
import Foundation
import Testing

/// `drops-build verify`: a built tree re-hashed against its manifest.
@Suite struct TreeVerifierTests {
    let folder = TemporaryDirectory("drops-verify")

    /// A freshly built v2 tree.
    func tree() throws -> (directory: String, manifest: Manifest) {
        let plan = try shippedPlan("v2", components: Repository.fakeComponents(in: folder))
        let result = try quietBuilder().build(plan, outputRoot: folder.path + "/out")
        return (result.directory, result.manifest)
    }

    func differences(_ directory: String) throws -> [TreeDifference] {
        try TreeVerifier.verify(directory: directory).differences
    }

    func entry(_ path: String, in manifest: Manifest) throws -> Manifest.File {
        try #require(manifest.files.first { $0.path == path })
    }

    @Test func cleanTreeHasNoDifferences() throws {
        let (directory, manifest) = try tree()
        let verified = try TreeVerifier.verify(directory: directory)
        #expect(verified.differences == [])
        #expect(verified.manifest == manifest)
    }

    @Test func changedByteOfAModuleIsReported() throws {
        let (directory, manifest) = try tree()
        let path = directory + "/bin/fiasco"
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: path)))
        bytes[bytes.count - 1] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let expected = try entry("bin/fiasco", in: manifest)
        let found = try differences(directory)
        #expect(found == [.changed(path: "bin/fiasco", expectedSize: expected.size, actualSize: expected.size,
                                   expectedSHA256: expected.sha256, actualSHA256: FileDigest.sha256(bytes))])
        #expect(found.first?.description == "changed: bin/fiasco (sha256 \(FileDigest.sha256(bytes)), manifest says \(expected.sha256))")
    }

    @Test func changedSizeIsReportedWithBothSizes() throws {
        let (directory, manifest) = try tree()
        let path = directory + "/menu.lst"
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("# appended\n".utf8))
        try handle.close()
        let expected = try entry("menu.lst", in: manifest)
        let found = try differences(directory)
        #expect(found.count == 1)
        guard case let .changed(changedPath, expectedSize, actualSize, expectedSHA256, actualSHA256) = found.first else {
            Issue.record("expected changed, got \(found)")
            return
        }
        #expect(changedPath == "menu.lst")
        #expect(expectedSize == expected.size)
        #expect(actualSize == expected.size + 11)
        #expect(expectedSHA256 == expected.sha256)
        #expect(actualSHA256 != expected.sha256)
        #expect(found[0].description.contains("\(expected.size + 11) bytes, manifest says \(expected.size)"))
    }

    @Test func deletedFileIsMissing() throws {
        let (directory, _) = try tree()
        try FileManager.default.removeItem(atPath: directory + "/bin/sigma0")
        #expect(try differences(directory) == [.missing(path: "bin/sigma0")])
    }

    @Test func extraFileIsUnexpected() throws {
        let (directory, _) = try tree()
        try Data("extra".utf8).write(to: URL(fileURLWithPath: directory + "/bin/extra"))
        #expect(try differences(directory) == [.unexpected(path: "bin/extra")])
    }

    @Test func extraHiddenFileInANewFolderIsUnexpected() throws {
        let (directory, _) = try tree()
        try FileManager.default.createDirectory(atPath: directory + "/new", withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: directory + "/new/.hidden"))
        #expect(try differences(directory) == [.unexpected(path: "new/.hidden")])
    }

    @Test func severalDifferencesAreAllReported() throws {
        let (directory, _) = try tree()
        try FileManager.default.removeItem(atPath: directory + "/bin/sigma0")
        try Data("extra".utf8).write(to: URL(fileURLWithPath: directory + "/bin/extra"))
        try Data("#!ipxe\n".utf8).write(to: URL(fileURLWithPath: directory + "/boot.ipxe"))
        let found = try differences(directory)
        #expect(found.count == 3)
        #expect(found.contains(.missing(path: "bin/sigma0")))
        #expect(found.contains(.unexpected(path: "bin/extra")))
        #expect(found.contains { if case .changed(path: "boot.ipxe", _, _, _, _) = $0 { true } else { false } })
    }

    @Test func moduleTableDisagreeingWithTheFileListIsReported() throws {
        let (directory, manifest) = try tree()
        var edited = manifest
        edited.modules[1].sha256 = String(repeating: "0", count: 64)
        try edited.encoded().write(to: URL(fileURLWithPath: directory + "/manifest.json"))
        let found = try differences(directory)
        #expect(found.count == 1)
        guard case let .moduleMismatch(module, detail) = found.first else {
            Issue.record("expected moduleMismatch, got \(found)")
            return
        }
        #expect(module == "sigma0")
        #expect(detail.contains("bin/sigma0"))
    }

    @Test func modulePathMissingFromTheFileListIsReported() throws {
        let (directory, manifest) = try tree()
        var edited = manifest
        edited.firstStage.path = "bin/elsewhere"
        try edited.encoded().write(to: URL(fileURLWithPath: directory + "/manifest.json"))
        let found = try differences(directory)
        #expect(found == [.moduleMismatch(module: "rmgr", detail: "bin/elsewhere is not in the file list")])
    }

    @Test func folderWithoutManifestIsNoTree() throws {
        let directory = folder.path + "/empty"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let error = imageError { () throws(ImageError) in try TreeVerifier.verify(directory: directory) }
        #expect(error == .noManifest(directory: directory, reason: "no such file"))
        #expect(error?.description.contains(directory) == true)
        #expect(error?.description.contains("manifest.json") == true)
    }

    @Test func missingFolderIsNoTree() throws {
        let directory = folder.path + "/does-not-exist"
        let error = imageError { () throws(ImageError) in try TreeVerifier.verify(directory: directory) }
        #expect(error == .noManifest(directory: directory, reason: "no such file"))
    }

    @Test func manifestThatIsNotJSONIsNoTree() throws {
        let (directory, _) = try tree()
        try Data("not json".utf8).write(to: URL(fileURLWithPath: directory + "/manifest.json"))
        let error = imageError { () throws(ImageError) in try TreeVerifier.verify(directory: directory) }
        guard case let .noManifest(errorDirectory, reason) = error else {
            Issue.record("expected noManifest, got \(String(describing: error))")
            return
        }
        #expect(errorDirectory == directory)
        #expect(reason.hasPrefix("not a drops manifest"))
    }
}
