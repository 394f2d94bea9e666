import DropsTestSupport
import Foundation
import Testing

@testable import DropsTFTP

@Suite struct PathResolverTests {
    let folder = TemporaryDirectory("drops-resolver")

    func resolver(strip: [String] = []) throws -> PathResolver {
        folder.write("root/l4env/bin/fiasco", text: "kernel")
        folder.write("root/boot.ipxe", text: "#!ipxe")
        folder.write("secret", text: "outside")
        try? FileManager.default.createSymbolicLink(atPath: folder.path + "/root/escape", withDestinationPath: folder.path + "/secret")
        try? FileManager.default.createSymbolicLink(atPath: folder.path + "/root/inside", withDestinationPath: "l4env/bin/fiasco")
        return try PathResolver(root: folder.path + "/root", stripPrefixes: strip)
    }

    @Test func resolvesRelativeAndRootAbsoluteNames() throws {
        let r = try resolver()
        #expect(try r.resolveForReading("boot.ipxe").hasSuffix("/root/boot.ipxe"))
        #expect(try r.resolveForReading("/l4env/bin/fiasco").hasSuffix("/root/l4env/bin/fiasco"))
        #expect(try r.resolveForReading("l4env//bin/./fiasco").hasSuffix("/root/l4env/bin/fiasco"))
        #expect(try r.resolveForReading("inside").hasSuffix("/root/l4env/bin/fiasco"))
        #expect(try r.resolveForReading(folder.path + "/root/boot.ipxe").hasSuffix("/root/boot.ipxe"))
    }

    @Test func stripPrefixMapsDROPSPaths() throws {
        let r = try resolver(strip: ["/tftpboot/jork"])
        #expect(try r.resolveForReading("/tftpboot/jork/l4env/bin/fiasco").hasSuffix("/root/l4env/bin/fiasco"))
    }

    @Test(arguments: [
        "../secret", "l4env/../../secret", "/etc/passwd", "escape", "l4env", "l4env/bin", "/", "",
        String(repeating: "a/", count: 600), "a\u{0}b",
    ])
    func refusesWithAccessViolation(name: String) throws {
        let r = try resolver()
        #expect {
            try r.resolveForReading(name)
        } throws: { error in
            (error as? Refusal)?.code == .accessViolation
        }
    }

    @Test func missingFileIsNotFound() throws {
        let r = try resolver()
        #expect(throws: Refusal.self) { try r.resolveForReading("l4env/bin/sigma0") }
        do {
            _ = try r.resolveForReading("l4env/bin/sigma0")
        } catch {
            #expect(error.code == .fileNotFound)
        }
    }

    @Test func deviceFilesAreRefused() throws {
        let r = try resolver()
        try? FileManager.default.createSymbolicLink(atPath: folder.path + "/root/null", withDestinationPath: "/dev/null")
        #expect { try r.resolveForReading("null") } throws: { ($0 as? Refusal)?.code == .accessViolation }
    }
}
