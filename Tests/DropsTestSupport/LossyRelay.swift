import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SplitMix64: a tiny seeded generator, so relays and fuzzers replay the same choices.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A double in 0..<1 built from the top 53 bits.
    public mutating func unit() -> Double {
        Double(next() >> 11) / Double(1 << 53)
    }

    /// Fills `count` bytes, eight at a time, for large deterministic test files.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { raw in
            var index = 0
            while index + 8 <= count {
                raw.storeBytes(of: next().littleEndian, toByteOffset: index, as: UInt64.self)
                index += 8
            }
            if index < count {
                var last = next()
                while index < count {
                    raw[index] = UInt8(truncatingIfNeeded: last)
                    last >>= 8
                    index += 1
                }
            }
        }
        return out
    }
}

public struct UDPSocketError: Error, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var description: String { "\(call): \(String(cString: strerror(code)))" }
}

/// An IPv4 UDP socket on 127.0.0.1, with plain POSIX calls (no event loop needed in tests).
public final class UDPSocket: @unchecked Sendable {
    public let descriptor: CInt
    public let port: UInt16
    private var closed = false
    private let lock = NSLock()

    public init(port: UInt16 = 0) throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw UDPSocketError(call: "socket", code: errno) }
        // Bursts of a window (or of the relay's duplicates) must not overflow the default buffer.
        var size: CInt = 4 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        var address = UDPSocket.loopback(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let code = errno
            Glibc.close(fd)
            throw UDPSocketError(call: "bind", code: code)
        }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        descriptor = fd
        self.port = UInt16(bigEndian: local.sin_port)
    }

    deinit {
        close()
    }

    public func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        Glibc.close(descriptor)
    }

    public static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
        return address
    }

    @discardableResult
    public func send(_ bytes: [UInt8], to port: UInt16) -> Bool {
        send(bytes, to: UDPSocket.loopback(port: port))
    }

    @discardableResult
    public func send(_ bytes: [UInt8], to address: sockaddr_in) -> Bool {
        var destination = address
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &destination) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        return sent == bytes.count
    }

    /// One datagram without waiting, or nil when none is queued.
    public func receiveNow() -> (bytes: [UInt8], from: sockaddr_in)? {
        var buffer = [UInt8](repeating: 0, count: 65536 + 64)
        var source = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &source) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(descriptor, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT), $0, &length)
                }
            }
        }
        guard count >= 0 else { return nil }
        return (Array(buffer[0..<count]), source)
    }

    /// Waits up to `timeout` seconds for one datagram.
    public func receive(timeout: Double) -> (bytes: [UInt8], from: sockaddr_in)? {
        let deadline = monotonicNanoseconds() + UInt64(max(0, timeout) * 1e9)
        while true {
            if let datagram = receiveNow() { return datagram }
            let now = monotonicNanoseconds()
            guard now < deadline else { return nil }
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(min(1000, (deadline - now + 999_999) / 1_000_000))
            _ = poll(&entry, 1, milliseconds)
        }
    }
}

/// Nanoseconds of CLOCK_MONOTONIC.
public func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// A UDP relay on 127.0.0.1 that drops, duplicates, reorders and delays TFTP packets both ways.
/// It mirrors TFTP's port change: one upstream socket per client, one client-side socket per answering server port.
public final class LossyRelay: @unchecked Sendable {
    public struct Statistics: Sendable, Equatable {
        /// Datagrams sent on (a duplicated packet counts twice).
        public var forwarded = 0
        public var dropped = 0
        public var duplicated = 0
        public var reordered = 0
        /// Client addresses seen on the front port.
        public var sessions = 0
    }

    /// The front port clients send their requests to.
    public let port: Int
    public let targetPort: Int
    public let drop: Double
    public let duplicate: Double
    public let reorder: Double
    public let delayMicroseconds: Int
    public let reorderHoldMicroseconds: Int

    private let front: UDPSocket
    private let lock = NSLock()
    private var counters = Statistics()
    private var stopping = false
    private let wakeRead: CInt
    private let wakeWrite: CInt
    private let done = DispatchSemaphore(value: 0)

    private let seed: UInt64
    // Touched only by the relay thread.
    private var sessions: [Endpoint: Session] = [:]
    private var queue: [Outgoing] = []
    private var queueHead = 0

    struct Endpoint: Hashable {
        var address: UInt32
        var port: UInt16
        init(_ socket: sockaddr_in) {
            address = socket.sin_addr.s_addr
            port = UInt16(bigEndian: socket.sin_port)
        }
    }

    struct Outgoing {
        var due: UInt64
        var socket: UDPSocket
        var destination: sockaddr_in
        var bytes: [UInt8]
    }

    /// One direction of one session; it holds at most one packet back for reordering.
    final class Link {
        var held: Outgoing?
        var heldSince: UInt64 = 0
        /// Names the link in the fate of its packets: the session's number and the direction.
        let identity: UInt64
        /// How many copies of each packet (by its fingerprint) this link has seen.
        var copies: [UInt64: UInt64] = [:]
        init(identity: UInt64) { self.identity = identity }
    }

    final class Session {
        let client: sockaddr_in
        let upstream: UDPSocket
        /// Server source port to the relay socket that speaks for it towards the client.
        var mirrors: [UInt16: UDPSocket] = [:]
        let toServer: Link
        let toClient: Link
        init(client: sockaddr_in, upstream: UDPSocket, number: UInt64) {
            self.client = client
            self.upstream = upstream
            toServer = Link(identity: number << 1)
            toClient = Link(identity: number << 1 | 1)
        }
    }

    /// - Parameters:
    ///   - target: the server's request port on 127.0.0.1.
    ///   - drop, duplicate, reorder: shares (0...1) of packets lost, sent twice, or sent after the next one.
    ///   - delayMicroseconds: added to every packet in each direction (the RTT grows by twice it).
    ///   - seed: with the packet, decides each packet's fate, so a run's choices can be replayed
    ///     (see `roll`).
    ///   - reorderHoldMicroseconds: when a held packet is released if none follows, so reordering never becomes loss.
    public init(target: Int, drop: Double = 0, duplicate: Double = 0, reorder: Double = 0,
                delayMicroseconds: Int = 0, seed: UInt64 = 42, reorderHoldMicroseconds: Int = 20_000) throws {
        precondition(drop >= 0 && duplicate >= 0 && reorder >= 0 && drop + duplicate + reorder <= 1)
        targetPort = target
        self.drop = drop
        self.duplicate = duplicate
        self.reorder = reorder
        self.delayMicroseconds = delayMicroseconds
        self.reorderHoldMicroseconds = reorderHoldMicroseconds
        self.seed = seed
        front = try UDPSocket()
        port = Int(front.port)
        var ends: [CInt] = [0, 0]
        guard pipe(&ends) == 0 else { throw UDPSocketError(call: "pipe", code: errno) }
        wakeRead = ends[0]
        wakeWrite = ends[1]
        _ = fcntl(wakeRead, F_SETFL, fcntl(wakeRead, F_GETFL) | O_NONBLOCK)
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.name = "LossyRelay"
        thread.start()
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    public var statistics: Statistics { lock.withLock { counters } }
    public var dropped: Int { statistics.dropped }
    public var duplicated: Int { statistics.duplicated }
    public var reordered: Int { statistics.reordered }
    public var forwarded: Int { statistics.forwarded }

    /// Stops the relay thread and closes every socket; safe to call more than once.
    public func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopping = true }
            return !stopping
        }
        if first {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
        // The semaphore is a gate: whoever passes it opens it again for the next caller.
        done.wait()
        done.signal()
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    private func count(_ change: (inout Statistics) -> Void) {
        lock.withLock { change(&counters) }
    }

    // MARK: - relay thread

    private enum Role {
        case wake
        case front
        case upstream(Session)
        case mirror(Session, serverPort: UInt16)
    }

    private func run() {
        while !isStopping {
            var roles: [Role] = [.wake, .front]
            var descriptors: [pollfd] = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                                         pollfd(fd: front.descriptor, events: Int16(POLLIN), revents: 0)]
            for session in sessions.values {
                roles.append(.upstream(session))
                descriptors.append(pollfd(fd: session.upstream.descriptor, events: Int16(POLLIN), revents: 0))
                for (serverPort, mirror) in session.mirrors {
                    roles.append(.mirror(session, serverPort: serverPort))
                    descriptors.append(pollfd(fd: mirror.descriptor, events: Int16(POLLIN), revents: 0))
                }
            }
            var waitNanoseconds: UInt64 = 100_000_000
            let now = monotonicNanoseconds()
            if let next = nextDeadline() {
                waitNanoseconds = min(waitNanoseconds, next > now ? next - now : 0)
            }
            // poll counts milliseconds: a shorter wait (a 1 ms RTT) polls without blocking, then sleeps the rest.
            let milliseconds = Int32(waitNanoseconds / 1_000_000)
            let ready = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
            if ready == 0 && milliseconds == 0 && waitNanoseconds > 0 {
                usleep(useconds_t(max(1, waitNanoseconds / 1000)))
            }
            if ready > 0 {
                for (index, entry) in descriptors.enumerated() where entry.revents != 0 {
                    switch roles[index] {
                    case .wake:
                        var byte: UInt8 = 0
                        while read(wakeRead, &byte, 1) > 0 {}
                    case .front:
                        while let (bytes, source) = front.receiveNow() { fromClient(bytes, source: source, serverPort: UInt16(targetPort)) }
                    case let .upstream(session):
                        while let (bytes, source) = session.upstream.receiveNow() { fromServer(bytes, source: source, session: session) }
                    case let .mirror(session, serverPort):
                        guard let mirror = session.mirrors[serverPort] else { continue }
                        while let (bytes, source) = mirror.receiveNow() {
                            // Only the session's client speaks to its mirror sockets.
                            guard Endpoint(source) == Endpoint(session.client) else { continue }
                            fromClient(bytes, source: source, serverPort: serverPort)
                        }
                    }
                }
            }
            releaseDue(now: monotonicNanoseconds())
        }
        for session in sessions.values {
            session.upstream.close()
            for mirror in session.mirrors.values { mirror.close() }
        }
        sessions = [:]
        front.close()
    }

    private func fromClient(_ bytes: [UInt8], source: sockaddr_in, serverPort: UInt16) {
        let key = Endpoint(source)
        let session: Session
        if let existing = sessions[key] {
            session = existing
        } else {
            guard let upstream = try? UDPSocket() else { return }
            session = Session(client: source, upstream: upstream, number: UInt64(sessions.count))
            sessions[key] = session
            count { $0.sessions += 1 }
        }
        let packet = Outgoing(due: 0, socket: session.upstream, destination: UDPSocket.loopback(port: serverPort), bytes: bytes)
        pass(packet, on: session.toServer)
    }

    private func fromServer(_ bytes: [UInt8], source: sockaddr_in, session: Session) {
        let serverPort = UInt16(bigEndian: source.sin_port)
        let socket: UDPSocket
        if Int(serverPort) == targetPort {
            // Answers from the request port itself (malformed requests) come from the front port.
            socket = front
        } else if let mirror = session.mirrors[serverPort] {
            socket = mirror
        } else {
            guard let mirror = try? UDPSocket() else { return }
            session.mirrors[serverPort] = mirror
            socket = mirror
        }
        pass(Outgoing(due: 0, socket: socket, destination: session.client, bytes: bytes), on: session.toClient)
    }

    /// A number in 0..<1 that depends only on the seed, the link, the packet's first bytes
    /// (for TFTP: opcode and block, or the request) and how many copies of the same packet
    /// the link saw before. Which side's timer sends a copy first may change from run to run;
    /// what happens to the first, second, ... copy of a block does not.
    static func roll(seed: UInt64, fingerprint: UInt64, copy: UInt64) -> Double {
        var generator = SplitMix64(seed: seed ^ fingerprint &* 0x9E37_79B9_7F4A_7C15 ^ copy)
        return generator.unit()
    }

    /// FNV-1a over the link and the packet's first 64 bytes.
    static func fingerprint(link: UInt64, packet: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in withUnsafeBytes(of: link.littleEndian, Array.init) + packet.prefix(64) {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// Decides the packet's fate with one roll: drop, duplicate, hold back, or pass.
    private func pass(_ packet: Outgoing, on link: Link) {
        let now = monotonicNanoseconds()
        var roll = 1.0
        if drop + duplicate + reorder > 0 {
            let key = Self.fingerprint(link: link.identity, packet: packet.bytes)
            let copy = link.copies[key, default: 0]
            link.copies[key] = copy + 1
            roll = Self.roll(seed: seed, fingerprint: key, copy: copy)
        }
        if roll < drop {
            count { $0.dropped += 1 }
            return
        }
        if roll < drop + duplicate {
            count { $0.duplicated += 1 }
            enqueue(packet, now: now)
            enqueue(packet, now: now)
        } else if roll < drop + duplicate + reorder, link.held == nil {
            count { $0.reordered += 1 }
            link.held = packet
            link.heldSince = now
            return
        } else {
            enqueue(packet, now: now)
        }
        if let held = link.held {
            link.held = nil
            enqueue(held, now: now)
        }
    }

    private func enqueue(_ packet: Outgoing, now: UInt64) {
        count { $0.forwarded += 1 }
        var delayed = packet
        delayed.due = now + UInt64(delayMicroseconds) * 1000
        if delayMicroseconds == 0 {
            delayed.socket.send(delayed.bytes, to: delayed.destination)
        } else {
            // One fixed delay keeps the queue in due order: appending is enough.
            queue.append(delayed)
        }
    }

    private func nextDeadline() -> UInt64? {
        var next: UInt64? = queueHead < queue.count ? queue[queueHead].due : nil
        let hold = UInt64(reorderHoldMicroseconds) * 1000
        for session in sessions.values {
            for link in [session.toServer, session.toClient] where link.held != nil {
                next = min(next ?? .max, link.heldSince + hold)
            }
        }
        return next
    }

    private func releaseDue(now: UInt64) {
        let hold = UInt64(reorderHoldMicroseconds) * 1000
        for session in sessions.values {
            for link in [session.toServer, session.toClient] {
                if let held = link.held, now >= link.heldSince + hold {
                    link.held = nil
                    enqueue(held, now: now)
                }
            }
        }
        while queueHead < queue.count, queue[queueHead].due <= now {
            let packet = queue[queueHead]
            packet.socket.send(packet.bytes, to: packet.destination)
            queueHead += 1
        }
        if queueHead > 4096 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
    }
}
