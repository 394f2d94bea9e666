import Crypto
import DropsHTTP
import DropsTestSupport
import Foundation
import Logging
import NIOPosix
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// drops-serve's HTTP server against curl, and against clients that misbehave on purpose.
@Suite(.serialized) struct HTTPServerTests {
    final class Served {
        let root = TemporaryDirectory("drops-http")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server: HTTPFileServer
        let port: Int
        let payload: [UInt8]

        init(idleSeconds: Int64 = 30) throws {
            try FileManager.default.createDirectory(atPath: root.path + "/selftest/bin", withIntermediateDirectories: true)
            var generator = SystemRandomNumberGenerator()
            payload = (0..<3_000_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = root.write("selftest/bin/vmlinuz", payload)
            let digest = SHA256.hash(data: payload).map { String(format: "%02x", $0) }.joined()
            // Just enough of a manifest for the ETag: the file's path and digest.
            root.write("selftest/manifest.json", text: """
                {"format": 1, "tool": "drops 0.1.0", "variables": {},
                 "profile": {"name": "selftest", "description": "", "api": "l4env", "arch": "ia32", "sha256": ""},
                 "firstStage": {"name": "vmlinuz", "role": "kernel", "delivery": "boot", "path": "bin/vmlinuz", "size": \(payload.count),
                                "sha256": "\(digest)", "cmdline": "vmlinuz", "source": "", "inspection": ""},
                 "modules": [], "runtimeFiles": [], "bootPaths": [], "milestones": [], "failures": [],
                 "files": [{"path": "bin/vmlinuz", "size": \(payload.count), "sha256": "\(digest)"}]}
                """)
            var configuration = HTTPFileServer.Configuration(root: root.path)
            configuration.port = 0
            configuration.idleSeconds = idleSeconds
            var logger = Logger(label: "test.http")
            logger.logLevel = .critical
            server = try HTTPFileServer(configuration: configuration, group: group, logger: logger)
            port = try server.start().port ?? 0
        }

        var base: String { "http://127.0.0.1:\(port)" }

        deinit {
            server.stop()
            try? group.syncShutdownGracefully()
        }
    }

    func curl(_ arguments: [String]) throws -> ChildProcess.Result {
        try ChildProcess.run(["/usr/bin/curl", "-s", "--path-as-is"] + arguments, timeout: 60)
    }

    @Test func getHeadRangesAndKeepAliveAgainstCurl() throws {
        let served = try Served()
        let out = served.root.path + "/fetched"
        let get = try curl(["-o", out, "-w", "%{http_code} %{size_download}", served.base + "/selftest/bin/vmlinuz"])
        #expect(get.stdout == "200 \(served.payload.count)")
        #expect(FileManager.default.contents(atPath: out).map { [UInt8]($0) } == served.payload, "the file arrives intact")

        let head = try curl(["-I", served.base + "/selftest/bin/vmlinuz"])
        let digest = SHA256.hash(data: served.payload).map { String(format: "%02x", $0) }.joined()
        #expect(head.stdout.contains("HTTP/1.1 200 OK") && head.stdout.contains("Content-Length: \(served.payload.count)"), "\(head.stdout)")
        #expect(head.stdout.contains("ETag: \"\(digest)\""), "the manifest's SHA-256 as ETag: \(head.stdout)")
        #expect(head.stdout.contains("Accept-Ranges: bytes"))

        let part = try curl(["-r", "1000-1999", "-o", out, "-w", "%{http_code}", served.base + "/selftest/bin/vmlinuz"])
        #expect(part.stdout == "206")
        #expect(FileManager.default.contents(atPath: out).map { [UInt8]($0) } == Array(served.payload[1000...1999]))
        let beyond = try curl(["-r", "\(served.payload.count)-", "-D", "-", "-o", "/dev/null", served.base + "/selftest/bin/vmlinuz"])
        #expect(beyond.stdout.contains(" 416 ") && beyond.stdout.contains("Content-Range: bytes */\(served.payload.count)"), "\(beyond.stdout)")

        // Two requests, one connection.
        let twice = try curl(["-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects}\n", served.base + "/selftest/bin/vmlinuz", served.base + "/selftest/bin/vmlinuz"])
        #expect(twice.stdout == "1\n0\n", "keep-alive: \(twice.stdout)")
        let post = try curl(["-X", "POST", "-o", "/dev/null", "-w", "%{http_code}", served.base + "/selftest/bin/vmlinuz"])
        #expect(post.stdout == "405")
    }

    @Test func noSpellingOfAWayOutGetsAByteOfIt() throws {
        let served = try Served()
        try FileManager.default.createSymbolicLink(atPath: served.root.path + "/selftest/bin/escape", withDestinationPath: "/etc/passwd")
        let targets = ["/../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2E/%2e%2e/etc/passwd", "/selftest/..%2f..%2fetc%2fpasswd",
                       "//etc/passwd", "/selftest/bin/escape", "/selftest/bin/vmlinuz%00", "/..%5c..%5cetc%5cpasswd",
                       "/selftest\\..\\..\\etc\\passwd", "/selftest/", "/selftest/bin", "/dev/null", "/selftest/%zz"]
        for target in targets {
            let result = try curl(["-o", "-", "-w", "\n%{http_code}", served.base + target])
            let status = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
            #expect(["400", "403", "404"].contains(status), "\(target): \(status)")
            #expect(!result.stdout.contains("root:"), "\(target) leaked /etc/passwd")
        }
    }

    /// A socket to the server, for clients curl will not be.
    func connect(_ port: Int) -> Int32 {
        // Close-on-exec: children other tests start meanwhile must not hold these open.
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return socket
    }

    func send(_ socket: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// What the server answered before it closed (up to `seconds`).
    func answer(_ socket: Int32, seconds: Int32 = 10) -> String {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, seconds * 1000) > 0 else { break }
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { break }
            collected += buffer[0..<count]
        }
        return String(decoding: collected, as: UTF8.self)
    }

    @Test func oversizedAndSlowRequestsAreRefusedWhileOthersAreServed() throws {
        let served = try Served(idleSeconds: 2)
        // A request line of 100 KiB, and a request with 10,000 header lines.
        let long = connect(served.port)
        _ = send(long, "GET /" + String(repeating: "a", count: 100 * 1024) + " HTTP/1.1\r\nHost: x\r\n\r\n")
        let longAnswer = answer(long)
        close(long)
        #expect(!longAnswer.contains("200 OK"), "\(longAnswer.prefix(200))")
        let many = connect(served.port)
        _ = send(many, "GET /selftest/bin/vmlinuz HTTP/1.1\r\n" + (0..<10_000).map { "X-Header-\($0): \($0)\r\n" }.joined() + "\r\n")
        let manyAnswer = answer(many)
        close(many)
        #expect(!manyAnswer.contains("200 OK"), "\(manyAnswer.prefix(200))")

        // One byte a second never makes a request: the connection is closed after the limit.
        let slow = connect(served.port)
        var sent = 0
        var closed = false
        for byte in "GET /selftest/bin/vmlinuz HTTP/1.1\r\nHost: trickle\r\n" {
            guard send(slow, String(byte)) else { closed = true; break }
            sent += 1
            var poller = pollfd(fd: slow, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 1000) > 0 {
                var one: UInt8 = 0
                if recv(slow, &one, 1, 0) <= 0 { closed = true; break }
            }
        }
        close(slow)
        #expect(closed, "the trickling client was dropped (after \(sent) bytes)")

        // 1,000 connections that say nothing: the server still serves, and lets them go.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < 4096 { limit.rlim_cur = min(limit.rlim_max, 4096); setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) }
        let idle = (0..<1000).map { _ in connect(served.port) }
        #expect(idle.allSatisfy { $0 >= 0 }, "every idle connection was made")
        let during = try curl(["-o", "/dev/null", "-w", "%{http_code} %{size_download}", served.base + "/selftest/bin/vmlinuz"])
        #expect(during.stdout == "200 \(served.payload.count)", "served beside 1,000 idle connections")
        // Each is closed once it has sent no request for the limit: its end of file (or a
        // reset) is waited for, however busy the machine is.
        var open = Set(idle.filter { $0 >= 0 })
        let deadline = Date().addingTimeInterval(30)
        while !open.isEmpty && Date() < deadline {
            for socket in open {
                var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 0) > 0 else { continue }
                var one: UInt8 = 0
                let count = recv(socket, &one, 1, Int32(MSG_DONTWAIT))
                if count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { open.remove(socket) }
            }
            usleep(200_000)
        }
        idle.filter { $0 >= 0 }.forEach { close($0) }
        #expect(open.isEmpty, "idle connections closed after the limit: \(1000 - open.count) of 1000")
        let after = try curl(["-o", "/dev/null", "-w", "%{http_code}", served.base + "/selftest/bin/vmlinuz"])
        #expect(after.stdout == "200")
    }
}
