import DropsTestSupport
import Foundation
import Testing

@testable import DropsTFTP

/// Real clients, byte for byte; serialized because the big files are CPU-bound on two shared cores.
@Suite(.serialized) struct InteropTests {
    let files = SharedFiles.shared
    let downloads = TemporaryDirectory("drops-tftp-downloads")

    /// Runs one client command against a fresh server and compares the result with the original.
    func fetch(_ name: String, client: String, timeout: Double = 120,
               arguments: (_ port: Int, _ output: String) -> [String]) throws {
        let output = downloads.path + "/\(name)-\(UUID().uuidString.prefix(8))"
        try withServer(root: files.root) { server in
            let result = try runProcess(client, arguments(server.port, output), timeout: timeout)
            #expect(!result.timedOut, "\(client) still ran after \(timeout) s")
            #expect(result.status == 0, "\(client) failed: \(result.output)")
            if let difference = differenceBetween(files.path(name), output) {
                Issue.record("\(name) via \(client): \(difference). Client said: \(result.output)")
            }
        }
    }

    // MARK: curl

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"), arguments: ["one", "block", "rollover", "large"])
    func curlFetches(file: String) throws {
        try fetch(file, client: Clients.curl!) { port, output in
            ["-s", "-S", "--max-time", "110", "-o", output, "tftp://127.0.0.1:\(port)/\(file)"]
        }
    }

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"))
    func curlFetchesAnEmptyFileWithoutOptions() throws {
        // curl 7.88 rejects an OACK with "tsize 0" from any server (exit 71), so this one goes without options.
        try fetch("empty", client: Clients.curl!) { port, output in
            ["-s", "-S", "--tftp-no-options", "-o", output, "tftp://127.0.0.1:\(port)/empty"]
        }
    }

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"))
    func curlWithoutOptionsGetsPlainRFC1350() throws {
        try fetch("block", client: Clients.curl!) { port, output in
            ["-s", "-S", "--tftp-no-options", "-o", output, "tftp://127.0.0.1:\(port)/block"]
        }
    }

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"), arguments: [1468, 65464])
    func curlFetchesTheLargeFileWithBigBlocks(blksize: Int) throws {
        try fetch("large", client: Clients.curl!) { port, output in
            ["-s", "-S", "--max-time", "110", "--tftp-blksize", String(blksize), "-o", output, "tftp://127.0.0.1:\(port)/large"]
        }
    }

    // MARK: tftp-hpa

    // No 64 MiB case: it would repeat curl's 512-byte lock-step run of it and add ~10 s to a debug run.
    @Test(.enabled(if: Clients.tftpHPA != nil, "tftp-hpa is not installed"), arguments: ["empty", "one", "block", "rollover"])
    func tftpHPAFetches(file: String) throws {
        // tftp-hpa exits 0 even after an ERROR packet: only the bytes tell.
        try fetch(file, client: Clients.tftpHPA!) { port, output in
            ["-m", "binary", "127.0.0.1", String(port), "-c", "get", file, output]
        }
    }

    @Test(.enabled(if: Clients.tftpHPA != nil, "tftp-hpa is not installed"))
    func tftpHPANetasciiRestoresLineEnds() throws {
        // tftp-hpa's default mode: LF goes out as CR LF and a lone CR as CR NUL, and back.
        let folder = TemporaryDirectory("drops-tftp-netascii")
        var random = SplitMix64(seed: 764)
        let alphabet = Array("ab \n\r".utf8)
        let text = (0..<20_000).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
        let original = folder.write("root/menu.lst", text)
        let output = folder.path + "/fetched"
        try withServer(root: folder.path + "/root") { server in
            let result = try runProcess(Clients.tftpHPA!, ["-m", "netascii", "127.0.0.1", String(server.port), "-c", "get", "menu.lst", output],
                                        timeout: 60)
            #expect(!result.timedOut)
            if let difference = differenceBetween(original, output) {
                Issue.record("netascii via tftp-hpa: \(difference). Client said: \(result.output)")
            }
        }
    }

    // MARK: atftp

    @Test(.enabled(if: Clients.atftp != nil, "atftp is not installed"), arguments: ["empty", "one", "block", "rollover", "large"])
    func atftpFetchesWithAWindowOf16(file: String) throws {
        try fetch(file, client: Clients.atftp!) { port, output in
            ["--get", "-r", file, "-l", output, "--option", "windowsize 16", "127.0.0.1", String(port)]
        }
    }

    // MARK: the transfer log

    @Test(.enabled(if: Clients.curl != nil, "curl is not installed"))
    func finishedTransferIsRecordedWithBytesAndOptions() throws {
        let folder = TemporaryDirectory("drops-tftp-log")
        var random = SplitMix64(seed: 5000)
        let original = folder.write("root/kernel", random.bytes(5000))
        let output = folder.path + "/fetched"
        try withServer(root: folder.path + "/root") { server in
            let result = try runProcess(Clients.curl!, ["-s", "-S", "--tftp-blksize", "1468", "-o", output,
                                                        "tftp://127.0.0.1:\(server.port)/kernel"], timeout: 60)
            #expect(result.status == 0, "curl failed: \(result.output)")
            #expect(differenceBetween(original, output) == nil)
            let records = server.records(atLeast: 1)
            try #require(records.count == 1, "expected one record, got \(records)")
            let record = records[0]
            #expect(record.outcome == "ok")
            #expect(record.direction == "read")
            #expect(record.file == "kernel")
            #expect(record.bytes == 5000)
            #expect(record.client.hasPrefix("127.0.0.1:"))
            // curl asks for tsize, blksize and timeout; the first two are answered exactly.
            let options = record.options.split(separator: " ").map(String.init)
            #expect(options.contains("tsize=5000"), "options were \(record.options)")
            #expect(options.contains("blksize=1468"), "options were \(record.options)")
            #expect(options.contains { $0.hasPrefix("timeout=") }, "options were \(record.options)")
            #expect(record.text.contains("outcome=ok"))
            #expect(server.server.activeTransfers == 0)
        }
    }
}
