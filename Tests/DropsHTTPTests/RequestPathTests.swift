import DropsHTTP
import DropsTFTP
import DropsTestSupport
import Foundation
import Testing

/// The HTTP request target held to TFTP's path rules, in every spelling of a way out.
@Suite struct RequestPathTests {
    func root() throws -> (TemporaryDirectory, PathResolver) {
        let root = TemporaryDirectory("drops-http-root")
        try FileManager.default.createDirectory(atPath: root.path + "/selftest/bin", withIntermediateDirectories: true)
        root.write("selftest/bin/sigma0", text: "sigma0")
        try FileManager.default.createSymbolicLink(atPath: root.path + "/selftest/bin/escape", withDestinationPath: "/etc/passwd")
        return (root, try PathResolver(root: root.path))
    }

    @Test func aFileInTheTreeIsFoundInEverySpellingOfItsName() throws {
        let (root, resolver) = try root()
        let real = try PathResolver(root: root.path).realRoot + "/selftest/bin/sigma0"
        for target in ["/selftest/bin/sigma0", "/selftest/bin/%73igma0", "/selftest//bin/sigma0", "/selftest/./bin/sigma0", "/selftest/bin/sigma0?v=1"] {
            #expect(try HTTPRequestPath.resolve(target: target, with: resolver) == real, "\(target)")
        }
    }

    @Test func everyTraversalSpellingIsRefused() throws {
        let (_, resolver) = try root()
        let refused = ["/../etc/passwd", "/selftest/../../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2E/%2E%2E/etc/passwd",
                       "/selftest/%2e%2e/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd", "/selftest/bin/sigma0%00.txt",
                       "/selftest/bin/escape", "/selftest/bin", "/", "/etc/passwd", "/..%5c..%5cetc%5cpasswd", "/selftest\\..\\..\\etc\\passwd"]
        for target in refused {
            #expect(throws: HTTPRequestPath.Failure.self, "\(target)") { try HTTPRequestPath.resolve(target: target, with: resolver) }
        }
        #expect(throws: HTTPRequestPath.Failure.badRequest("a % in the path is not followed by two hex digits")) {
            try HTTPRequestPath.name(fromTarget: "/selftest/%zz")
        }
        #expect(throws: HTTPRequestPath.Failure.self) { try HTTPRequestPath.name(fromTarget: "http://example.org/selftest") }
    }

    @Test func bootProgramsMadeAtStartAreServedByName() throws {
        let (_, resolver) = try root()
        let extra = ["ipxe.efi": "/usr/lib/ipxe/ipxe.efi", "selftest/grub/x86_64-efi/core.efi": "/tmp/scratch/core.efi"]
        #expect(try HTTPRequestPath.resolve(target: "/ipxe.efi", with: resolver, extraFiles: extra) == "/usr/lib/ipxe/ipxe.efi")
        #expect(try HTTPRequestPath.resolve(target: "/selftest/grub/x86_64-efi/core.efi", with: resolver, extraFiles: extra) == "/tmp/scratch/core.efi")
        #expect(throws: HTTPRequestPath.Failure.self) { try HTTPRequestPath.resolve(target: "/../ipxe.efi", with: resolver, extraFiles: extra) }
    }

    @Test func rangesAreReadAsRFC9110Says() {
        #expect(ByteRange(header: nil, size: 100) == .whole)
        #expect(ByteRange(header: "bytes=0-9", size: 100) == .part(first: 0, last: 9))
        #expect(ByteRange(header: "bytes=90-", size: 100) == .part(first: 90, last: 99))
        #expect(ByteRange(header: "bytes=-10", size: 100) == .part(first: 90, last: 99))
        #expect(ByteRange(header: "bytes=50-500", size: 100) == .part(first: 50, last: 99))
        #expect(ByteRange(header: "bytes=100-", size: 100) == .unsatisfiable)
        #expect(ByteRange(header: "bytes=-0", size: 100) == .unsatisfiable)
        #expect(ByteRange(header: "bytes=0-1,5-6", size: 100) == .whole, "several ranges: the whole file")
        #expect(ByteRange(header: "bytes=9-0", size: 100) == .whole, "not a valid range: ignored")
        #expect(ByteRange(header: "items=0-9", size: 100) == .whole)
    }
}
