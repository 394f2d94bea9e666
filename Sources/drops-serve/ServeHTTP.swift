import ArgumentParser
import DropsCLI
import DropsHTTP
import Foundation
import Logging
import NIOCore
import NIOPosix

struct ServeHTTP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "Serve a folder (by default out/, every built image tree) over HTTP, read-only.",
        discussion: """
            GET and HEAD from --root with the path rules of 'drops-serve tftp': a path is \
            percent-decoded once and must then name a regular file inside the root; '..' in \
            any spelling, NUL bytes, symlinks that lead out and folders are refused (403, or \
            404 for what is not there). No directory listings. A single byte range is \
            answered with 206 (416 when it lies outside the file); HTTP/1.1 connections stay \
            open between requests. Files the tree's manifest.json lists carry their SHA-256 \
            as ETag.

            Limits: --idle-timeout closes a connection that sends nothing (a client that \
            trickles a byte now and then included) for that long; request headers may take \
            --max-header-bytes together and --max-headers lines, else 431.

            One log line per request on standard error: method, path, client, status, bytes, \
            seconds, rate, and why a request was refused (--log-format json for collectors).

            Examples:
              drops-serve http --http-port 8080
              drops-serve http --root out --http-address 0.0.0.0 --http-port 80
            """)

    @Option(name: .long, help: ArgumentHelp("Folder to serve (read-only).", valueName: "dir"))
    var root = "out"

    @Option(name: .customLong("http-address"), help: ArgumentHelp("Address to listen on (default: loopback only).", valueName: "ip"))
    var address = "127.0.0.1"

    @Option(name: .customLong("http-port"), help: ArgumentHelp("TCP port.", valueName: "port"))
    var port = 8080

    @Option(name: .customLong("strip-prefix"), help: ArgumentHelp("Remove this leading folder from requested paths (repeatable).", valueName: "path"))
    var stripPrefixes: [String] = []

    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp("Seconds a connection may stay silent.", valueName: "seconds"))
    var idleTimeout = 30

    @Option(name: .customLong("max-header-bytes"), help: ArgumentHelp("Bytes the request headers may take.", valueName: "bytes"))
    var maxHeaderBytes = 16384

    @Option(name: .customLong("max-headers"), help: ArgumentHelp("Header lines a request may have.", valueName: "count"))
    var maxHeaders = 100

    @Option(name: .customLong("log-format"), help: ArgumentHelp("Request log lines as text or json.", valueName: "format"))
    var logFormat = "text"

    @Flag(name: .shortAndLong, help: "Log only refused requests and errors.")
    var quiet = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--http-port must be 1 to 65535") }
        guard idleTimeout >= 1 else { throw ValidationError("--idle-timeout must be at least 1 second") }
        guard (1024...1 << 20).contains(maxHeaderBytes) else { throw ValidationError("--max-header-bytes must be 1024 to 1048576") }
        guard (1...10000).contains(maxHeaders) else { throw ValidationError("--max-headers must be 1 to 10000") }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format is text or json") }
    }

    func run() throws {
        CommandMain.bootstrapLogging(quiet ? .warning : .notice)
        let termination = TerminationSignals()
        var configuration = HTTPFileServer.Configuration(root: root)
        configuration.host = address
        configuration.port = port
        configuration.stripPrefixes = stripPrefixes
        configuration.idleSeconds = Int64(idleTimeout)
        configuration.maxHeaderBytes = maxHeaderBytes
        configuration.maxHeaderCount = maxHeaders
        configuration.jsonLog = logFormat == "json"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let server: HTTPFileServer
        do {
            server = try HTTPFileServer(configuration: configuration, group: group)
            try server.start()
        } catch {
            try? group.syncShutdownGracefully()
            throw CommandFailure(error.description)
        }
        termination.wait()
        server.stop()
        try? group.syncShutdownGracefully()
    }
}
