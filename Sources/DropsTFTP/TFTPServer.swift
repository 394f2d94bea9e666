import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Everything the server needs to know.
public struct TFTPServerConfiguration: Sendable {
    public var root: String
    public var stripPrefixes: [String] = []
    public var host = "0.0.0.0"
    public var port = 69
    public var limits = TFTPLimits()
    /// Where write requests may create files; nil refuses every write.
    public var uploadDirectory: String?
    /// Log each transfer as JSON instead of text.
    public var jsonLog = false
    /// Files served under a name of the root's as if they were in it, such as a boot image
    /// made for one run: root-relative name → real path. Read-only, like the root.
    public var extraFiles: [String: String] = [:]

    public init(root: String) {
        self.root = root
    }
}

/// Errors starting the server.
public enum TFTPServerError: Error, Sendable, CustomStringConvertible {
    case rootMissing(String)
    case bindFailed(host: String, port: Int, reason: String)
    case uploadDirectoryMissing(String)

    public var description: String {
        switch self {
        case let .rootMissing(root):
            return "the served root \(root) does not exist; build an image first (drops-build profile NAME) or pass --root"
        case let .bindFailed(host, port, reason):
            let hint = port < 1024 && geteuid() != 0
                ? " Ports below 1024 need root: use a high port (--port 6969) or systemd socket activation (services/drops-tftp.socket)."
                : ""
            return "cannot listen on \(host):\(port): \(reason).\(hint)"
        case let .uploadDirectoryMissing(path):
            return "upload folder \(path) does not exist; create it or drop --upload-dir"
        }
    }
}

/// The TFTP server: one listening socket for requests, one ephemeral socket (TID) per
/// transfer, each driving a `ReadTransfer` or `WriteTransfer` state machine.
public final class TFTPServer: Sendable {
    public let configuration: TFTPServerConfiguration
    let resolver: PathResolver
    let logger: Logger
    let group: EventLoopGroup
    let state = NIOLockedValueBox(ServerState())

    struct ServerState {
        var listener: Channel?
        var active = 0
        var accepting = true
        var finished: [TransferRecord] = []
        var idleWaiters: [EventLoopPromise<Void>] = []
        /// The request each running transfer was started by, per client address and port:
        /// a client that repeats its request (our first answer got lost) gets no second transfer.
        var requests: [SocketAddress: TFTPPacket] = [:]
        var observer: (@Sendable (TransferRecord) -> Void)?
    }

    public init(configuration: TFTPServerConfiguration, group: EventLoopGroup, logger: Logger = Logger(label: "drops.tftp")) throws(TFTPServerError) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        do {
            resolver = try PathResolver(root: configuration.root, stripPrefixes: configuration.stripPrefixes)
        } catch {
            throw .rootMissing(configuration.root)
        }
        if let upload = configuration.uploadDirectory {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: upload, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw .uploadDirectoryMissing(upload)
            }
        }
    }

    /// Binds the request socket and returns the address it listens on (useful with port 0).
    public func start() throws(TFTPServerError) -> SocketAddress {
        do {
            let channel = try bootstrap().bind(host: configuration.host, port: configuration.port).wait()
            return register(channel)
        } catch {
            throw .bindFailed(host: configuration.host, port: configuration.port, reason: "\(error)")
        }
    }

    /// Serves on an already bound socket, as systemd socket activation hands it over.
    public func start(boundDescriptor descriptor: CInt) throws(TFTPServerError) -> SocketAddress {
        do {
            let channel = try bootstrap().withBoundSocket(descriptor).wait()
            return register(channel)
        } catch {
            throw .bindFailed(host: "socket \(descriptor)", port: 0, reason: "\(error)")
        }
    }

    private func bootstrap() -> DatagramBootstrap {
        // No SO_REUSEADDR: on UDP it would let a second server bind the same port silently.
        DatagramBootstrap(group: group)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65536))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RequestHandler(server: self))
                }
            }
    }

    private func register(_ channel: Channel) -> SocketAddress {
        state.withLockedValue { $0.listener = channel }
        let address = channel.localAddress!
        logger.notice("serving \(resolver.realRoot) over TFTP on \(address.hostAndPort)")
        return address
    }

    /// The real path to serve for a read request's file name.
    func resolveForReading(_ name: String) throws(Refusal) -> String {
        if !configuration.extraFiles.isEmpty, let path = configuration.extraFiles[try resolver.relativePath(name)] { return path }
        return try resolver.resolveForReading(name)
    }

    /// Calls `observer` on an event loop after each transfer ended, ok or not.
    public func setTransferObserver(_ observer: @escaping @Sendable (TransferRecord) -> Void) {
        state.withLockedValue { $0.observer = observer }
    }

    /// Transfers that have not finished yet.
    public var activeTransfers: Int { state.withLockedValue { $0.active } }

    /// Records of the transfers finished so far (most recent last), for tests and benchmarks.
    public var finishedTransfers: [TransferRecord] { state.withLockedValue { $0.finished } }

    /// Stops taking requests, lets running transfers finish for up to `grace`, then returns.
    public func shutdown(grace: TimeAmount) {
        let (listener, active) = state.withLockedValue { value -> (Channel?, Int) in
            value.accepting = false
            let listener = value.listener
            value.listener = nil
            return (listener, value.active)
        }
        try? listener?.close().wait()
        if active > 0 {
            logger.notice("waiting up to \(grace.nanoseconds / 1_000_000_000) s for \(active) transfer(s) to finish")
            waitUntilIdle(upTo: grace)
        }
    }

    /// Blocks until no transfer is running or `limit` has passed. Every record of a transfer
    /// that ended by then has reached the observer.
    public func waitUntilIdle(upTo limit: TimeAmount) {
        let promise = group.next().makePromise(of: Void.self)
        state.withLockedValue { $0.idleWaiters.append(promise) }
        let timeout = group.next().scheduleTask(in: limit) { promise.succeed(()) }
        if activeTransfers == 0 { promise.succeed(()) }
        try? promise.futureResult.wait()
        timeout.cancel()
        // Transfers still running may end later, even with the event loops; a waiter left in
        // the list would be completed then, on a loop that may be gone.
        state.withLockedValue { $0.idleWaiters.removeAll { $0.futureResult == promise.futureResult } }
    }

    // MARK: - bookkeeping used by the handlers

    /// False when the server is shutting down or the same client already runs this request.
    func transferStarted(client: SocketAddress, request: TFTPPacket) -> Bool {
        state.withLockedValue { value in
            guard value.accepting, value.requests[client] != request else { return false }
            value.requests[client] = request
            value.active += 1
            return true
        }
    }

    func transferFinished(client: SocketAddress, request: TFTPPacket, _ record: TransferRecord) {
        // The observer hears of the transfer before it stops counting as active, so one who
        // waits for no active transfers has seen every record.
        state.withLockedValue { $0.observer }?(record)
        let waiters = state.withLockedValue { value -> [EventLoopPromise<Void>] in
            if value.requests[client] == request { value.requests[client] = nil }
            value.active -= 1
            value.finished.append(record)
            if value.finished.count > 10_000 { value.finished.removeFirst(value.finished.count - 10_000) }
            guard value.active == 0 else { return [] }
            let waiters = value.idleWaiters
            value.idleWaiters = []
            return waiters
        }
        let line = configuration.jsonLog ? record.json : record.text
        if record.outcome == "ok" { logger.notice("\(line)") } else { logger.warning("\(line)") }
        for waiter in waiters { waiter.succeed(()) }
    }
}

/// Reads requests on the well-known port and starts a transfer channel for each.
final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let server: TFTPServer

    init(server: TFTPServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = envelope.data.readableBytesView
        let client = envelope.remoteAddress
        let request: TFTPPacket
        do {
            request = try TFTPPacket.decode(bytes)
        } catch {
            server.logger.warning("malformed request from \(client.hostAndPort): \(error)")
            reply(context: context, to: client, .error(code: .illegalOperation, message: "malformed request: \(error)"))
            return
        }
        switch request {
        case .readRequest, .writeRequest:
            guard server.transferStarted(client: client, request: request) else { return }
            startTransfer(context: context, request: request, client: client)
        case .error:
            // Never answer an ERROR with an ERROR: two servers doing so loop forever.
            return
        default:
            // Stray DATA/ACK to the request port: no transfer owns it (RFC 1350: unknown TID).
            reply(context: context, to: client, .error(code: .unknownTransferID, message: "no transfer on this port; send a read or write request"))
        }
    }

    private func reply(context: ChannelHandlerContext, to client: SocketAddress, _ packet: TFTPPacket) {
        context.writeAndFlush(wrapOutboundOut(packet.datagram(to: client, allocator: context.channel.allocator)), promise: nil)
    }

    private func startTransfer(context: ChannelHandlerContext, request: TFTPPacket, client: SocketAddress) {
        let server = self.server
        let localHost = context.channel.localAddress?.ipAddress ?? server.configuration.host
        // A read transfer only ever receives ACKs and ERRORs; a write needs room for a block.
        let receiveCapacity: Int
        if case .writeRequest = request { receiveCapacity = TFTPPacket.maxBlockSize + 64 } else { receiveCapacity = 1024 }
        let noSocket = { @Sendable (error: Error) in
            server.transferFinished(client: client, request: request, TransferRecord(client: client.hostAndPort, direction: "?", file: "", options: "", bytes: 0,
                                                   seconds: 0, outcome: "no transfer socket: \(error)", retransmissions: 0))
        }
        let descriptor: CInt
        do {
            descriptor = try Self.transferSocket(host: localHost)
        } catch {
            noSocket(error)
            return
        }
        // Spread transfers over every event loop: on the request socket's loop alone, all
        // transfers would share one core.
        DatagramBootstrap(group: server.group.next())
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: receiveCapacity))
            // Lock-step clients send one packet per round trip: one read per wake-up saves the
            // read that would only return EAGAIN.
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TransferHandler(server: server, request: request, client: client, descriptor: descriptor))
                }
            }
            .withBoundSocket(descriptor)
            .whenFailure(noSocket)
    }
}

extension RequestHandler {
    /// A UDP socket on an ephemeral port of `host`: the new transfer's TID. Made here rather
    /// than by the bootstrap, so that the transfer can send on it directly.
    static func transferSocket(host: String) throws -> CInt {
        let address = try SocketAddress(ipAddress: host, port: 0)
        let descriptor = socket(address.protocol.rawValue, Int32(SOCK_DGRAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        let bound = address.withSockAddr { bind(descriptor, $0, socklen_t($1)) }
        guard bound == 0 else {
            let failure = errno
            close(descriptor)
            throw IOError(errnoCode: failure, reason: "bind")
        }
        return descriptor
    }
}

extension TFTPPacket {
    /// The packet as a datagram for NIO.
    func datagram(to address: SocketAddress, allocator: ByteBufferAllocator) -> AddressedEnvelope<ByteBuffer> {
        let bytes = encoded()
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return AddressedEnvelope(remoteAddress: address, data: buffer)
    }
}

extension SocketAddress {
    /// `192.0.2.1:69` or `[2001:db8::1]:69`, as people write addresses (NIO's own description
    /// reads `[IPv4]192.0.2.1/192.0.2.1:69`).
    public var hostAndPort: String {
        let host = ipAddress ?? "?"
        let port = port ?? 0
        if case .v6 = self { return "[\(host)]:\(port)" }
        return "\(host):\(port)"
    }
}
