import DropsModel
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Errors before anything is served; each names the input and what to do.
public enum PXEServerError: Error, Sendable, CustomStringConvertible {
    case interfaceMissing(String, known: [String])
    case interfaceWithoutAddress(String)
    case portInUse(port: Int, interface: String, reason: String)
    case socketFailed(String)
    case rangeOutsideNetwork(String, interface: String, network: String)
    case badRange(String)
    case leaseFile(String, reason: String)
    case routerAdvertisements(String, reason: String)

    public var description: String {
        switch self {
        case let .interfaceMissing(name, known):
            return "no network interface '\(name)' on this machine (it has: \(known.joined(separator: ", "))); pass one of those to --interface"
        case let .interfaceWithoutAddress(name):
            return "interface \(name) has no IPv4 address; give it one (ip address add 10.0.0.1/24 dev \(name)) or choose another --interface"
        case let .portInUse(port, interface, reason):
            return "cannot listen on UDP port \(port) of \(interface): \(reason). Another DHCP server (dnsmasq, dhcpd) on this machine "
                + "holds the port: stop it, or run drops-serve on a machine without one (ss -ulpn 'sport = :\(port)' shows which process)"
        case let .socketFailed(reason):
            return "cannot open a DHCP socket: \(reason)"
        case let .rangeOutsideNetwork(range, interface, network):
            return "--dhcp-range \(range) is not inside \(interface)'s network \(network); choose addresses of that network"
        case let .badRange(text):
            return "--dhcp-range '\(text)' is not FIRST-LAST with two IPv4 addresses, the first not above the last (e.g. 10.0.0.100-10.0.0.199)"
        case let .leaseFile(path, reason):
            return "lease file \(path): \(reason)"
        case let .routerAdvertisements(interface, reason):
            return "router advertisements on \(interface): \(reason); or leave them off (--router-advert off)"
        }
    }
}

/// proxyDHCP (ports 67 and 4011) on one interface, and with a range, a DHCP server. The
/// decisions are `PXEResponder`'s; this class only moves datagrams and keeps the lease file.
public final class PXEServer: Sendable {
    public struct Configuration: Sendable {
        public var interface: NetworkInterface
        public var responder: PXEResponder
        public var leaseFile: String?
        public var jsonLog = false
        public var dhcpPort = 67
        public var bootServerPort = 4011

        public init(interface: NetworkInterface, responder: PXEResponder, leaseFile: String? = nil) {
            self.interface = interface
            self.responder = responder
            self.leaseFile = leaseFile
        }
    }

    let configuration: Configuration
    let logger: Logger
    let group: EventLoopGroup
    let state: NIOLockedValueBox<State>

    struct State {
        var responder: PXEResponder
        var channels: [Channel] = []
        var exchanges: [PXEExchange] = []
        var savedLeases = ""
        var observer: (@Sendable (PXEExchange) -> Void)?
    }

    public init(configuration: Configuration, group: EventLoopGroup, logger: Logger = Logger(label: "drops.pxe")) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        state = NIOLockedValueBox(State(responder: configuration.responder, savedLeases: configuration.responder.leases?.fileText ?? ""))
    }

    /// Binds both ports on the interface. Nothing is served when either cannot be bound.
    public func start() throws(PXEServerError) {
        var descriptors: [(CInt, PXEPort)] = []
        do {
            for (port, kind) in [(configuration.dhcpPort, PXEPort.dhcp), (configuration.bootServerPort, PXEPort.bootServer)] {
                descriptors.append((try Self.boundSocket(interface: configuration.interface.name, port: port), kind))
            }
        } catch {
            for (descriptor, _) in descriptors { close(descriptor) }
            throw error
        }
        for (descriptor, kind) in descriptors {
            do {
                let channel = try DatagramBootstrap(group: group)
                    .channelInitializer { [self] channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(DHCPHandler(server: self, port: kind))
                        }
                    }
                    .withBoundSocket(descriptor).wait()
                state.withLockedValue { $0.channels.append(channel) }
            } catch {
                stop()
                throw .socketFailed("\(error)")
            }
        }
        let mode = configuration.responder.leases.map { "DHCP for \($0.first)-\($0.last) and PXE" } ?? "proxyDHCP (no addresses)"
        logger.notice("\(mode) on \(configuration.interface.name) (\(configuration.interface.address)), ports \(configuration.dhcpPort) and \(configuration.bootServerPort)")
    }

    public func stop() {
        let channels = state.withLockedValue { value -> [Channel] in
            let channels = value.channels
            value.channels = []
            return channels
        }
        for channel in channels { try? channel.close().wait() }
    }

    /// Every exchange so far, most recent last (bounded).
    public var exchanges: [PXEExchange] { state.withLockedValue { $0.exchanges } }

    /// A UDP socket bound to 0.0.0.0:port that only sees this interface's traffic: DHCP
    /// requests are broadcasts, so binding the interface's address would miss them.
    static func boundSocket(interface: String, port: Int) throws(PXEServerError) -> CInt {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .socketFailed(String(cString: strerror(errno))) }
        var one: CInt = 1
        let bound = interface.withCString { name in
            setsockopt(descriptor, SOL_SOCKET, SO_BINDTODEVICE, name, socklen_t(strlen(name) + 1))
        }
        guard bound == 0, setsockopt(descriptor, SOL_SOCKET, SO_BROADCAST, &one, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw .socketFailed("\(reason) (binding to a device needs root or CAP_NET_RAW)")
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = 0
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(descriptor)
            if code == EADDRINUSE { throw .portInUse(port: port, interface: interface, reason: "the port is in use") }
            if code == EACCES { throw .portInUse(port: port, interface: interface, reason: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)") }
            throw .socketFailed(String(cString: strerror(code)))
        }
        return descriptor
    }

    /// Runs the responder; returns the datagram to send, if any.
    func handle(_ bytes: [UInt8], from sender: SocketAddress, port: PXEPort) -> AddressedEnvelope<[UInt8]>? {
        let request: DHCPMessage
        do {
            request = try DHCPMessage.decode(bytes)
        } catch {
            logger.debug("not a DHCP message from \(sender): \(error)")
            return nil
        }
        let now = UInt64(Date().timeIntervalSince1970)
        let (answer, exchange, leases) = state.withLockedValue { value in
            let (answer, exchange) = value.responder.respond(to: request, on: port, now: now)
            value.exchanges.append(exchange)
            if value.exchanges.count > 10_000 { value.exchanges.removeFirst(value.exchanges.count - 10_000) }
            var changedLeases: String?
            if let text = value.responder.leases?.fileText, text != value.savedLeases {
                value.savedLeases = text
                changedLeases = text
            }
            return (answer, exchange, changedLeases)
        }
        if let leases, let path = configuration.leaseFile { saveLeases(leases, to: path) }
        log(exchange)
        guard let (reply, destination) = answer else { return nil }
        let target: SocketAddress?
        switch destination {
        case .broadcast: target = try? SocketAddress(ipAddress: "255.255.255.255", port: 68)
        case let .relay(relay): target = try? SocketAddress(ipAddress: relay.description, port: 67)
        case .sender: target = sender
        }
        return target.map { AddressedEnvelope(remoteAddress: $0, data: reply.encoded()) }
    }

    /// Points a machine at a profile (nil: back to the hosts file and the defaults).
    public func setOverride(mac: String, _ override: BootOverride?) {
        guard let normalized = HostTable.normalizedMAC(mac) else { return }
        state.withLockedValue { $0.responder.policy.overrides[normalized] = override }
    }

    public var overrides: [String: BootOverride] { state.withLockedValue { $0.responder.policy.overrides } }

    /// The profiles of the served root, by name.
    public var profiles: [String: ServedProfile] { state.withLockedValue { $0.responder.policy.profiles } }

    /// Called after every exchange (the control socket's watchers see them).
    public func setExchangeObserver(_ observer: @escaping @Sendable (PXEExchange) -> Void) {
        state.withLockedValue { $0.observer = observer }
    }

    private func log(_ exchange: PXEExchange) {
        state.withLockedValue { $0.observer }?(exchange)
        let line = configuration.jsonLog ? exchange.json : exchange.text
        // Plain DHCP traffic of other machines is routine: only PXE exchanges are notices.
        if exchange.answered || exchange.outcome.hasPrefix("no answer") { logger.notice("\(line)") } else { logger.info("\(line)") }
    }

    /// Written whole and renamed into place (an atomic write), so a crash never leaves half a file.
    private func saveLeases(_ text: String, to path: String) {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            logger.error("cannot write the lease file \(path): \(error)")
        }
    }

    /// Reads leases kept by an earlier run.
    public static func loadLeases(path: String) throws(PXEServerError) -> [LeasePool.Lease] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path) else { throw .leaseFile(path, reason: "cannot be read") }
        let (leases, skipped) = LeasePool.parseLeaseFile(String(decoding: data, as: UTF8.self))
        if let line = skipped.first {
            throw .leaseFile(path, reason: "line \(line) is not 'EXPIRES MAC ADDRESS'; fix or delete the file (it is rewritten on the next lease)")
        }
        return leases
    }
}

/// Moves datagrams between a DHCP socket and the server.
final class DHCPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let server: PXEServer
    let port: PXEPort

    init(server: PXEServer, port: PXEPort) {
        self.server = server
        self.port = port
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let reply = server.handle(Array(envelope.data.readableBytesView), from: envelope.remoteAddress, port: port) else { return }
        var buffer = context.channel.allocator.buffer(capacity: reply.data.count)
        buffer.writeBytes(reply.data)
        context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: reply.remoteAddress, data: buffer)), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        server.logger.warning("DHCP socket on port \(port.rawValue): \(error)")
    }
}
