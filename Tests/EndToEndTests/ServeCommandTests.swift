import DropsTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// drops-serve tftp as a person runs it: a real process, real clients, signals, socket
/// activation and the message for a user who may not bind port 69.
@Suite(.serialized) struct ServeCommandTests {
    /// A UDP port that was free a moment ago.
    static func freePort() throws -> Int {
        let socket = try UDPSocket()
        defer { socket.close() }
        return Int(socket.port)
    }

    func tree() -> TemporaryDirectory {
        let folder = TemporaryDirectory("drops-serve")
        folder.write("root/l4env/bin/fiasco", Array(repeating: 0x5A, count: 300_000))
        return folder
    }

    func start(_ arguments: [String], environment: [String: String] = [:], via launcher: [String] = []) throws -> (Process, Pipe) {
        let serve = try #require(CommandLineTests.executable("drops-serve"), "build the tools first (make build)")
        let process = Process()
        let command = launcher + [serve] + arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return (process, errors)
    }

    /// Fetches with curl, retrying while the server starts. curl is started with posix_spawn
    /// and reaped with waitpid: Foundation's Process did not always notice curl's exit while
    /// a child started through systemd-socket-activate was running.
    func fetch(port: Int, name: String, to output: String) -> Bool {
        for _ in 0..<50 {
            let arguments = ["/usr/bin/curl", "-s", "--max-time", "10", "-o", output, "tftp://127.0.0.1:\(port)/\(name)"]
            var pid: pid_t = 0
            var argv = arguments.map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            guard posix_spawn(&pid, arguments[0], nil, nil, &argv, environ) == 0 else { return false }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            if status == 0 { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    func waitForExit(_ process: Process, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return !process.isRunning
    }

    @Test func servesLogsEachTransferAndStopsCleanlyOnSIGTERM() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "curl is needed (make deps)")
        let folder = tree()
        let port = try Self.freePort()
        let (server, errors) = try start(["tftp", "--root", folder.path + "/root", "--address", "127.0.0.1", "--port", String(port),
                                          "--strip-prefix", "/tftpboot/jork"])
        defer { if server.isRunning { server.terminate() } }
        #expect(fetch(port: port, name: "/tftpboot/jork/l4env/bin/fiasco", to: folder.path + "/got"))
        #expect(FileManager.default.contents(atPath: folder.path + "/got") == Data(repeating: 0x5A, count: 300_000))
        kill(server.processIdentifier, SIGTERM)
        #expect(waitForExit(server, seconds: 15))
        #expect(server.terminationStatus == 0)
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("read /tftpboot/jork/l4env/bin/fiasco client=127.0.0.1:"))
        #expect(log.contains("bytes=300000"))
        #expect(log.contains("outcome=ok"))
    }

    @Test func jsonLogLinesParse() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "curl is needed (make deps)")
        let folder = tree()
        let port = try Self.freePort()
        let (server, errors) = try start(["tftp", "--root", folder.path + "/root", "--address", "127.0.0.1", "--port", String(port),
                                          "--log-format", "json"])
        defer { if server.isRunning { server.terminate() } }
        #expect(fetch(port: port, name: "l4env/bin/fiasco", to: folder.path + "/got"))
        kill(server.processIdentifier, SIGINT)
        #expect(waitForExit(server, seconds: 15))
        let lines = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        let record = try #require(lines.first { $0.hasPrefix("{") })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(record.utf8)) as? [String: Any])
        #expect(object["bytes"] as? Int == 300_000)
        #expect(object["outcome"] as? String == "ok")
        #expect(object["file"] as? String == "l4env/bin/fiasco")
    }

    @Test func socketActivationServesOnTheHandedOverSocket() throws {
        let activate = "/usr/bin/systemd-socket-activate"
        try #require(FileManager.default.isExecutableFile(atPath: activate), "systemd-socket-activate is not installed")
        let folder = tree()
        let port = try Self.freePort()
        // --port 1 would fail to bind for anyone: it must not be used when a socket is handed over.
        let (server, _) = try start(["tftp", "--root", folder.path + "/root", "--port", "1"],
                                    via: [activate, "--datagram", "-l", "127.0.0.1:\(port)"])
        defer { if server.isRunning { server.terminate() } }
        #expect(fetch(port: port, name: "l4env/bin/fiasco", to: folder.path + "/got"))
        #expect(FileManager.default.contents(atPath: folder.path + "/got")?.count == 300_000)
        kill(server.processIdentifier, SIGTERM)
        #expect(waitForExit(server, seconds: 15))
    }

    @Test func unprivilegedUserIsToldWhatToDoAboutPort69() throws {
        try #require(geteuid() == 0, "needs root to switch to an unprivileged user")
        let folder = tree()
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder.path)
        let serve = try #require(CommandLineTests.executable("drops-serve"))
        // The tools must be reachable by nobody for this check; skip where the checkout is private.
        try #require(FileManager.default.isExecutableFile(atPath: serve))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                             serve, "tftp", "--root", folder.path + "/root", "--address", "127.0.0.1", "--port", "69"]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if message.contains("Permission denied") && message.contains("execute") {
            // The checkout is not readable by nobody: nothing to check here.
            return
        }
        #expect(process.terminationStatus == 1, "\(message)")
        #expect(message.contains("--port 6969"), "\(message)")
        #expect(message.contains("socket activation"), "\(message)")
    }

    @Test func missingRootIsAOneLineError() throws {
        let (server, errors) = try start(["tftp", "--root", "/nonexistent/out", "--port", "0"])
        server.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(server.terminationStatus == 1)
        #expect(message.contains("/nonexistent/out"))
        #expect(message.contains("drops-build profile"))
    }
}
