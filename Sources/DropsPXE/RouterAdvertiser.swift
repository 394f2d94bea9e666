import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// ICMPv6 router discovery messages (RFC 4861, section 4), as far as this server needs them:
/// recognising a Router Solicitation and writing the Router Advertisement that answers it.
public enum RouterDiscovery {
    public static let solicitation: UInt8 = 133
    public static let advertisement: UInt8 = 134

    /// True for a Router Solicitation: type 133, code 0, at least its 8 bytes.
    public static func isSolicitation(_ message: [UInt8]) -> Bool {
        message.count >= 8 && message[0] == solicitation && message[1] == 0
    }

    /// An advertisement that says "no router here, no addresses from DHCPv6": hop limit 0
    /// (unspecified), the M and O flags clear, router lifetime 0 (not a default router), no
    /// prefix. iPXE ends its IPv6 configuration at the first solicited advertisement with M and
    /// O clear; without one it waits about 15 s on every boot of an IPv4-only network. The
    /// kernel fills in the checksum of a raw ICMPv6 socket. `mac`: the source link-layer
    /// address option, so the answer names its sender.
    public static func emptyAdvertisement(mac: [UInt8]?) -> [UInt8] {
        var message: [UInt8] = [advertisement, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        if let mac, mac.count == 6 { message += [1, 1] + mac }
        return message
    }
}

/// Answers IPv6 Router Solicitations on one interface with `RouterDiscovery.emptyAdvertisement`
/// (`drops-serve pxe --router-advert`), on a thread of its own, through a raw ICMPv6 socket
/// bound to the interface and joined to the all-routers group.
public final class RouterAdvertiser: @unchecked Sendable {
    public let interface: String
    private let logger: Logger
    private let lock = NSLock()
    private var descriptor: Int32 = -1
    private var stopping = false

    public init(interface: String, logger: Logger) {
        self.interface = interface
        self.logger = logger
    }

    /// Opens the socket and starts answering; throws when the socket cannot be set up (no root,
    /// IPv6 disabled on the interface).
    public func start() throws(PXEServerError) {
        let index = if_nametoindex(interface)
        guard index != 0 else { throw .routerAdvertisements(interface, reason: "the interface does not exist") }
        let socket = Glibc.socket(AF_INET6, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMPV6))
        guard socket >= 0 else { throw .routerAdvertisements(interface, reason: "no raw ICMPv6 socket for router advertisements: \(String(cString: strerror(errno))) (needs root or CAP_NET_RAW)") }
        func option(_ level: Int32, _ name: Int32, _ value: Int32) -> Bool {
            var value = value
            return setsockopt(socket, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0
        }
        // RFC 4861 6.1.2: hosts drop discovery messages whose hop limit is not 255.
        var ok = option(Int32(IPPROTO_IPV6), IPV6_MULTICAST_HOPS, 255) && option(Int32(IPPROTO_IPV6), IPV6_UNICAST_HOPS, 255)
            && option(Int32(IPPROTO_IPV6), IPV6_MULTICAST_IF, Int32(index)) && option(Int32(IPPROTO_IPV6), IPV6_MULTICAST_LOOP, 0)
        ok = ok && interface.withCString { name in
            setsockopt(socket, SOL_SOCKET, SO_BINDTODEVICE, name, socklen_t(strlen(name) + 1)) == 0
        }
        var group = ipv6_mreq()
        group.ipv6mr_multiaddr = Self.address("ff02::2")
        group.ipv6mr_interface = index
        ok = ok && setsockopt(socket, Int32(IPPROTO_IPV6), IPV6_ADD_MEMBERSHIP, &group, socklen_t(MemoryLayout<ipv6_mreq>.size)) == 0
        guard ok else {
            let reason = String(cString: strerror(errno))
            close(socket)
            throw .routerAdvertisements(interface, reason: "cannot listen for IPv6 router solicitations: \(reason) (is IPv6 disabled on it?)")
        }
        lock.withLock { descriptor = socket }
        let mac = Self.hardwareAddress(interface)
        let thread = Thread { [self] in serve(socket: socket, index: index, mac: mac) }
        thread.start()
    }

    public func stop() {
        let socket = lock.withLock { () -> Int32 in
            stopping = true
            defer { descriptor = -1 }
            return descriptor
        }
        // The thread looks at `stopping` at least every 200 ms.
        usleep(250_000)
        if socket >= 0 { close(socket) }
    }

    private func serve(socket: Int32, index: UInt32, mac: [UInt8]?) {
        var buffer = [UInt8](repeating: 0, count: 1500)
        let answer = RouterDiscovery.emptyAdvertisement(mac: mac)
        while !lock.withLock({ stopping }) {
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            var source = sockaddr_in6()
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            let count = withUnsafeMutablePointer(to: &source) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(socket, &buffer, buffer.count, 0, $0, &length) }
            }
            guard count > 0, RouterDiscovery.isSolicitation(Array(buffer[0..<count])) else { continue }
            var destination = sockaddr_in6()
            destination.sin6_family = sa_family_t(AF_INET6)
            destination.sin6_addr = Self.address("ff02::1")
            destination.sin6_scope_id = index
            let sent = withUnsafePointer(to: &destination) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(socket, answer, answer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
            let from = Self.text(source.sin6_addr)
            if sent == answer.count {
                logger.notice("router advertisement on \(interface) for \(from): no IPv6 router here (so iPXE stops waiting for one)")
            } else {
                logger.warning("cannot answer the router solicitation of \(from) on \(interface): \(String(cString: strerror(errno)))")
            }
        }
    }

    static func address(_ text: String) -> in6_addr {
        var address = in6_addr()
        _ = inet_pton(AF_INET6, text, &address)
        return address
    }

    static func text(_ address: in6_addr) -> String {
        var address = address
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(cString: buffer)
    }

    /// The interface's MAC address, from sysfs.
    static func hardwareAddress(_ interface: String) -> [UInt8]? {
        guard let text = try? String(contentsOfFile: "/sys/class/net/\(interface)/address", encoding: .utf8) else { return nil }
        let bytes = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").compactMap { UInt8($0, radix: 16) }
        return bytes.count == 6 ? bytes : nil
    }
}
