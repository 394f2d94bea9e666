import DropsTestSupport
import Foundation
import Testing

@testable import DropsTFTP

/// RFC 1350 section 4: a stranger writing to a transfer's port gets ERROR 5 and the transfer goes on.
@Suite struct TransferIDTests {
    let folder = TemporaryDirectory("drops-tftp-tid")

    @Test func strangerGetsError5AndTheTransferCompletes() throws {
        var random = SplitMix64(seed: 1350)
        let original = random.bytes(10 * 1024 + 17)
        folder.write("root/file", original)
        // Packet by packet: no retransmission may come between a test step and the next.
        try withServer(root: folder.path + "/root", configure: { $0.limits.timeoutNanoseconds = 30_000_000_000 }) { server in
            let owner = try RawClient()
            let oack = try owner.ask(TFTPPacket.readRequest(filename: "file", mode: .octet,
                                                            options: [TFTPOption("blksize", "1024")]).encoded(), port: server.port)
            #expect(oack.packet == .optionAck(options: [TFTPOption("blksize", "1024")]))
            let transferPort = Int(oack.port)
            #expect(transferPort != server.port)

            let stranger = try RawClient()
            let answer = try stranger.ask(TFTPPacket.ack(block: 0).encoded(), port: transferPort)
            #expect(Int(answer.port) == transferPort)
            guard case let .error(code, _)? = answer.packet else {
                Issue.record("the stranger got \(answer.packet.map { $0.kindName } ?? "garbage"), not ERROR 5")
                return
            }
            #expect(code == .unknownTransferID)

            // The owner goes on as if nothing happened; the stranger tries again halfway.
            var received: [UInt8] = []
            var expected: UInt16 = 1
            owner.send(.ack(block: 0), to: transferPort)
            while true {
                guard let reply = owner.receive() else {
                    Issue.record("the transfer stalled after \(received.count) bytes")
                    return
                }
                #expect(Int(reply.port) == transferPort)
                guard case let .data(block, payload)? = reply.packet else {
                    Issue.record("the owner got \(reply.packet.map { $0.kindName } ?? "garbage") instead of DATA \(expected)")
                    return
                }
                if block != expected { continue }
                received += payload
                if block == 5 {
                    let second = try stranger.ask(TFTPPacket.ack(block: 5).encoded(), port: transferPort)
                    #expect(second.packet.map { if case .error(.unknownTransferID, _) = $0 { true } else { false } } == true)
                }
                owner.send(.ack(block: block), to: transferPort)
                if payload.count < 1024 { break }
                expected &+= 1
            }
            #expect(received == original)
            let records = server.records(atLeast: 1)
            #expect(records.count == 1, "the stranger must not start or end a transfer: \(records)")
            #expect(records.first?.outcome == "ok")
            #expect(records.first?.bytes == original.count)
        }
    }

    @Test func errorPacketsAreNeverAnswered() throws {
        // ERROR for ERROR lets one forged datagram loop between two servers (CVE-2024-2169); tftpd-hpa stays silent.
        folder.write("root/file", [UInt8](repeating: 1, count: 3000))
        let error = TFTPPacket.error(code: .unknownTransferID, message: "unknown transfer ID").encoded()
        try withServer(root: folder.path + "/root") { server in
            let stranger = try RawClient()
            stranger.send(bytes: error, to: server.port)
            let fromRequestPort = stranger.receive(timeout: 0.5)
            #expect(fromRequestPort == nil, "the request port answered an ERROR with \(fromRequestPort?.packet.map { "\($0)" } ?? "garbage")")

            let owner = try RawClient()
            let oack = try owner.ask(TFTPPacket.readRequest(filename: "file", mode: .octet,
                                                            options: [TFTPOption("blksize", "1024")]).encoded(), port: server.port)
            stranger.send(bytes: error, to: Int(oack.port))
            let fromTransferPort = stranger.receive(timeout: 0.5)
            #expect(fromTransferPort == nil, "the transfer port answered a stranger's ERROR with \(fromTransferPort?.packet.map { "\($0)" } ?? "garbage")")
            owner.send(.error(code: .notDefined, message: "done"), to: Int(oack.port))
        }
    }
}
