import DropsTestSupport
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
#if canImport(Glibc)
import Glibc
#endif

@testable import DropsTFTP

/// A TFTP server on 127.0.0.1 with a kernel-chosen port, for one test.
final class TestServer {
    let group: MultiThreadedEventLoopGroup
    let server: TFTPServer
    let port: Int

    init(root: String, configure: (inout TFTPServerConfiguration) -> Void = { _ in }) throws {
        var configuration = TFTPServerConfiguration(root: root)
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configure(&configuration)
        // Transfer lines would flood the test output; failures show up in the records instead.
        var logger = Logger(label: "drops.tftp.test")
        logger.logLevel = .critical
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        do {
            server = try TFTPServer(configuration: configuration, group: group, logger: logger)
            port = try server.start().port!
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    func stop() {
        server.shutdown(grace: .milliseconds(100))
        try? group.syncShutdownGracefully()
    }

    /// The records once there are `count`: a client may exit before the server has read its last ACK.
    func records(atLeast count: Int, timeout: Double = 5) -> [TransferRecord] {
        let deadline = Date().addingTimeInterval(timeout)
        while server.finishedTransfers.count < count && Date() < deadline {
            usleep(5_000)
        }
        return server.finishedTransfers
    }

    /// The transfer records once no transfer is running (or the timeout passed).
    func recordsWhenIdle(timeout: Double) -> [TransferRecord] {
        let deadline = Date().addingTimeInterval(timeout)
        while server.activeTransfers > 0 && Date() < deadline {
            usleep(5_000)
        }
        return server.finishedTransfers
    }
}

/// Runs `body` with a started server and always stops it, also when `body` throws.
func withServer<T>(root: String, configure: (inout TFTPServerConfiguration) -> Void = { _ in },
                   _ body: (TestServer) throws -> T) throws -> T {
    let server = try TestServer(root: root, configure: configure)
    defer { server.stop() }
    return try body(server)
}

// MARK: - external clients

enum Clients {
    static let curl = executable("curl")
    /// tftp-hpa only: other clients named tftp take other arguments.
    static let tftpHPA: String? = executable("tftp").flatMap { path in
        let probe = try? runProcess(path, ["-V"], timeout: 10)
        return probe?.output.contains("tftp-hpa") == true ? path : nil
    }
    static let atftp = executable("atftp")

    static func executable(_ name: String) -> String? {
        let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for folder in folders + ["/usr/bin", "/usr/local/bin"] {
            let path = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

struct ProcessResult {
    var status: Int32
    /// True when the watchdog had to kill the process: it hung past its budget.
    var timedOut: Bool
    var output: String
}

/// Runs a program under a watchdog: killed after `timeout` seconds, reported as hung.
func runProcess(_ executable: String, _ arguments: [String], timeout: Double) throws -> ProcessResult {
    let result = try ChildProcess.run([executable] + arguments, timeout: timeout)
    return ProcessResult(status: result.status, timedOut: result.timedOut, output: result.stdout + result.stderr)
}

// MARK: - files

/// Nil when both files hold the same bytes, else where they first differ.
func differenceBetween(_ expected: String, _ actual: String) -> String? {
    guard let a = FileHandle(forReadingAtPath: expected) else { return "cannot open \(expected)" }
    guard let b = FileHandle(forReadingAtPath: actual) else { return "\(actual) was not written" }
    defer {
        try? a.close()
        try? b.close()
    }
    var offset = 0
    while true {
        let left = a.readData(ofLength: 1 << 20)
        let right = b.readData(ofLength: 1 << 20)
        if left != right {
            let common = zip(left, right).prefix { $0 == $1 }.count
            let sizes = "expected \(fileSize(expected)) bytes, got \(fileSize(actual))"
            return "first difference at byte \(offset + common) (\(sizes))"
        }
        if left.isEmpty { return nil }
        offset += left.count
    }
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
}

/// Deterministic pseudo-random files, written once per test run and shared by the tests that read them.
final class SharedFiles: Sendable {
    static let shared = SharedFiles()

    static let sizes: [String: Int] = [
        "empty": 0,
        "one": 1,
        "block": 512,
        // 65536 full blocks of 512 bytes: the block number wraps from 65535 to 0 once.
        "rollover": 65536 * 512,
        "large": 64 << 20,
    ]

    let directory = TemporaryDirectory("drops-tftp-files")
    var root: String { directory.path + "/root" }

    private init() {
        var random = SplitMix64(seed: 0xD0C5_7F7B)
        let large = random.bytes(64 << 20)
        for (name, size) in Self.sizes {
            directory.write("root/\(name)", Array(large[0..<size]))
        }
        // A static is never released, so its folder is removed when the test process exits.
        atexit {
            try? FileManager.default.removeItem(atPath: SharedFiles.shared.directory.path)
        }
    }

    func path(_ name: String) -> String { root + "/" + name }
}

// MARK: - a raw client

struct TFTPFailure: Error, CustomStringConvertible {
    var description: String
}

/// A datagram as the client received it: the decoded packet (if it decodes) and its source port.
struct Reply {
    var bytes: [UInt8]
    var port: UInt16
    var packet: TFTPPacket? { try? TFTPPacket.decode(bytes) }
}

/// A minimal TFTP client on a plain UDP socket, to send exactly the bytes a test wants.
final class RawClient {
    let socket: UDPSocket

    init() throws {
        socket = try UDPSocket()
    }

    func send(_ packet: TFTPPacket, to port: Int) {
        socket.send(packet.encoded(), to: UInt16(port))
    }

    func send(bytes: [UInt8], to port: Int) {
        socket.send(bytes, to: UInt16(port))
    }

    func receive(timeout: Double = 3) -> Reply? {
        socket.receive(timeout: timeout).map { Reply(bytes: $0.bytes, port: UInt16(bigEndian: $0.from.sin_port)) }
    }

    /// The first answer to a request, which must come within `timeout` seconds.
    func ask(_ bytes: [UInt8], port: Int, timeout: Double = 3) throws -> Reply {
        send(bytes: bytes, to: port)
        guard let reply = receive(timeout: timeout) else { throw TFTPFailure(description: "no answer within \(timeout) s") }
        return reply
    }

    /// Downloads a file lock-step, as RFC 1350 with an optional OACK, resending on silence.
    func fetch(_ name: String, port: Int, options: [TFTPOption] = []) throws -> [UInt8] {
        var last = TFTPPacket.readRequest(filename: name, mode: .octet, options: options).encoded()
        var destination = port
        send(bytes: last, to: destination)
        var transferPort: UInt16?
        var blockSize = 512
        var expected: UInt16 = 1
        var received: [UInt8] = []
        var silences = 0
        while true {
            guard let reply = receive(timeout: 1) else {
                silences += 1
                guard silences <= 5 else { throw TFTPFailure(description: "\(name): the server went silent") }
                send(bytes: last, to: destination)
                continue
            }
            if let transferPort, reply.port != transferPort { continue }
            guard let packet = reply.packet else { throw TFTPFailure(description: "\(name): undecodable reply \(reply.bytes.prefix(16))") }
            transferPort = reply.port
            destination = Int(reply.port)
            silences = 0
            switch packet {
            case let .optionAck(agreed):
                if let value = agreed.first(where: { $0.name.lowercased() == "blksize" }).flatMap({ Int($0.value) }) {
                    blockSize = value
                }
                last = TFTPPacket.ack(block: 0).encoded()
                send(bytes: last, to: destination)
            case let .data(block, payload):
                if block == expected {
                    received += payload
                    last = TFTPPacket.ack(block: block).encoded()
                    send(bytes: last, to: destination)
                    if payload.count < blockSize { return received }
                    expected &+= 1
                } else if block == expected &- 1 {
                    send(bytes: last, to: destination)
                }
            case let .error(code, message):
                throw TFTPFailure(description: "\(name): ERROR \(code.rawValue) \(message)")
            default:
                throw TFTPFailure(description: "\(name): unexpected \(packet.kindName)")
            }
        }
    }
}
