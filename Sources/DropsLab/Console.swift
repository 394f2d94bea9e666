import DropsModel
import DropsProcess
import Foundation
import NIOConcurrencyHelpers

/// A lab PC's serial console as a byte stream: opened before the PC is switched on, read on
/// a thread of its own until closed or until the other side ends it.
public final class ConsoleStream: Sendable {
    public let source: ConsoleSource
    public let host: String
    /// The BMC whose Serial-over-LAN is the console (`ipmi-sol`).
    public let bmc: IPMIAccess?
    private let state = NIOLockedValueBox(State())

    struct State {
        var descriptor: Int32 = -1
        var closing = false
        var telnet = TelnetFilter()
        var sol: SerialOverLAN?
    }

    public init(host: String, source: ConsoleSource, bmc: IPMIAccess? = nil) {
        self.host = host
        self.source = source
        self.bmc = bmc
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
            guard let bmc else { throw .console(host: host, reason: "console = \"ipmi-sol\" needs the host's power = { ipmi = { … } }, whose BMC carries it") }
            let sol = try SerialOverLAN(host: host, bmc: bmc, seconds: connectSeconds)
            state.withLockedValue { $0.sol = sol }
            descriptor = sol.descriptor
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
                    // A terminal's master reads EIO once its other side is gone: ipmitool ended.
                    if count < 0 && errno == EIO && state.withLockedValue({ $0.sol != nil }) {
                        reason = "the Serial-over-LAN session ended (ipmitool sol activate exited)"
                    } else if count < 0 {
                        reason = "reading the console failed: \(String(cString: strerror(errno)))"
                    }
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
        let (descriptor, sol) = state.withLockedValue { value -> (Int32, SerialOverLAN?) in
            value.closing = true
            let descriptor = value.descriptor
            value.descriptor = -1
            defer { value.sol = nil }
            return (descriptor, value.sol)
        }
        // The reader looks at `closing` at least every 200 ms; give it that before closing
        // the descriptor under it.
        usleep(250_000)
        // The SOL session is ended through its terminal before the terminal is closed.
        sol?.end(masterOpen: descriptor >= 0)
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

/// A BMC's Serial-over-LAN session through `ipmitool sol activate`: its standard output is
/// the console. The session a crashed run left open is ended first (a BMC refuses a second
/// one: "SOL payload already active on another session"); the console counts as open once
/// ipmitool says the session is operational, and that line is not the PC's.
final class SerialOverLAN: Sendable {
    let process: Process
    /// The master side of the pseudo-terminal ipmitool runs on: its output is read here,
    /// its escapes (`~.` ends the session) are written here. A terminal, not pipes: ipmitool
    /// buffers what it writes to a pipe, and an end of file on its input ends the session.
    let descriptor: Int32
    let access: IPMIAccess
    let host: String

    static let banner = "[SOL Session operational"

    init(host: String, bmc: IPMIAccess, seconds: Double) throws(LabError) {
        self.host = host
        access = bmc
        do { try bmc.checkPasswordFile() } catch { throw .console(host: host, reason: error.description) }
        let words = IPMIPowerSwitch(host: host, access: bmc).arguments
        // A BMC that does not answer is told here: ipmitool gives up on it after about 20 s.
        if let run = Self.deactivate(words), run.timedOut || run.errors.contains("Unable to establish") {
            throw .console(host: host, reason: "the BMC \(bmc.host):\(bmc.port) does not answer ipmitool sol deactivate (\(run.failure)); check its address, user and password file")
        }
        guard let (master, slave) = Self.openTerminal() else {
            throw .console(host: host, reason: "no pseudo-terminal for ipmitool: \(String(cString: strerror(errno)))")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProgramRun.resolve(words[0]))
        process.arguments = Array(words.dropFirst()) + ["sol", "activate"]
        let terminal = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        let errors = Pipe()
        process.standardInput = terminal
        process.standardOutput = terminal
        process.standardError = errors
        do { try process.run() } catch {
            Glibc.close(master)
            Glibc.close(slave)
            throw .console(host: host, reason: "cannot start ipmitool for Serial-over-LAN: \(error.localizedDescription) (install Debian's ipmitool)")
        }
        // ipmitool holds the terminal now; ours would keep it open after ipmitool ends.
        Glibc.close(slave)
        self.process = process
        descriptor = master
        // Until the banner line: what else ipmitool says there is its reason for failing.
        var said: [UInt8] = []
        let deadline = Date().addingTimeInterval(seconds)
        while !said.contains(0x0A) && Date() < deadline {
            var poller = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) >= 0 || errno == EINTR else { break }
            guard poller.revents != 0 else { continue }
            var byte: UInt8 = 0
            guard read(master, &byte, 1) == 1 else { break }
            said.append(byte)
        }
        let line = String(decoding: said, as: UTF8.self)
        guard line.hasPrefix(Self.banner) else {
            Programs.stop(process, grace: 1)
            Self.deactivate(words)
            let complaint = (line + "\n" + String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
                .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.contains("Unable to Get Channel Cipher Suites") }
                .suffix(2).joined(separator: " / ")
            Glibc.close(master)
            throw .console(host: host, reason: "ipmitool sol activate against \(bmc.host):\(bmc.port) "
                           + (complaint.isEmpty ? "opened no session within \(Int(seconds)) s" : "failed: \(complaint)")
                           + "; check that the BMC has Serial-over-LAN enabled for user \(bmc.user)")
        }
    }

    /// A pseudo-terminal (master, slave), raw: nothing echoed or translated.
    static func openTerminal() -> (Int32, Int32)? {
        guard let (master, device) = PseudoTerminalDevice.open() else { return nil }
        let slave = Glibc.open(device, O_RDWR | O_NOCTTY)
        guard slave >= 0 else {
            Glibc.close(master)
            return nil
        }
        return (master, slave)
    }

    /// Ends the BMC's session, whoever opened it (a BMC takes one at a time). "already
    /// de-activated" is the usual answer, and fine.
    @discardableResult
    static func deactivate(_ words: [String]) -> ProgramRun? {
        try? ProgramRun.run(words + ["sol", "deactivate"], seconds: 30)
    }

    /// Ends the session as a person would (`~.` at the start of a line), then ipmitool; a
    /// session it could not end is deactivated, so the next run gets one. ConsoleStream has
    /// closed the terminal's master by then only if ipmitool ended first.
    func end(masterOpen: Bool) {
        if masterOpen && process.isRunning {
            let escape = Array("\r~.".utf8)
            _ = escape.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        }
        let deadline = Date().addingTimeInterval(2)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        let clean = !process.isRunning
        Programs.stop(process, grace: 1)
        if !clean { Self.deactivate(IPMIPowerSwitch(host: host, access: access).arguments) }
    }
}

/// A new pseudo-terminal: its master's descriptor and its slave's device path, set raw (the
/// line discipline echoes and translates nothing). Its slave stands for a serial line:
/// ipmitool's terminal here, a QEMU guest's serial port in the tests.
public enum PseudoTerminalDevice {
    public static func open() -> (master: Int32, device: String)? {
        let master = Glibc.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0 else { return nil }
        var unlock: Int32 = 0
        var number: UInt32 = 0
        // TIOCSPTLCK and TIOCGPTN: posix_openpt's unlockpt and ptsname, which Glibc's module lacks.
        guard ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else {
            Glibc.close(master)
            return nil
        }
        var settings = termios()
        tcgetattr(master, &settings)
        cfmakeraw(&settings)
        tcsetattr(master, TCSANOW, &settings)
        return (master, "/dev/pts/\(number)")
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
