import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A client that gets its address and a file the way the historic L4Env `tftp` file provider
/// does: GRUB legacy's netboot code (from Etherboot) on a raw network card. It sends
/// DHCPDISCOVER from 0.0.0.0 with the broadcast flag clear, no vendor class and the
/// parameter list 1, 3, 12, 18; takes an answer only when it carries its transaction ID and
/// its MAC; then DHCPREQUEST, DHCPACK, and a TFTP read (`blksize 1432`, `tsize 0`) from
/// port 69 of the next server (siaddr) from a port counting up from 2001.
///
/// Which answers it takes decides whether it boots: Etherboot 5's `await_bootp`, the code
/// this netboot descends from, ignores a reply whose siaddr is 0.0.0.0 (and then sends
/// DISCOVER again, four times in all here); GRUB's own `tftp()` sends to siaddr. The router
/// (option 3) is only the way to a server on another network. So this client needs siaddr,
/// and a server that leaves it out sees four DISCOVERs and no REQUEST.
///
/// It runs in a network namespace on an interface without an IPv4 address, as a PC's card
/// is: DHCP goes through a packet socket (the frames built here, as the netboot driver does),
/// TFTP through a UDP socket once the address from the ACK is put on the interface.
public final class LegacyNetbootClient: @unchecked Sendable {
    public struct Lease: Sendable {
        public var address: String
        public var nextServer: String
        public var router: String?
        public var discovers: Int
    }

    public enum Failure: Error, CustomStringConvertible {
        case system(String)
        case noAnswer(discovers: Int, ignored: [String])
        case noAck
        case tftp(String)

        public var description: String {
            switch self {
            case let .system(text): return text
            case let .noAnswer(discovers, ignored):
                return "no usable DHCP answer after \(discovers) DISCOVERs" + (ignored.isEmpty ? "" : "; ignored: " + ignored.joined(separator: "; "))
            case .noAck: return "DHCPREQUEST got no ACK"
            case let .tftp(text): return "TFTP: \(text)"
            }
        }
    }

    public let namespace: String
    public let interface: String
    public let mac: [UInt8]
    /// DISCOVERs before giving up, as the observed client (MAX_BOOTP_RETRIES there).
    public var attempts = 4
    /// Seconds to wait for each answer (dnsmasq pings an address for about 3 s before it offers it).
    public var wait = 4.0

    public init(namespace: String, interface: String, mac: [UInt8]) {
        self.namespace = namespace
        self.interface = interface
        self.mac = mac
    }

    /// Runs `body` on a thread that has entered the namespace (a network namespace is per thread).
    public func inNamespace<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        let result = LockedResult<T>()
        let thread = Thread {
            let descriptor = open("/run/netns/\(self.namespace)", O_RDONLY)
            guard descriptor >= 0, let enter = Self.setns, enter(descriptor, 0x4000_0000 /* CLONE_NEWNET */) == 0 else {
                result.set(.failure(Failure.system("cannot enter the network namespace \(self.namespace): \(String(cString: strerror(errno)))")))
                return
            }
            close(descriptor)
            result.set(Result { try body() })
        }
        thread.start()
        return try result.wait().get()
    }

    /// glibc's setns(2), which Swift's Glibc module leaves out (it needs _GNU_SOURCE).
    static let setns: (@convention(c) (Int32, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }()

    /// DHCP from DISCOVER to ACK; puts the address on the interface.
    public func lease() throws -> Lease {
        try inNamespace { try self.dhcp() }
    }

    /// Reads `name` from port 69 of `server`; returns its bytes.
    public func fetch(_ name: String, from server: String, sourcePort: UInt16 = 2001) throws -> [UInt8] {
        try inNamespace { try self.tftpRead(name, server: server, sourcePort: sourcePort) }
    }

    // MARK: DHCP

    private func dhcp() throws -> Lease {
        let index = if_nametoindex(interface)
        guard index != 0 else { throw Failure.system("no interface \(interface) in \(namespace)") }
        let fd = socket(AF_PACKET, Int32(SOCK_DGRAM.rawValue), Int32(UInt16(0x0800).bigEndian))
        guard fd >= 0 else { throw Failure.system("packet socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var link = LinkAddress()
        link.family = UInt16(AF_PACKET)
        link.protocolNumber = UInt16(0x0800).bigEndian
        link.interfaceIndex = Int32(index)
        link.addressLength = 6
        link.address = (0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0)
        var bound = link
        let bindResult = withUnsafePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<LinkAddress>.size)) } }
        guard bindResult == 0 else { throw Failure.system("bind: \(String(cString: strerror(errno)))") }

        let xid = UInt32.random(in: 1...UInt32.max)
        var ignored: [String] = []
        for attempt in 1...attempts {
            try send(fd, link: link, message(type: 1, xid: xid, extra: []))
            guard let offer = try receive(fd, xid: xid, until: Date().addingTimeInterval(wait), ignored: &ignored), offer.type == 2 else { continue }
            let request = message(type: 3, xid: xid, extra: [54, 4] + offer.serverID + [50, 4] + offer.yiaddr)
            // As GRUB's REQUEST loop: any answer but an ACK (a late OFFER) sends it again.
            var acknowledged: Reply?
            for _ in 1...attempts where acknowledged == nil {
                try send(fd, link: link, request)
                if let reply = try receive(fd, xid: xid, until: Date().addingTimeInterval(wait), ignored: &ignored), reply.type == 5 { acknowledged = reply }
            }
            guard let ack = acknowledged else { throw Failure.noAck }
            let address = ack.yiaddr.map(String.init).joined(separator: ".")
            try configure(address)
            return Lease(address: address, nextServer: ack.siaddr.map(String.init).joined(separator: "."),
                         router: ack.router.map { $0.map(String.init).joined(separator: ".") }, discovers: attempt)
        }
        throw Failure.noAnswer(discovers: attempts, ignored: ignored)
    }

    /// GRUB's DISCOVER/REQUEST layout: BOOTP header, cookie, type, max size, parameters 1, 3, 12, 18.
    private func message(type: UInt8, xid: UInt32, extra: [UInt8]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 236)
        bytes[0] = 1; bytes[1] = 1; bytes[2] = 6
        withUnsafeBytes(of: xid.bigEndian) { for i in 0..<4 { bytes[4 + i] = $0[i] } }
        for i in 0..<6 { bytes[28 + i] = mac[i] }
        bytes += [99, 130, 83, 99, 53, 1, type] + extra + [57, 2, 0x05, 0xDC, 55, 4, 1, 3, 12, 18, 255]
        return bytes + [UInt8](repeating: 0, count: max(0, 300 - bytes.count))
    }

    private func send(_ fd: Int32, link: LinkAddress, _ payload: [UInt8]) throws {
        var packet = [UInt8](repeating: 0, count: 28) + payload
        let total = UInt16(packet.count)
        packet[0] = 0x45; packet[2] = UInt8(total >> 8); packet[3] = UInt8(total & 0xFF)
        packet[8] = 60; packet[9] = 17
        for i in 16..<20 { packet[i] = 0xFF }
        let checksum = Self.checksum(packet[0..<20])
        packet[10] = UInt8(checksum >> 8); packet[11] = UInt8(checksum & 0xFF)
        packet[20] = 0; packet[21] = 68; packet[22] = 0; packet[23] = 67
        let udpLength = UInt16(packet.count - 20)
        packet[24] = UInt8(udpLength >> 8); packet[25] = UInt8(udpLength & 0xFF)
        var target = link
        let sent = packet.withUnsafeBytes { buffer in
            withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<LinkAddress>.size)) }
            }
        }
        guard sent == packet.count else { throw Failure.system("sendto: \(String(cString: strerror(errno)))") }
    }

    struct Reply {
        var type: UInt8
        var yiaddr: [UInt8]
        var siaddr: [UInt8]
        var serverID: [UInt8]
        var router: [UInt8]?
    }

    /// The next reply this client takes, applying its acceptance rules; nil on timeout.
    private func receive(_ fd: Int32, xid: UInt32, until deadline: Date, ignored: inout [String]) throws -> Reply? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            guard poll(&poller, 1, remaining) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 28 else { continue }
            let packet = Array(buffer[0..<count])
            // An IPv4 header without options and a good checksum, UDP to port 68, not a fragment.
            guard packet[0] == 0x45, packet[9] == 17, Self.checksum(packet[0..<20]) == 0,
                  packet[6] & 0x3F == 0, packet[7] == 0, packet[22] == 0, packet[23] == 68 else { continue }
            let bootp = Array(packet[28...])
            guard bootp.count >= 240, bootp[0] == 2 else { continue }
            let replyXID = bootp[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard replyXID == xid, Array(bootp[28..<34]) == mac || bootp[28..<34].allSatisfy({ $0 == 0xFF }) else { continue }
            var reply = Reply(type: 0, yiaddr: Array(bootp[16..<20]), siaddr: Array(bootp[20..<24]), serverID: [0, 0, 0, 0], router: nil)
            var position = 240
            while position < bootp.count, bootp[position] != 255 {
                let code = bootp[position]
                if code == 0 { position += 1; continue }
                guard position + 1 < bootp.count else { break }
                let length = Int(bootp[position + 1])
                let value = Array(bootp[min(bootp.count, position + 2)..<min(bootp.count, position + 2 + length)])
                switch code {
                case 53: reply.type = value.first ?? 0
                case 54 where value.count == 4: reply.serverID = value
                case 3 where value.count >= 4: reply.router = Array(value[0..<4])
                default: break
                }
                position += 2 + length
            }
            if reply.siaddr == [0, 0, 0, 0] {
                ignored.append("message type \(reply.type) with no next server (siaddr 0.0.0.0)")
                continue
            }
            return reply
        }
        return nil
    }

    private func configure(_ address: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["-n", namespace, "addr", "add", address + "/24", "dev", interface]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Failure.system("ip addr add \(address) failed") }
    }

    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var index = bytes.startIndex
        while index + 1 < bytes.endIndex {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.endIndex { sum += UInt32(bytes[index]) << 8 }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    // MARK: TFTP

    private func tftpRead(_ name: String, server: String, sourcePort: UInt16) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.system("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_port = sourcePort.bigEndian
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw Failure.system("bind port \(sourcePort): \(String(cString: strerror(errno)))") }
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = UInt16(69).bigEndian
        inet_pton(AF_INET, server, &remote.sin_addr)
        let request: [UInt8] = [0, 1] + Array(name.utf8) + [0] + Array("octet".utf8) + [0] + Array("blksize".utf8) + [0] + Array("1432".utf8) + [0]
            + Array("tsize".utf8) + [0, 0x30, 0]
        try sendUDP(fd, request, to: remote)
        var data: [UInt8] = []
        var expected: UInt16 = 1
        var blockSize = 512
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 5000) > 0 else { throw Failure.tftp("no answer from \(server) port 69 for \(name)") }
            var from = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) } }
            guard count >= 4 else { continue }
            let opcode = UInt16(buffer[0]) << 8 | UInt16(buffer[1])
            switch opcode {
            case 6:
                // OACK: blksize as granted; acknowledged with block 0.
                let fields = buffer[2..<count].split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
                if let at = fields.firstIndex(of: "blksize"), at + 1 < fields.count, let size = Int(fields[at + 1]) { blockSize = size }
                try sendUDP(fd, [0, 4, 0, 0], to: from)
            case 3:
                let block = UInt16(buffer[2]) << 8 | UInt16(buffer[3])
                if block == expected {
                    data += buffer[4..<count]
                    expected &+= 1
                }
                try sendUDP(fd, [0, 4, UInt8(block >> 8), UInt8(block & 0xFF)], to: from)
                if block == expected &- 1 && count - 4 < blockSize { return data }
            case 5:
                throw Failure.tftp("error \(UInt16(buffer[2]) << 8 | UInt16(buffer[3])): \(String(decoding: buffer[4..<count].prefix { $0 != 0 }, as: UTF8.self))")
            default:
                continue
            }
        }
    }

    private func sendUDP(_ fd: Int32, _ bytes: [UInt8], to address: sockaddr_in) throws {
        var target = address
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard sent == bytes.count else { throw Failure.system("sendto: \(String(cString: strerror(errno)))") }
    }
}

/// struct sockaddr_ll (linux/if_packet.h), which Swift's Glibc module does not import.
struct LinkAddress {
    var family: UInt16 = 0
    var protocolNumber: UInt16 = 0
    var interfaceIndex: Int32 = 0
    var hardwareType: UInt16 = 0
    var packetType: UInt8 = 0
    var addressLength: UInt8 = 0
    var address: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0)
}

/// A result handed from a thread to its waiter.
final class LockedResult<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var value: Result<T, Error>?

    func set(_ result: Result<T, Error>) {
        value = result
        done.signal()
    }

    func wait() -> Result<T, Error> {
        done.wait()
        return value!
    }
}
