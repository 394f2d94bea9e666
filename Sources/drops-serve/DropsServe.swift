import ArgumentParser
import DropsCLI
import DropsHTTP
import DropsTFTP
import Foundation
import Logging
import NIOCore
import NIOPosix

struct DropsServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drops-serve",
        abstract: "Serve DROPS image trees to PCs and L4 programs.",
        discussion: """
            drops-serve tftp is the TFTP server (and the DROPS file provider's peer): PXE \
            firmware, boot loaders and the L4 tftp file provider fetch every file of an image \
            tree from it. drops-serve pxe adds proxyDHCP, so a lab's PCs netboot their \
            profiles without any change to the site's DHCP server.
            """,
        subcommands: [ServeTFTP.self, ServePXE.self, ServeHTTP.self, ServeStatus.self])
}

struct ServeTFTP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tftp",
        abstract: "Serve a folder (by default out/, every built image tree) over TFTP.",
        discussion: """
            Read requests are answered from --root, read-only: a name resolves to a regular \
            file inside the root or is refused with ERROR 2 (access violation): '..' segments, \
            absolute paths outside the root, symlinks that lead out, NUL bytes, over-long names \
            and device files. DROPS menus ask for absolute paths such as /tftpboot/USER/bin/fiasco: \
            --strip-prefix /tftpboot/USER maps them into the root.

            Supported: RFC 1350 (octet and netascii), RFC 2347 option negotiation, RFC 2348 \
            blksize, RFC 2349 tsize and timeout, RFC 7440 windowsize; files of any size (block \
            numbers wrap from 65535 to 0). Write requests are refused unless --upload-dir is \
            given; uploads then create new files only, up to --upload-limit bytes.

            One log line per finished transfer goes to standard error: client, file, options \
            agreed, bytes, duration, throughput, retransmissions, outcome, and \
            send-buffer-waits=N when the send buffer filled up N times (a window larger than \
            the path to the client takes) (--log-format json for collectors).

            Port 69 needs root. Without it use a high port (--port 6969) or systemd socket \
            activation (services/drops-tftp.socket hands the bound socket over in LISTEN_FDS).

            SIGTERM or SIGINT: stop taking requests, let running transfers finish for the \
            grace period (--grace), exit 0.

            Examples:
              drops-serve tftp --port 6969
              drops-serve tftp --root out --strip-prefix /tftpboot --upload-dir /var/lib/drops/uploads
            """)

    @Option(name: .long, help: ArgumentHelp("Address to listen on.", valueName: "ip"))
    var address = "0.0.0.0"

    @Option(name: .long, help: ArgumentHelp("UDP port for requests.", valueName: "port"))
    var port = 69

    @OptionGroup var transfer: TransferOptions

    func validate() throws {
        guard (1...65535).contains(port) || port == 0 else { throw ValidationError("--port must be 1 to 65535") }
    }

    func run() throws {
        CommandMain.bootstrapLogging(transfer.quiet ? .warning : .notice)
        let termination = TerminationSignals()
        let configuration = transfer.configuration(host: address, port: port)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: transfer.threads)
        let server: TFTPServer
        let http: HTTPFileServer?
        do {
            server = try TFTPServer(configuration: configuration, group: group)
            if let descriptor = SocketActivation.descriptor() {
                _ = try server.start(boundDescriptor: descriptor)
            } else {
                _ = try server.start()
            }
            do { http = try transfer.startHTTP(defaultHost: address, group: group) } catch {
                server.shutdown(grace: .seconds(0))
                throw error
            }
        } catch {
            try? group.syncShutdownGracefully()
            throw CommandFailure("\(error)")
        }
        termination.wait()
        http?.stop()
        server.shutdown(grace: .nanoseconds(Int64(transfer.grace * 1e9)))
        try? group.syncShutdownGracefully()
    }
}

/// SIGTERM and SIGINT, caught from the moment this is made: made before the sockets are
/// bound, so a signal that comes while the server starts still ends it cleanly.
final class TerminationSignals {
    private let stop = DispatchSemaphore(value: 0)
    private var sources: [DispatchSourceSignal] = []

    init() {
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [stop] in stop.signal() }
            source.resume()
            sources.append(source)
        }
    }

    /// Blocks until one of them arrives (or has arrived).
    func wait() { stop.wait() }
}

/// systemd socket activation (sd_listen_fds): the first passed descriptor is 3.
enum SocketActivation {
    static func descriptor() -> CInt? {
        let environment = ProcessInfo.processInfo.environment
        guard let count = environment["LISTEN_FDS"].flatMap({ Int($0) }), count >= 1 else { return nil }
        if let pid = environment["LISTEN_PID"].flatMap({ Int32($0) }), pid != getpid() { return nil }
        return 3
    }
}

/// The TFTP settings `tftp` and `pxe` share.
struct TransferOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Folder to serve (read-only).", valueName: "dir"))
    var root = "out"

    @Option(name: .customLong("max-blksize"), help: ArgumentHelp("Largest block size granted (8-65464).", valueName: "bytes"))
    var maxBlockSize = 65464

    @Option(name: .customLong("max-windowsize"), help: ArgumentHelp("Largest window granted (1-65535).", valueName: "blocks"))
    var maxWindowSize = 64

    @Option(name: .long, help: ArgumentHelp("Retransmission timeout when the client does not ask for one.", valueName: "seconds"))
    var timeout: Double = 1

    @Option(name: .long, help: ArgumentHelp("Retransmissions before a transfer is given up.", valueName: "count"))
    var retries = 5

    @Option(name: .customLong("strip-prefix"), help: ArgumentHelp("Remove this leading folder from requested names (repeatable).", valueName: "path"))
    var stripPrefixes: [String] = []

    @Option(name: .customLong("upload-dir"), help: ArgumentHelp("Accept uploads (new files only) into this folder.", valueName: "dir"))
    var uploadDirectory: String?

    @Option(name: .customLong("upload-limit"), help: ArgumentHelp("Largest upload accepted.", valueName: "bytes"))
    var uploadLimit = 64 << 20

    @Option(name: .customLong("log-format"), help: ArgumentHelp("Transfer log lines as text or json.", valueName: "format"))
    var logFormat = "text"

    @Option(name: .long, help: ArgumentHelp("Seconds running transfers may take to finish after SIGTERM.", valueName: "seconds"))
    var grace: Double = 10

    @Option(name: .long, help: ArgumentHelp(
        "Event-loop threads that run transfers (default: 16, or twice the cores on machines with more than 8).",
        discussion: "Lock-step transfers spend most of their time waiting for the next ACK. When the clients share the server's CPUs (QEMU guests, or a benchmark on one machine), more threads than cores give the server its share of the scheduler.",
        valueName: "count"))
    var threads: Int = max(16, 2 * System.coreCount)

    @Flag(name: .shortAndLong, help: "Log only failed transfers and errors.")
    var quiet = false

    @Option(name: .customLong("http-port"), help: ArgumentHelp(
        "Also serve the root over HTTP on this TCP port (off unless given; see drops-serve http).", valueName: "port"))
    var httpPort: Int?

    @Option(name: .customLong("http-address"), help: ArgumentHelp(
        "Address of the HTTP listener (default: the TFTP server's).", valueName: "ip"))
    var httpAddress: String?

    func validate() throws {
        guard (8...65464).contains(maxBlockSize) else { throw ValidationError("--max-blksize must be 8 to 65464") }
        guard (1...65535).contains(maxWindowSize) else { throw ValidationError("--max-windowsize must be 1 to 65535") }
        guard timeout > 0, timeout <= 255 else { throw ValidationError("--timeout must be more than 0 and at most 255 seconds") }
        guard retries >= 0 else { throw ValidationError("--retries cannot be negative") }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format is text or json") }
        guard grace >= 0 else { throw ValidationError("--grace cannot be negative") }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1 to 256") }
        if let httpPort { guard (1...65535).contains(httpPort) else { throw ValidationError("--http-port must be 1 to 65535") } }
        if httpAddress != nil && httpPort == nil { throw ValidationError("--http-address goes with --http-port") }
    }

    /// The HTTP listener beside TFTP, when --http-port asks for one: the same root, the same
    /// prefixes, the same log format.
    func startHTTP(defaultHost: String, group: EventLoopGroup, extraFiles: [String: String] = [:]) throws -> HTTPFileServer? {
        guard let httpPort else { return nil }
        var configuration = HTTPFileServer.Configuration(root: root)
        configuration.extraFiles = extraFiles
        configuration.host = httpAddress ?? defaultHost
        configuration.port = httpPort
        configuration.stripPrefixes = stripPrefixes
        configuration.jsonLog = logFormat == "json"
        let server = try HTTPFileServer(configuration: configuration, group: group)
        try server.start()
        return server
    }


    /// The server configuration these options describe, for a given address and port.
    func configuration(host: String, port: Int) -> TFTPServerConfiguration {
        var configuration = TFTPServerConfiguration(root: root)
        configuration.host = host
        configuration.port = port
        configuration.stripPrefixes = stripPrefixes
        configuration.uploadDirectory = uploadDirectory
        configuration.jsonLog = logFormat == "json"
        configuration.limits.maxBlockSize = maxBlockSize
        configuration.limits.maxWindowSize = maxWindowSize
        configuration.limits.timeoutNanoseconds = UInt64(timeout * 1e9)
        configuration.limits.maxRetries = retries
        configuration.limits.maxUploadSize = uploadLimit
        return configuration
    }
}
