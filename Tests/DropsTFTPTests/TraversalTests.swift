import DropsTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@testable import DropsTFTP

/// Names outside the root, over the network: the right ERROR, never DATA, and the next client is served.
@Suite struct TraversalTests {
    let folder = TemporaryDirectory("drops-tftp-traversal")
    let good: [UInt8]
    var root: String { folder.path + "/root" }

    init() throws {
        var random = SplitMix64(seed: 77)
        good = random.bytes(3000)
        folder.write("root/good", good)
        folder.write("root/a", text: "a file named a")
        folder.write("root/l4env/bin/fiasco", text: "kernel")
        folder.write("secret", text: "outside the served root")
        try FileManager.default.createSymbolicLink(atPath: folder.path + "/root/escape", withDestinationPath: folder.path + "/secret")
    }

    static func request(_ name: String) -> [UInt8] {
        TFTPPacket.readRequest(filename: name, mode: .octet, options: []).encoded()
    }

    /// Expects exactly ERROR `code` and nothing more, then a complete good fetch by another client.
    func expectRefusal(_ request: [UInt8], code: TFTPErrorCode, server: TestServer, _ comment: Comment) throws {
        let client = try RawClient()
        let reply = try client.ask(request, port: server.port)
        guard case let .error(received, message)? = reply.packet else {
            Issue.record("\(comment): expected ERROR \(code.rawValue), got \(reply.packet.map { $0.kindName } ?? "garbage") \(reply.bytes.prefix(12))")
            return
        }
        #expect(received == code, "\(comment): ERROR \(received.rawValue) \(message)")
        // Nothing else may follow the ERROR, least of all DATA.
        if let extra = client.receive(timeout: 0.2) {
            Issue.record("\(comment): after the ERROR the server also sent \(extra.packet?.kindName ?? "garbage")")
        }
        let next = try RawClient()
        #expect(try next.fetch("good", port: server.port) == good, "\(comment): the next client did not get the good file")
    }

    @Test(arguments: zip(
        ["../secret", "l4env/../../secret", "/etc/passwd", "escape", "l4env", "l4env/bin/", String(repeating: "a", count: 1100)],
        ["parent folder", "parent through a folder", "absolute path outside", "symlink out of the root", "a folder",
         "a folder with a slash", "a 1100-byte name"]))
    func outsideNamesAreAccessViolations(name: String, what: String) throws {
        try withServer(root: root) { server in
            try expectRefusal(Self.request(name), code: .accessViolation, server: server, "\(what)")
        }
    }

    @Test func absolutePathOfTheSecretIsRefused() throws {
        try withServer(root: root) { server in
            try expectRefusal(Self.request(folder.path + "/secret"), code: .accessViolation, server: server, "absolute path of a file beside the root")
        }
    }

    @Test func missingFileIsNotFound() throws {
        try withServer(root: root) { server in
            try expectRefusal(Self.request("l4env/bin/sigma0"), code: .fileNotFound, server: server, "missing file")
        }
    }

    @Test func nulInsideTheNameEndsTheNameAndBreaksTheMode() throws {
        // The name ends at the first NUL, so "b" or "../secret" lands in the mode field: a malformed request.
        let nulB: [UInt8] = [0, 1] + Array("a".utf8) + [0] + Array("b".utf8) + [0] + Array("octet".utf8) + [0]
        let nulParent: [UInt8] = [0, 1] + Array("a".utf8) + [0] + Array("../secret".utf8) + [0] + Array("octet".utf8) + [0]
        try withServer(root: root) { server in
            try expectRefusal(nulB, code: .illegalOperation, server: server, "a NUL b")
            try expectRefusal(nulParent, code: .illegalOperation, server: server, "a NUL ../secret")
            // Only the two good fetches were transfers: a malformed request starts none.
            let records = server.records(atLeast: 2)
            #expect(records.map(\.file) == ["good", "good"])
            #expect(server.server.activeTransfers == 0)
        }
    }

    @Test func writeRequestWithoutUploadFolderIsAnAccessViolation() throws {
        let request = TFTPPacket.writeRequest(filename: "dump", mode: .octet, options: []).encoded()
        try withServer(root: root) { server in
            try expectRefusal(request, code: .accessViolation, server: server, "write without --upload-dir")
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/dump"))
    }

    @Test func strayAckToTheRequestPortIsAnUnknownTransferID() throws {
        try withServer(root: root) { server in
            try expectRefusal(TFTPPacket.ack(block: 1).encoded(), code: .unknownTransferID, server: server, "ACK to the request port")
        }
    }
}

/// Uploads into --upload-dir: new files only, never an overwrite.
@Suite struct UploadTests {
    let folder = TemporaryDirectory("drops-tftp-upload")
    var root: String { folder.path + "/root" }
    var uploads: String { folder.path + "/uploads" }

    /// Uploads allowed, and a server that waits 30 s before it sends anything again: these
    /// tests go packet by packet, and a test thread that stalls for a second on a busy
    /// machine must not meet a retransmission where it expects the next packet.
    var stepByStep: (inout TFTPServerConfiguration) -> Void {
        { [uploads] in
            $0.uploadDirectory = uploads
            $0.limits.timeoutNanoseconds = 30_000_000_000
        }
    }

    init() throws {
        folder.write("root/good", text: "served")
        try FileManager.default.createDirectory(atPath: folder.path + "/uploads", withIntermediateDirectories: true)
    }

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"))
    func curlUploadCreatesTheFileOnceAndNeverOverwrites() throws {
        var random = SplitMix64(seed: 9)
        // More than 64 KiB: well over a hundred blocks of 512.
        let first = folder.write("local/first", random.bytes(70_001))
        let second = folder.write("local/second", random.bytes(2000))
        try withServer(root: root, configure: { $0.uploadDirectory = uploads }) { server in
            let upload = try runProcess(Clients.curl!, ["-s", "-S", "--max-time", "60", "-T", first,
                                                        "tftp://127.0.0.1:\(server.port)/dump.bin"], timeout: 90)
            #expect(upload.status == 0, "curl upload failed: \(upload.output)")
            #expect(differenceBetween(first, uploads + "/dump.bin") == nil)

            let again = try runProcess(Clients.curl!, ["-s", "-S", "--max-time", "60", "-T", second,
                                                       "tftp://127.0.0.1:\(server.port)/dump.bin"], timeout: 90)
            #expect(!again.timedOut)
            #expect(again.status != 0, "a second upload of the same name must fail")

            // The exact answer, from a raw client: ERROR 6, file already exists.
            let client = try RawClient()
            let reply = try client.ask(TFTPPacket.writeRequest(filename: "dump.bin", mode: .octet, options: []).encoded(), port: server.port)
            guard case let .error(code, message)? = reply.packet else {
                Issue.record("expected ERROR 6, got \(reply.packet.map { $0.kindName } ?? "garbage")")
                return
            }
            #expect(code == .fileExists, "ERROR \(code.rawValue) \(message)")
            #expect(differenceBetween(first, uploads + "/dump.bin") == nil, "the first upload was changed")
        }
    }

    @Test func historicL4WriteRequestWithDanglingBlksizeGetsAck0() throws {
        // The historic L4 client sends "blksize" with no value and rejects an OACK.
        let request: [UInt8] = [0, 2] + Array("l4dump".utf8) + [0] + Array("octet".utf8) + [0] + Array("blksize".utf8) + [0]
        let payload = Array("core dump of an L4 task".utf8)
        // The server's usual timer here: its record comes after it dallied for two timeouts.
        try withServer(root: root, configure: { $0.uploadDirectory = uploads }) { server in
            let client = try RawClient()
            let reply = try client.ask(request, port: server.port)
            #expect(reply.packet == .ack(block: 0), "got \(reply.packet.map { $0.kindName } ?? "garbage")")
            #expect(Int(reply.port) != server.port, "the answer must come from the transfer's own port")
            client.send(.data(block: 1, payload: payload), to: Int(reply.port))
            // An ACK 0 sent again (this thread was slow to send DATA 1) is not the answer.
            var final = client.receive()
            while final?.packet == .ack(block: 0) { final = client.receive() }
            #expect(final?.packet == .ack(block: 1))
            let records = server.records(atLeast: 1)
            #expect(records.first?.outcome == "ok", "\(records)")
            #expect(records.first?.direction == "write")
            #expect(FileManager.default.contents(atPath: uploads + "/l4dump").map(Array.init) == payload)
        }
    }

    @Test func lostFinalAckIsSentAgainWhenTheLastBlockIsRepeated() throws {
        // RFC 1350 section 6 encourages dallying: without it a lost final ACK fails an upload the server kept.
        try withServer(root: root, configure: stepByStep) { server in
            let client = try RawClient()
            let first = try client.ask(TFTPPacket.writeRequest(filename: "dally.bin", mode: .octet, options: []).encoded(), port: server.port)
            #expect(first.packet == .ack(block: 0))
            let last = TFTPPacket.data(block: 1, payload: Array("last and only block".utf8))
            client.send(last, to: Int(first.port))
            #expect(client.receive()?.packet == .ack(block: 1))
            client.send(last, to: Int(first.port))
            let again = client.receive(timeout: 2)
            #expect(again?.packet == .ack(block: 1), "the repeated last block got no ACK: the transfer port was closed at once")
            #expect(FileManager.default.contents(atPath: uploads + "/dally.bin").map(Array.init) == Array("last and only block".utf8))
        }
    }

    @Test func repeatedWriteRequestIsNotRefusedAsAnExistingFile() throws {
        // A WRQ resent because ACK 0 was lost must not meet ERROR 6 for the file its first copy created.
        let request = TFTPPacket.writeRequest(filename: "again.bin", mode: .octet, options: []).encoded()
        try withServer(root: root, configure: stepByStep) { server in
            let client = try RawClient()
            let first = try client.ask(request, port: server.port)
            #expect(first.packet == .ack(block: 0))
            client.send(bytes: request, to: server.port)
            if let second = client.receive(timeout: 1), case let .error(code, message)? = second.packet {
                Issue.record("the repeated WRQ was answered with ERROR \(code.rawValue) \(message)")
            }
            // The upload still goes through on the first transfer's port.
            client.send(.data(block: 1, payload: [1, 2, 3]), to: Int(first.port))
            var acknowledged = false
            while let reply = client.receive(timeout: 2) {
                if reply.port == first.port && reply.packet == .ack(block: 1) {
                    acknowledged = true
                    break
                }
            }
            #expect(acknowledged)
            #expect(FileManager.default.contents(atPath: uploads + "/again.bin").map(Array.init) == [1, 2, 3])
        }
    }

    @Test func netasciiUploadIsRefusedAndLeavesNoFile() throws {
        let request = TFTPPacket.writeRequest(filename: "text", mode: .netascii, options: []).encoded()
        try withServer(root: root, configure: { $0.uploadDirectory = uploads }) { server in
            let reply = try RawClient().ask(request, port: server.port)
            #expect(reply.packet.map { if case .error(.illegalOperation, _) = $0 { true } else { false } } == true,
                    "got \(reply.packet.map { $0.kindName } ?? "garbage")")
        }
        #expect(!FileManager.default.fileExists(atPath: uploads + "/text"))
    }
}
