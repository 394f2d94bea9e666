import DropsTestSupport
import Foundation
import Testing

@testable import DropsTFTP

/// Through a lossy relay a transfer arrives byte-identical or ends in a client error, never hangs.
/// Serialized, so that the relay's faults are the only ones: two busy cores would add their own.
@Suite(.serialized) struct FaultTests {
    static let size = 2 << 20
    let folder = TemporaryDirectory("drops-tftp-faults")
    let original: String

    init() {
        var random = SplitMix64(seed: 2024)
        original = folder.write("root/image", random.bytes(Self.size))
    }

    struct Outcome {
        var result: ProcessResult
        var statistics: LossyRelay.Statistics
        var identical: Bool
        var records: [TransferRecord]
    }

    /// Runs one client through a relay in front of a server whose own timeout is 200 ms.
    func transfer(drop: Double = 0, duplicate: Double = 0, reorder: Double = 0, seed: UInt64, watchdog: Double,
                  client: String, arguments: (_ relayPort: Int, _ output: String) -> [String]) throws -> Outcome {
        let output = folder.path + "/fetched-\(UUID().uuidString.prefix(8))"
        return try withServer(root: folder.path + "/root", configure: { $0.limits.timeoutNanoseconds = 200_000_000 }) { server in
            let relay = try LossyRelay(target: server.port, drop: drop, duplicate: duplicate, reorder: reorder, seed: seed)
            defer { relay.stop() }
            let result = try runProcess(client, arguments(relay.port, output), timeout: watchdog)
            let identical = differenceBetween(original, output) == nil
            // The server's side must end too: at most its retries (5) times the agreed timeout.
            let records = server.recordsWhenIdle(timeout: 20)
            let outcome = Outcome(result: result, statistics: relay.statistics, identical: identical, records: records)
            #expect(server.server.activeTransfers == 0, "a server transfer outlived its retry budget: \(describe(outcome))")
            return outcome
        }
    }

    /// `--connect-timeout 3` makes curl ask for timeout=1, which overrides the server's 200 ms:
    /// 65464-byte blocks keep 2 MiB to 33 round trips, as each loss then costs a second.
    func curl(drop: Double = 0, duplicate: Double = 0, reorder: Double = 0, seed: UInt64) throws -> Outcome {
        try transfer(drop: drop, duplicate: duplicate, reorder: reorder, seed: seed, watchdog: 90, client: Clients.curl!) { port, output in
            ["-s", "-S", "--connect-timeout", "3", "--max-time", "60", "--tftp-blksize", "65464", "-o", output,
             "tftp://127.0.0.1:\(port)/image"]
        }
    }

    func describe(_ outcome: Outcome) -> String {
        let s = outcome.statistics
        return "exit \(outcome.result.status), identical \(outcome.identical), forwarded \(s.forwarded) dropped \(s.dropped) "
            + "duplicated \(s.duplicated) reordered \(s.reordered); \(outcome.records.map(\.text)); \(outcome.result.output.suffix(600))"
    }

    /// Byte-identical, or an error exit that left no claim of success; never a hang.
    func expectCompletedOrFailedCleanly(_ outcome: Outcome) {
        #expect(!outcome.result.timedOut, "the client hung past its retry budget: \(describe(outcome))")
        if outcome.result.status == 0 {
            #expect(outcome.identical, "the client claimed success with wrong bytes: \(describe(outcome))")
        }
    }

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"))
    func curlThroughFivePercentLoss() throws {
        let outcome = try curl(drop: 0.05, seed: 1)
        expectCompletedOrFailedCleanly(outcome)
        #expect(outcome.result.status == 0 && outcome.identical, "\(describe(outcome))")
        #expect(outcome.statistics.dropped > 0, "the relay dropped nothing: \(describe(outcome))")
    }

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"))
    func curlThroughTenPercentLoss() throws {
        let outcome = try curl(drop: 0.10, seed: 2)
        expectCompletedOrFailedCleanly(outcome)
        #expect(outcome.statistics.dropped > 0, "the relay dropped nothing: \(describe(outcome))")
    }

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"))
    func curlThroughDuplicatesAndReordering() throws {
        let outcome = try curl(duplicate: 0.10, reorder: 0.10, seed: 3)
        expectCompletedOrFailedCleanly(outcome)
        #expect(outcome.result.status == 0 && outcome.identical, "\(describe(outcome))")
        #expect(outcome.statistics.duplicated > 0 && outcome.statistics.reordered > 0, "\(describe(outcome))")
    }

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"))
    func curlThroughEveryFaultAtOnce() throws {
        let outcome = try curl(drop: 0.05, duplicate: 0.05, reorder: 0.05, seed: 4)
        expectCompletedOrFailedCleanly(outcome)
    }

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"))
    func curlUploadThroughFivePercentLoss() throws {
        let uploads = folder.path + "/uploads"
        try FileManager.default.createDirectory(atPath: uploads, withIntermediateDirectories: true)
        let configure: (inout TFTPServerConfiguration) -> Void = {
            $0.limits.timeoutNanoseconds = 200_000_000
            $0.uploadDirectory = uploads
        }
        try withServer(root: folder.path + "/root", configure: configure) { server in
            // Seed 12 drops five packets, none of them the final ACK, whose loss would cost curl
            // its --max-time (see lostFinalAckIsSentAgain…).
            let relay = try LossyRelay(target: server.port, drop: 0.05, seed: 12)
            defer { relay.stop() }
            let result = try runProcess(Clients.curl!, ["-s", "-S", "--connect-timeout", "3", "--max-time", "20", "--tftp-blksize", "65464",
                                                        "-T", original, "tftp://127.0.0.1:\(relay.port)/image"], timeout: 60)
            // A transfer cut short ends on the server only after its own retries (6 s at most).
            let records = server.recordsWhenIdle(timeout: 15)
            let summary = "exit \(result.status), \(relay.statistics), \(records.map(\.text)), \(result.output.suffix(600))"
            #expect(!result.timedOut, "curl hung past its retry budget: \(summary)")
            #expect(relay.dropped > 0, "\(summary)")
            // The server keeps an upload only when it saw the last block; then it must be whole.
            if records.contains(where: { $0.outcome == "ok" }) || result.status == 0 {
                #expect(differenceBetween(original, uploads + "/image") == nil, "\(summary)")
            } else {
                #expect(!FileManager.default.fileExists(atPath: uploads + "/image"), "a failed upload must leave no file: \(summary)")
            }
        }
    }

    @Test(.enabled(if: Clients.atftp != nil, "atftp is not installed"))
    func atftpWindowOf8ThroughDuplicatesAndReordering() throws {
        let outcome = try transfer(duplicate: 0.05, reorder: 0.05, seed: 8, watchdog: 120, client: Clients.atftp!) { port, output in
            ["--get", "-r", "image", "-l", output, "--option", "windowsize 8", "--option", "blksize 8192", "127.0.0.1", String(port)]
        }
        expectCompletedOrFailedCleanly(outcome)
        // atftp 0.8.0 aborts on a duplicated OACK ("unexpected OACK"): a client limit, the one failure accepted.
        if outcome.result.status != 0 {
            #expect(outcome.result.output.contains("unexpected OACK"), "\(describe(outcome))")
        }
        #expect(outcome.statistics.duplicated + outcome.statistics.reordered > 0, "\(describe(outcome))")
    }

    @Test(.enabled(if: Clients.atftp != nil, "atftp is not installed"))
    func atftpWindowOf8ThroughFivePercentLoss() throws {
        // Not seed 5: it loses the ACK that ends a window, and atftp 0.8.0 ignores the window
        // sent again (blocks it already has) without a new ACK, so the server's 1 s budget
        // (5 × 200 ms) runs out first: a clean failure, but no test of recovery.
        let outcome = try transfer(drop: 0.05, seed: 1, watchdog: 120, client: Clients.atftp!) { port, output in
            ["--get", "-r", "image", "-l", output, "--option", "windowsize 8", "--option", "blksize 8192", "127.0.0.1", String(port)]
        }
        expectCompletedOrFailedCleanly(outcome)
        #expect(outcome.statistics.dropped > 0, "the relay dropped nothing: \(describe(outcome))")
    }
}

/// The relay itself, with plain sockets standing in for client and server.
@Suite struct LossyRelayTests {
    func port(_ address: sockaddr_in) -> UInt16 { UInt16(bigEndian: address.sin_port) }

    /// Receives datagrams until `count` arrived or none came for a second.
    func drain(_ socket: UDPSocket, count: Int) -> [[UInt8]] {
        var received: [[UInt8]] = []
        while received.count < count, let datagram = socket.receive(timeout: 1) {
            received.append(datagram.bytes)
        }
        return received
    }

    @Test func followsTheServersChangeOfPort() throws {
        let requests = try UDPSocket()
        let transfer = try UDPSocket()
        let relay = try LossyRelay(target: Int(requests.port))
        defer { relay.stop() }
        let client = try UDPSocket()
        client.send([1], to: UInt16(relay.port))
        let request = try #require(requests.receive(timeout: 3))
        #expect(request.bytes == [1])
        // Like a TFTP server, answer from another port than the one asked.
        transfer.send([2], to: request.from)
        let answer = try #require(client.receive(timeout: 3))
        #expect(answer.bytes == [2])
        #expect(Int(port(answer.from)) != relay.port, "the client must see the port change")
        client.send([3], to: port(answer.from))
        let followUp = try #require(transfer.receive(timeout: 3))
        #expect(followUp.bytes == [3])
        #expect(port(followUp.from) == port(request.from), "the server must see one client port throughout")
        #expect(requests.receive(timeout: 0.1) == nil)
        #expect(relay.statistics.sessions == 1)
    }

    @Test func dropsDuplicatesAndReordersAsTold() throws {
        let server = try UDPSocket()
        let client = try UDPSocket()
        let packets: [[UInt8]] = (1...4).map { [UInt8($0)] }

        let dropping = try LossyRelay(target: Int(server.port), drop: 1)
        defer { dropping.stop() }
        for packet in packets { client.send(packet, to: UInt16(dropping.port)) }
        #expect(server.receive(timeout: 0.3) == nil)
        // Drops leave no trace on the wire: wait for the relay thread to have seen all four.
        let deadline = Date().addingTimeInterval(5)
        while dropping.dropped < 4 && Date() < deadline { usleep(1000) }
        #expect(dropping.dropped == 4)

        let doubling = try LossyRelay(target: Int(server.port), duplicate: 1)
        defer { doubling.stop() }
        for packet in packets { client.send(packet, to: UInt16(doubling.port)) }
        #expect(drain(server, count: 8) == [[1], [1], [2], [2], [3], [3], [4], [4]])
        #expect(doubling.duplicated == 4)

        // Held packets wait for the next one however slowly the test thread sends.
        let swapping = try LossyRelay(target: Int(server.port), reorder: 1, reorderHoldMicroseconds: 10_000_000)
        defer { swapping.stop() }
        for packet in packets { client.send(packet, to: UInt16(swapping.port)) }
        #expect(drain(server, count: 4) == [[2], [1], [4], [3]])
        #expect(swapping.reordered == 2)
    }

    @Test func delayedPacketsKeepTheirOrder() throws {
        let server = try UDPSocket()
        let client = try UDPSocket()
        let relay = try LossyRelay(target: Int(server.port), delayMicroseconds: 500)
        defer { relay.stop() }
        let packets: [[UInt8]] = (0..<50).map { [UInt8($0)] }
        for packet in packets { client.send(packet, to: UInt16(relay.port)) }
        #expect(drain(server, count: 50) == packets)
    }

    @Test func sameSeedDropsTheSamePackets() throws {
        func survivors(seed: UInt64) throws -> [[UInt8]] {
            let server = try UDPSocket()
            let client = try UDPSocket()
            let relay = try LossyRelay(target: Int(server.port), drop: 0.3, seed: seed)
            defer { relay.stop() }
            for index in 0..<200 { client.send([UInt8(index)], to: UInt16(relay.port)) }
            return drain(server, count: 200)
        }
        let first = try survivors(seed: 9)
        #expect(first.count < 200 && first.count > 100)
        #expect(try survivors(seed: 9) == first)
        #expect(try survivors(seed: 10) != first)
    }

    /// Copies of one packet each have their own fate, fixed by the seed whatever else passes
    /// between them: a retransmission is not dropped just because its first copy was, and a
    /// timer that fires in another order in another run changes nothing.
    @Test func eachCopyOfAPacketHasItsOwnFixedFate() throws {
        func survivors(_ order: [UInt8]) throws -> [UInt8: Int] {
            let server = try UDPSocket()
            let client = try UDPSocket()
            let relay = try LossyRelay(target: Int(server.port), drop: 0.5, seed: 21)
            defer { relay.stop() }
            for packet in order { client.send([0, 3, 0, packet], to: UInt16(relay.port)) }
            var count: [UInt8: Int] = [:]
            for datagram in drain(server, count: order.count) { count[datagram[3], default: 0] += 1 }
            return count
        }
        let interleaved = try survivors(Array(repeating: [1, 2], count: 20).flatMap { $0 })
        let grouped = try survivors(Array(repeating: 1, count: 20) + Array(repeating: 2, count: 20))
        #expect(interleaved == grouped)
        // Half of each packet's 20 copies, roughly: not all lost, not all through.
        #expect((1...19).contains(interleaved[1] ?? 0) && (1...19).contains(interleaved[2] ?? 0), "\(interleaved)")
    }
}
