import Foundation

/// How a lab PC is switched on and off (a host's `power` in the hosts file):
///
///     power = { ipmi = { host = "10.0.0.50", user = "admin", password_file = "/etc/drops/pc07.ipmi" } }
///     power = { wol = {} }                                   # on only: a magic packet to the MAC
///     power = { on = ["pdu", "on", "7"], off = ["pdu", "off", "7"], status = ["pdu", "status", "7"] }
///
/// Commands are argument vectors, never shell strings. A `status` command prints `on` or
/// `off` as its first word. After each switch, the state must show within `deadline` seconds.
public struct PowerControl: Sendable, Equatable {
    public var ipmi: IPMIAccess?
    public var wakeOnLAN: WakeOnLAN?
    public var on: [String]?
    public var off: [String]?
    public var cycle: [String]?
    public var status: [String]?
    /// Seconds a switch may take to show in `status`.
    public var deadline: Double = 30
    public var location: SourceLocation

    static let keys = ["ipmi", "wol", "on", "off", "cycle", "status", "deadline"]

    public init(ipmi: IPMIAccess? = nil, wakeOnLAN: WakeOnLAN? = nil, on: [String]? = nil, off: [String]? = nil,
                cycle: [String]? = nil, status: [String]? = nil, deadline: Double = 30, location: SourceLocation) {
        self.ipmi = ipmi
        self.wakeOnLAN = wakeOnLAN
        self.on = on
        self.off = off
        self.cycle = cycle
        self.status = status
        self.deadline = deadline
        self.location = location
    }

    /// True when something can switch the machine off (IPMI, or an `off` command).
    public var canSwitchOff: Bool { ipmi != nil || off != nil }
}

/// A BMC reached with ipmitool (`-I lanplus -H host -p port -U user -f password_file`).
public struct IPMIAccess: Sendable, Equatable {
    public var host: String
    public var port = 623
    public var user: String
    /// The file holding the password; the hosts file never holds one itself.
    public var passwordFile: String
    public var interface = "lanplus"
    /// RMCP+ cipher suite (lanplus): 3 by default, which every IPMI 2.0 BMC offers. Without
    /// one, ipmitool first asks the BMC for its list, and against BMCs that do not answer
    /// that (ipmi_sim among them) every call waits 10 s for it.
    public var cipherSuite = 3
    public var location: SourceLocation

    static let keys = ["host", "port", "user", "password_file", "interface", "cipher_suite"]
    public static let interfaces = ["lanplus", "lan"]

    public init(host: String, port: Int = 623, user: String, passwordFile: String, interface: String = "lanplus", location: SourceLocation) {
        self.host = host
        self.port = port
        self.user = user
        self.passwordFile = passwordFile
        self.interface = interface
        self.location = location
    }

    /// Checks that the password file exists and only its owner can read it (mode 0600 or
    /// stricter), as ipmitool's own `-f` expects of a secret.
    public func checkPasswordFile() throws(ModelError) {
        var info = stat()
        guard stat(passwordFile, &info) == 0 else {
            throw .invalidValue(location, key: "password_file", message: "\(passwordFile) cannot be read (\(String(cString: strerror(errno)))); write the BMC's password into it and chmod 600 it")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw .invalidValue(location, key: "password_file", message: "\(passwordFile) is not a plain file")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw .invalidValue(location, key: "password_file",
                                message: "\(passwordFile) can be read by others (mode \(String(mode, radix: 8))); a password file must be the owner's only: chmod 600 \(passwordFile)")
        }
    }
}

/// Wake-on-LAN: a magic packet (6 × 0xFF, then the MAC 16 times) to UDP `port` of `broadcast`.
public struct WakeOnLAN: Sendable, Equatable {
    public var broadcast = "255.255.255.255"
    public var port = 9
    static let keys = ["broadcast", "port"]

    public init(broadcast: String = "255.255.255.255", port: Int = 9) {
        self.broadcast = broadcast
        self.port = port
    }
}

/// Where a lab PC's serial console is read (a host's `console`):
///
///     console = "tcp://10.0.0.9:7007"                  # ser2net, conserver, a terminal server
///     console = { url = "/dev/ttyUSB0", baud = 115200 }
///     console = "ipmi-sol"                             # Serial-over-LAN through the power's BMC
public enum ConsoleSource: Sendable, Equatable {
    case tcp(host: String, port: Int)
    case tty(path: String, baud: Int)
    case ipmiSOL

    public static let bauds = [9600, 19200, 38400, 57600, 115200]
    static let keys = ["url", "baud"]

    /// Reads `tcp://HOST:PORT`, an absolute device path, or `ipmi-sol`; nil with the reason.
    public static func parse(_ text: String, baud: Int) -> (ConsoleSource?, String) {
        if text == "ipmi-sol" { return (.ipmiSOL, "") }
        if text.hasPrefix("/") { return (.tty(path: text, baud: baud), "") }
        guard text.hasPrefix("tcp://") else {
            return (nil, "'\(text)' is not a console: write tcp://HOST:PORT, a device such as /dev/ttyS0, or ipmi-sol")
        }
        let rest = text.dropFirst("tcp://".count)
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            return (nil, "'\(text)' has no port: write tcp://HOST:PORT, such as tcp://10.0.0.9:7007")
        }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains("/") else { return (nil, "'\(text)' has no host name before the port") }
        return (.tcp(host: host, port: port), "")
    }

    public var description: String {
        switch self {
        case let .tcp(host, port): return "tcp://\(host):\(port)"
        case let .tty(path, baud): return "\(path) at \(baud) baud"
        case .ipmiSOL: return "IPMI Serial-over-LAN"
        }
    }
}

extension HostTable {
    static func decodePower(_ node: TOMLNode, key: String, locator: TOMLKeyLocator) throws(ModelError) -> PowerControl {
        let at = locator.location(key)
        guard case let .table(entries) = node else {
            throw .invalidValue(at, key: key, message: "must be a table such as { ipmi = { host = \"…\", user = \"…\", password_file = \"…\" } }, found \(node.typeName)")
        }
        var power = PowerControl(location: at)
        for (name, value) in entries {
            let full = "\(key).\(name)"
            switch name {
            case "ipmi": power.ipmi = try decodeIPMI(value, key: full, at: locator.location(full))
            case "wol": power.wakeOnLAN = try decodeWakeOnLAN(value, key: full, at: locator.location(full))
            case "on", "off", "cycle", "status":
                let words = try ProfileDecoder.strings(value, key: full, at: at)
                guard let program = words.first, !program.isEmpty else {
                    throw .invalidValue(at, key: full, message: "is empty; give the command as an argument vector, such as [\"pdu\", \"\(name)\", \"7\"]")
                }
                switch name {
                case "on": power.on = words
                case "off": power.off = words
                case "cycle": power.cycle = words
                default: power.status = words
                }
            case "deadline":
                let seconds = try number(value, key: full, at: at)
                guard seconds > 0 && seconds <= 600 else { throw .invalidValue(at, key: full, message: "must be between 0 and 600 seconds") }
                power.deadline = seconds
            default:
                throw .unknownKey(at, key: full, known: PowerControl.keys)
            }
        }
        if power.ipmi != nil && power.wakeOnLAN != nil {
            throw .invalidValue(at, key: key, message: "names both ipmi and wol; choose one way to switch this machine")
        }
        guard power.ipmi != nil || power.wakeOnLAN != nil || power.on != nil || power.cycle != nil else {
            throw .invalidValue(at, key: key, message: "has no way to switch the machine on: give ipmi = { … }, wol = {} or on = [\"command\", …]")
        }
        return power
    }

    static func decodeIPMI(_ node: TOMLNode, key: String, at: SourceLocation) throws(ModelError) -> IPMIAccess {
        guard case let .table(entries) = node else {
            throw .invalidValue(at, key: key, message: "must be a table { host = \"…\", user = \"…\", password_file = \"…\" }, found \(node.typeName)")
        }
        var host: String?
        var user: String?
        var passwordFile: String?
        var port = 623
        var interface = "lanplus"
        var cipherSuite = 3
        for (name, value) in entries {
            let full = "\(key).\(name)"
            switch name {
            case "host": host = try ProfileDecoder.string(value, key: full, at: at)
            case "user": user = try ProfileDecoder.string(value, key: full, at: at)
            case "password_file": passwordFile = try ProfileDecoder.string(value, key: full, at: at)
            case "port":
                guard case let .integer(number) = value, (1...65535).contains(number) else {
                    throw .invalidValue(at, key: full, message: "must be a port number from 1 to 65535")
                }
                port = number
            case "interface":
                interface = try ProfileDecoder.string(value, key: full, at: at)
                guard IPMIAccess.interfaces.contains(interface) else {
                    throw .invalidValue(at, key: full, message: "'\(interface)' is not an ipmitool LAN interface; use lanplus (IPMI 2.0) or lan (1.5)")
                }
            case "cipher_suite":
                guard case let .integer(number) = value, (0...17).contains(number) else {
                    throw .invalidValue(at, key: full, message: "must be an RMCP+ cipher suite number from 0 to 17 (3 on most BMCs, 17 for SHA-256)")
                }
                cipherSuite = number
            case "password":
                throw .invalidValue(at, key: full, message: "a password never goes into the hosts file; put it into a file only you can read and name it with password_file")
            default:
                throw .unknownKey(at, key: full, known: IPMIAccess.keys)
            }
        }
        guard let host, !host.isEmpty else { throw .invalidValue(at, key: key, message: "has no host: the BMC's address") }
        guard let user else { throw .invalidValue(at, key: key, message: "has no user: the BMC's user name") }
        guard let passwordFile, !passwordFile.isEmpty else {
            throw .invalidValue(at, key: key, message: "has no password_file: a file (mode 0600) holding the BMC's password")
        }
        let directory = (at.file as NSString).deletingLastPathComponent
        let path = passwordFile.hasPrefix("/") || directory.isEmpty ? passwordFile : directory + "/" + passwordFile
        var access = IPMIAccess(host: host, port: port, user: user, passwordFile: path, interface: interface, location: at)
        access.cipherSuite = cipherSuite
        return access
    }

    static func decodeWakeOnLAN(_ node: TOMLNode, key: String, at: SourceLocation) throws(ModelError) -> WakeOnLAN {
        if case .boolean(true) = node { return WakeOnLAN() }
        guard case let .table(entries) = node else {
            throw .invalidValue(at, key: key, message: "must be a table such as {} or { broadcast = \"10.0.0.255\", port = 9 }, found \(node.typeName)")
        }
        var wake = WakeOnLAN()
        for (name, value) in entries {
            let full = "\(key).\(name)"
            switch name {
            case "broadcast":
                wake.broadcast = try ProfileDecoder.string(value, key: full, at: at)
                let parts = wake.broadcast.split(separator: ".", omittingEmptySubsequences: false)
                guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else {
                    throw .invalidValue(at, key: full, message: "'\(wake.broadcast)' is not an IPv4 address such as 10.0.0.255")
                }
            case "port":
                guard case let .integer(number) = value, (1...65535).contains(number) else {
                    throw .invalidValue(at, key: full, message: "must be a port number (Wake-on-LAN uses 9 or 7)")
                }
                wake.port = number
            default:
                throw .unknownKey(at, key: full, known: WakeOnLAN.keys)
            }
        }
        return wake
    }

    static func decodeConsole(_ node: TOMLNode, key: String, at: SourceLocation) throws(ModelError) -> ConsoleSource {
        var url: String?
        var baud = 115200
        switch node {
        case let .string(text):
            url = text
        case let .table(entries):
            for (name, value) in entries {
                let full = "\(key).\(name)"
                switch name {
                case "url": url = try ProfileDecoder.string(value, key: full, at: at)
                case "baud":
                    guard case let .integer(number) = value, ConsoleSource.bauds.contains(number) else {
                        throw .invalidValue(at, key: full, message: "must be one of \(ConsoleSource.bauds.map(String.init).joined(separator: ", "))")
                    }
                    baud = number
                default:
                    throw .unknownKey(at, key: full, known: ConsoleSource.keys)
                }
            }
        default:
            throw .invalidValue(at, key: key, message: "must be a string such as \"tcp://10.0.0.9:7007\" or a table { url = \"/dev/ttyUSB0\", baud = 115200 }, found \(node.typeName)")
        }
        guard let url else { throw .invalidValue(at, key: key, message: "has no url") }
        let (console, problem) = ConsoleSource.parse(url, baud: baud)
        guard let console else { throw .invalidValue(at, key: key, message: problem) }
        return console
    }

    static func number(_ node: TOMLNode, key: String, at: SourceLocation) throws(ModelError) -> Double {
        switch node {
        case let .integer(value): return Double(value)
        case let .float(value): return value
        default: throw .invalidValue(at, key: key, message: "must be a number, found \(node.typeName)")
        }
    }
}
