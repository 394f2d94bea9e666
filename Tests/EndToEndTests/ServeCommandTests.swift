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

    /// Starts drops-serve (through `launcher` when given) with its standard error in `log`.
    func start(_ arguments: [String], log: String, via launcher: [String] = []) throws -> ChildProcess {
        let serve = try #require(CommandLineTests.executable("drops-serve"), "build the tools first (make build)")
        return try ChildProcess(launcher + [serve] + arguments, errors: log)
    }

    func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// The port of a server started with --port 0, from its first line
    /// (`serving ROOT over TFTP on 127.0.0.1:PORT`).
    func announcedPort(_ server: ChildProcess, log: String) throws -> Int {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && server.isRunning {
            if let line = text(log).split(separator: "\n").first(where: { $0.hasPrefix("serving ") }),
               let port = line.split(separator: ":").last.flatMap({ Int($0) }) {
                #expect(line.hasSuffix(" over TFTP on 127.0.0.1:\(port)"), "\(line)")
                return port
            }
            usleep(20_000)
        }
        throw NSError(domain: "ServeCommandTests", code: 1, userInfo: [NSLocalizedDescriptionKey: "drops-serve named no port: \(text(log))"])
    }

    /// Fetches with curl, retrying while the server starts.
    func fetch(port: Int, name: String, to output: String) -> Bool {
        for _ in 0..<50 {
            let arguments = ["/usr/bin/curl", "-s", "--max-time", "10", "-o", output, "tftp://127.0.0.1:\(port)/\(name)"]
            if let result = try? ChildProcess.run(arguments, timeout: 30), result.status == 0 { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    @Test func servesLogsEachTransferAndStopsCleanlyOnSIGTERM() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "curl is needed (make deps)")
        let folder = tree()
        let errors = folder.path + "/serve.err"
        let server = try start(["tftp", "--root", folder.path + "/root", "--address", "127.0.0.1", "--port", "0",
                                "--strip-prefix", "/tftpboot/jork"], log: errors)
        defer { server.stop(SIGKILL) }
        let port = try announcedPort(server, log: errors)
        #expect(fetch(port: port, name: "/tftpboot/jork/l4env/bin/fiasco", to: folder.path + "/got"))
        #expect(FileManager.default.contents(atPath: folder.path + "/got") == Data(repeating: 0x5A, count: 300_000))
        kill(server.pid, SIGTERM)
        #expect(server.wait(seconds: 15) == 0)
        let log = text(errors)
        #expect(log.contains("read /tftpboot/jork/l4env/bin/fiasco client=127.0.0.1:"))
        #expect(log.contains("bytes=300000"))
        #expect(log.contains("outcome=ok"))
    }

    @Test func jsonLogLinesParse() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "curl is needed (make deps)")
        let folder = tree()
        let errors = folder.path + "/serve.err"
        let server = try start(["tftp", "--root", folder.path + "/root", "--address", "127.0.0.1", "--port", "0",
                                "--log-format", "json"], log: errors)
        defer { server.stop(SIGKILL) }
        let port = try announcedPort(server, log: errors)
        #expect(fetch(port: port, name: "l4env/bin/fiasco", to: folder.path + "/got"))
        kill(server.pid, SIGINT)
        #expect(server.wait(seconds: 15) == 0)
        let lines = text(errors).split(separator: "\n")
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
        let server = try start(["tftp", "--root", folder.path + "/root", "--port", "1"], log: folder.path + "/serve.err",
                               via: [activate, "--datagram", "-l", "127.0.0.1:\(port)"])
        defer { server.stop(SIGKILL) }
        #expect(fetch(port: port, name: "l4env/bin/fiasco", to: folder.path + "/got"))
        #expect(FileManager.default.contents(atPath: folder.path + "/got")?.count == 300_000)
        kill(server.pid, SIGTERM)
        #expect(server.wait(seconds: 15) != nil, "\(text(folder.path + "/serve.err"))")
    }

    @Test func unprivilegedUserIsToldWhatToDoAboutPort69() throws {
        try #require(geteuid() == 0, "needs root to switch to an unprivileged user")
        let folder = tree()
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder.path)
        let serve = try #require(CommandLineTests.executable("drops-serve"))
        // The tools must be reachable by nobody for this check; skip where the checkout is private.
        try #require(FileManager.default.isExecutableFile(atPath: serve))
        let result = try ChildProcess.run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                                           serve, "tftp", "--root", folder.path + "/root", "--address", "127.0.0.1", "--port", "69"], timeout: 60)
        let message = result.stderr
        if message.contains("Permission denied") && message.contains("execute") {
            // The checkout is not readable by nobody: nothing to check here.
            return
        }
        #expect(result.status == 1, "\(message)")
        #expect(message.contains("--port 6969"), "\(message)")
        #expect(message.contains("socket activation"), "\(message)")
    }

    @Test func missingRootIsAOneLineError() throws {
        let folder = TemporaryDirectory("drops-serve")
        let server = try start(["tftp", "--root", "/nonexistent/out", "--port", "0"], log: folder.path + "/serve.err")
        let status = server.wait(seconds: 30)
        let message = text(folder.path + "/serve.err")
        #expect(status == 1, "\(message)")
        #expect(message.contains("/nonexistent/out"))
        #expect(message.contains("drops-build profile"))
    }
}
