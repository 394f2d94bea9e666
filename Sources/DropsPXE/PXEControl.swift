import DropsModel
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// The control socket of `drops-serve pxe`: a Unix stream socket only its owner may use,
/// one JSON object a line each way. A drops-run that drives a lab PC asks through it:
///
///     {"request":"next-boot","mac":"52:54:00:12:34:56","profile":"selftest","chain":"ipxe"}
///         -> {"ok":true,"message":"…"}   the machine boots that profile while this connection
///            stays open; when it closes (the run ended, even by SIGKILL) the machine reverts
///            to the hosts file
///     {"request":"watch"}  -> {"ok":true,…}, then {"event":"exchange",…} and
///            {"event":"transfer",…} lines as they happen
///     {"request":"status"} -> {"ok":true,"overrides":[{"mac":…,"profile":…,"chain":…}]}
public struct PXEControlRequest: Codable, Sendable, Equatable {
    public var request: String
    public var mac: String?
    public var profile: String?
    public var chain: String?

    public init(request: String, mac: String? = nil, profile: String? = nil, chain: String? = nil) {
        self.request = request
        self.mac = mac
        self.profile = profile
        self.chain = chain
    }
}

public struct PXEControlReply: Codable, Sendable, Equatable {
    public struct Override: Codable, Sendable, Equatable {
        public var mac: String
        public var profile: String
        public var chain: String?
    }
    public var ok: Bool
    public var message: String
    public var overrides: [Override]?
}

/// One event line of a `watch`.
public struct PXEControlEvent: Codable, Sendable {
    public var event: String
    public var exchange: PXEExchange?
    public var transfer: TransferEvent?

    /// A finished TFTP transfer, as the transfer log has it.
    public struct TransferEvent: Codable, Sendable, Equatable {
        public var client: String
        public var file: String
        public var bytes: Int
        public var seconds: Double
        public var outcome: String

        public init(client: String, file: String, bytes: Int, seconds: Double, outcome: String) {
            self.client = client
            self.file = file
            self.bytes = bytes
            self.seconds = seconds
            self.outcome = outcome
        }
    }
}

public enum PXEControlError: Error, CustomStringConvertible {
    case socket(path: String, reason: String)

    public var description: String {
        switch self {
        case let .socket(path, reason): return "control socket \(path): \(reason)"
        }
    }
}

/// The server side, in drops-serve pxe.
public final class PXEControlServer: Sendable {
    public let path: String
    let pxe: PXEServer
    private let state = NIOLockedValueBox(ControlState())
    private let channel: NIOLockedValueBox<Channel?> = NIOLockedValueBox(nil)

    struct ControlState {
        var watchers: [ObjectIdentifier: Channel] = [:]
        /// Which connection set which machine's override.
        var owners: [String: ObjectIdentifier] = [:]
    }

    /// The default folder: $RUNTIME_DIRECTORY (systemd), /run/drops for root, else
    /// $XDG_RUNTIME_DIR/drops.
    public static func defaultFolder() -> String {
        let environment = ProcessInfo.processInfo.environment
        if let runtime = environment["RUNTIME_DIRECTORY"], !runtime.isEmpty { return runtime }
        if geteuid() == 0 { return "/run/drops" }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/drops" }
        return NSTemporaryDirectory() + "drops-\(geteuid())"
    }

    /// One socket per served interface: FOLDER/pxe-INTERFACE.sock.
    public static func defaultPath(interface: String) -> String { defaultFolder() + "/pxe-\(interface).sock" }

    /// The sockets of the default folder a server answers on (for a drops-run that was not
    /// told which one).
    public static func running() -> [String] {
        let folder = defaultFolder()
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasPrefix("pxe-") && $0.hasSuffix(".sock") }
        return names.sorted().map { folder + "/" + $0 }.filter { PXEControlClient.answers(path: $0) }
    }

    public init(path: String, pxe: PXEServer) {
        self.path = path
        self.pxe = pxe
    }

    /// Binds the socket, mode 0600 in a folder of mode 0700 it makes if missing. A socket
    /// file nobody answers on (a server that was killed) is replaced; a live one is an error.
    public func start(group: EventLoopGroup) throws(PXEControlError) {
        let folder = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: folder) {
            do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
                throw .socket(path: path, reason: "cannot make its folder: \(error.localizedDescription)")
            }
        }
        if FileManager.default.fileExists(atPath: path) {
            if PXEControlClient.answers(path: path) {
                throw .socket(path: path, reason: "another drops-serve pxe answers on it; stop that one or give --control another path")
            }
            unlink(path)
        }
        let previous = umask(0o177)
        defer { umask(previous) }
        let bootstrap = ServerBootstrap(group: group)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ControlHandler(server: self)) }
            }
        do {
            let bound = try bootstrap.bind(unixDomainSocketPath: path).wait()
            channel.withLockedValue { $0 = bound }
        } catch {
            throw .socket(path: path, reason: "cannot listen: \(error)")
        }
        chmod(path, 0o600)
        pxe.setExchangeObserver { [self] exchange in publish(PXEControlEvent(event: "exchange", exchange: exchange, transfer: nil)) }
    }

    /// Hands a finished transfer to the watchers.
    public func publish(transfer: PXEControlEvent.TransferEvent) {
        publish(PXEControlEvent(event: "transfer", exchange: nil, transfer: transfer))
    }

    func publish(_ event: PXEControlEvent) {
        guard let line = Self.line(event) else { return }
        let watchers = state.withLockedValue { Array($0.watchers.values) }
        for watcher in watchers {
            var buffer = watcher.allocator.buffer(capacity: line.utf8.count)
            buffer.writeString(line)
            watcher.writeAndFlush(buffer, promise: nil)
        }
    }

    public func stop() {
        if let bound = channel.withLockedValue({ $0 }) { try? bound.close().wait() }
        unlink(path)
    }

    static func line<T: Encodable>(_ value: T) -> String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) + "\n" }
    }

    /// One request line from `connection`; the reply line.
    func handle(_ text: String, connection: Channel) -> PXEControlReply {
        guard let request = try? JSONDecoder().decode(PXEControlRequest.self, from: Data(text.utf8)) else {
            return PXEControlReply(ok: false, message: "not a request: send one JSON object a line, such as {\"request\":\"status\"}")
        }
        let id = ObjectIdentifier(connection)
        switch request.request {
        case "next-boot":
            guard let mac = request.mac.flatMap(HostTable.normalizedMAC) else {
                return PXEControlReply(ok: false, message: "next-boot needs mac, six hex bytes such as 52:54:00:12:34:56")
            }
            guard let profile = request.profile, pxe.profiles[profile] != nil else {
                return PXEControlReply(ok: false, message: "next-boot: profile \(request.profile ?? "(none)") has no image in the served root; it has \(pxe.profiles.keys.sorted().joined(separator: ", "))")
            }
            var chain: BootChain?
            if let text = request.chain {
                guard let known = BootChain(rawValue: text) else { return PXEControlReply(ok: false, message: "next-boot: chain \(text) is not ipxe, pxelinux or grub") }
                chain = known
            }
            let taken = state.withLockedValue { value -> Bool in
                if let owner = value.owners[mac], owner != id { return true }
                value.owners[mac] = id
                return false
            }
            if taken { return PXEControlReply(ok: false, message: "\(mac) is pointed at another profile by another connection (a run holds it)") }
            pxe.setOverride(mac: mac, BootOverride(profile: profile, chain: chain))
            return PXEControlReply(ok: true, message: "\(mac) boots \(profile)\(chain.map { " over \($0.rawValue)" } ?? "") until this connection closes")
        case "watch":
            state.withLockedValue { $0.watchers[id] = connection }
            return PXEControlReply(ok: true, message: "watching DHCP exchanges and TFTP transfers")
        case "status":
            let overrides = pxe.overrides.sorted { $0.key < $1.key }.map { PXEControlReply.Override(mac: $0.key, profile: $0.value.profile, chain: $0.value.chain?.rawValue) }
            return PXEControlReply(ok: true, message: "\(overrides.count) machines pointed", overrides: overrides)
        default:
            return PXEControlReply(ok: false, message: "unknown request \(request.request); use next-boot, watch or status")
        }
    }

    /// A connection ended: its machines revert, it watches no more.
    func closed(_ connection: Channel) {
        let id = ObjectIdentifier(connection)
        let released = state.withLockedValue { value -> [String] in
            value.watchers[id] = nil
            let macs = value.owners.filter { $0.value == id }.map(\.key)
            for mac in macs { value.owners[mac] = nil }
            return macs
        }
        for mac in released { pxe.setOverride(mac: mac, nil) }
    }
}

/// Splits a connection's bytes into lines and answers each.
final class ControlHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let server: PXEControlServer
    var pending = ""

    init(server: PXEControlServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        pending += buffer.readString(length: buffer.readableBytes) ?? ""
        // A request is small: a line longer than this is no request.
        if pending.utf8.count > 65536 { context.close(promise: nil); return }
        while let newline = pending.firstIndex(of: "\n") {
            let line = String(pending[..<newline])
            pending.removeSubrange(...newline)
            let reply = server.handle(line, connection: context.channel)
            if let text = PXEControlServer.line(reply) {
                var out = context.channel.allocator.buffer(capacity: text.utf8.count)
                out.writeString(text)
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        server.closed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// The client side, for drops-run: a blocking Unix socket, a reader thread for events.
public final class PXEControlClient: @unchecked Sendable {
    public let path: String
    private let descriptor: Int32
    private let lock = NSLock()
    private var replies: [PXEControlReply] = []
    private let replyArrived = DispatchSemaphore(value: 0)
    private var onEvent: (@Sendable (PXEControlEvent) -> Void)?
    private var closed = false

    /// True when a server answers on `path`.
    public static func answers(path: String) -> Bool {
        guard let client = try? PXEControlClient(path: path) else { return false }
        client.close()
        return true
    }

    public init(path: String) throws(PXEControlError) {
        self.path = path
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw .socket(path: path, reason: String(cString: strerror(errno))) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(descriptor)
            throw .socket(path: path, reason: "the path is too long for a Unix socket")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            throw .socket(path: path, reason: "no drops-serve pxe answers (\(reason))")
        }
        self.descriptor = descriptor
        let thread = Thread { [self] in readLoop() }
        thread.start()
    }

    private func readLoop() {
        var pending = Data()
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count <= 0 { break }
            pending.append(contentsOf: buffer[0..<count])
            while let newline = pending.firstIndex(of: 0x0A) {
                let line = Data(pending[pending.startIndex..<newline])
                pending.removeSubrange(pending.startIndex...newline)
                if let event = try? JSONDecoder().decode(PXEControlEvent.self, from: line), !event.event.isEmpty {
                    let handler = lock.withLock { onEvent }
                    handler?(event)
                } else if let reply = try? JSONDecoder().decode(PXEControlReply.self, from: line) {
                    lock.withLock { replies.append(reply) }
                    replyArrived.signal()
                }
            }
        }
        lock.withLock { closed = true }
        replyArrived.signal()
    }

    /// Sends a request and waits (up to 10 s) for its reply.
    public func send(_ request: PXEControlRequest) throws(PXEControlError) -> PXEControlReply {
        guard let line = PXEControlServer.line(request) else { throw .socket(path: path, reason: "cannot encode the request") }
        let bytes = Array(line.utf8)
        let sent = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard sent == bytes.count else { throw .socket(path: path, reason: "the server closed the connection") }
        let deadline = DispatchTime.now() + 10
        while true {
            if let reply = lock.withLock({ replies.isEmpty ? nil : replies.removeFirst() }) { return reply }
            if lock.withLock({ closed }) { throw .socket(path: path, reason: "the server closed the connection") }
            if replyArrived.wait(timeout: deadline) == .timedOut { throw .socket(path: path, reason: "no reply within 10 s") }
        }
    }

    /// Events of a `watch` go to `handler`.
    public func onEvents(_ handler: @escaping @Sendable (PXEControlEvent) -> Void) {
        lock.withLock { onEvent = handler }
    }

    public func close() {
        shutdown(descriptor, Int32(SHUT_RDWR))
        Glibc.close(descriptor)
    }
}
