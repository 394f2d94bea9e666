import DropsModel
import Foundation
import NIOConcurrencyHelpers

/// A lab PC's serial console as a byte stream: opened before the PC is switched on, read on
/// a thread of its own until closed or until the other side ends it.
public final class ConsoleStream: Sendable {
    public let source: ConsoleSource
    public let host: String
    private let state = NIOLockedValueBox(State())

    struct State {
        var descriptor: Int32 = -1
        var closing = false
        var telnet = TelnetFilter()
    }

    public init(host: String, source: ConsoleSource) {
        self.host = host
        self.source = source
    }

    /// Connects (or opens the device) and starts reading: `onBytes` gets the console's bytes,
    /// `onEnd` is called once when the stream ends by itself, with the reason.
    public func open(connectSeconds: Double = 10, onBytes: @escaping @Sendable ([UInt8]) -> Void,
                     onEnd: @escaping @Sendable (String) -> Void) throws(LabError) {
        let descriptor: Int32
        switch source {
        case let .tcp(address, port): descriptor = try Self.connect(host: host, address: address, port: port, seconds: connectSeconds)
        case let .tty(path, baud): descriptor = try Self.openTTY(host: host, path: path, baud: baud)
        case .ipmiSOL:
            throw .console(host: host, reason: "IPMI Serial-over-LAN consoles are not supported yet; export the serial port with ser2net (console = \"tcp://HOST:PORT\") or attach a tty")
        }
        let telnet = if case .tcp = source { true } else { false }
        state.withLockedValue { $0.descriptor = descriptor }
        let thread = Thread { [state] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            var reason = "the console closed"
            while true {
                var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                let ready = poll(&poller, 1, 200)
                if state.withLockedValue({ $0.closing }) { return }
                if ready < 0 && errno == EINTR { continue }
                if ready <= 0 { continue }
                let count = read(descriptor, &buffer, buffer.count)
                if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if count <= 0 {
                    if count < 0 { reason = "reading the console failed: \(String(cString: strerror(errno)))" }
                    break
                }
                let bytes = Array(buffer[0..<count])
                let clean = telnet ? state.withLockedValue { $0.telnet.filter(bytes) } : bytes
                if !clean.isEmpty { onBytes(clean) }
            }
            if !state.withLockedValue({ $0.closing }) { onEnd(reason) }
        }
        thread.start()
    }

    public func close() {
        let descriptor = state.withLockedValue { value -> Int32 in
            value.closing = true
            let descriptor = value.descriptor
            value.descriptor = -1
            return descriptor
        }
        // The reader looks at `closing` at least every 200 ms; give it that before closing
        // the descriptor under it.
        usleep(250_000)
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    static func connect(host: String, address: String, port: Int, seconds: Double) throws(LabError) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address, String(port), &hints, &list) == 0, let first = list else {
            throw .console(host: host, reason: "tcp://\(address):\(port): the name \(address) does not resolve")
        }
        defer { freeaddrinfo(list) }
        let descriptor = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw .console(host: host, reason: "no socket: \(String(cString: strerror(errno)))") }
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        var result = Glibc.connect(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen)
        if result != 0 && errno == EINPROGRESS {
            var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            if poll(&poller, 1, Int32(seconds * 1000)) == 1 {
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
                errno = error
                result = error == 0 ? 0 : -1
            } else {
                errno = ETIMEDOUT
            }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            throw .console(host: host, reason: "tcp://\(address):\(port) cannot be reached (\(reason)); is ser2net (or the terminal server) running and the port right?")
        }
        _ = fcntl(descriptor, F_SETFL, flags)
        return descriptor
    }

    static func openTTY(host: String, path: String, baud: Int) throws(LabError) -> Int32 {
        let descriptor = Glibc.open(path, O_RDWR | O_NOCTTY)
        guard descriptor >= 0 else {
            throw .console(host: host, reason: "\(path) cannot be opened (\(String(cString: strerror(errno)))); check the device and that you may read it (group dialout)")
        }
        var settings = termios()
        if tcgetattr(descriptor, &settings) == 0 {
            cfmakeraw(&settings)
            let speeds: [Int: speed_t] = [9600: speed_t(B9600), 19200: speed_t(B19200), 38400: speed_t(B38400),
                                          57600: speed_t(B57600), 115200: speed_t(B115200)]
            if let speed = speeds[baud] {
                cfsetispeed(&settings, speed)
                cfsetospeed(&settings, speed)
            }
            settings.c_cflag |= tcflag_t(CLOCAL | CREAD)
            tcsetattr(descriptor, TCSANOW, &settings)
        }
        return descriptor
    }
}

/// Removes telnet negotiation (RFC 854) from a console stream: terminal servers and
/// ser2net's telnet ports send IAC sequences among the console's bytes. Nothing is answered;
/// `IAC IAC` is a literal 255. Keeps its place across reads.
struct TelnetFilter: Sendable {
    enum Phase: Sendable { case data, command, option, subnegotiation, subnegotiationCommand }
    var phase = Phase.data

    mutating func filter(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for byte in bytes {
            switch phase {
            case .data:
                if byte == 255 { phase = .command } else { out.append(byte) }
            case .command:
                switch byte {
                case 255: out.append(255); phase = .data
                case 251...254: phase = .option
                case 250: phase = .subnegotiation
                default: phase = .data
                }
            case .option:
                phase = .data
            case .subnegotiation:
                if byte == 255 { phase = .subnegotiationCommand }
            case .subnegotiationCommand:
                phase = byte == 240 ? .data : .subnegotiation
            }
        }
        return out
    }
}
