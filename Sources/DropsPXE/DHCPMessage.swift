import DropsModel

/// An IPv4 address as four bytes, without sockets: the codec stays pure.
public struct IPv4: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) {
        self.value = value
    }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Dotted-quad text; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }

    init(bytes: ArraySlice<UInt8>) {
        value = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public static let zero = IPv4(0)
    public static let broadcast = IPv4(0xFFFF_FFFF)

    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
    public var description: String { bytes.map(String.init).joined(separator: ".") }
    public static func < (lhs: IPv4, rhs: IPv4) -> Bool { lhs.value < rhs.value }
}

/// An Ethernet hardware address, written `52:54:00:12:34:56`.
public struct MACAddress: Sendable, Hashable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Accepts what the hosts file accepts: `:` or `-` between bytes, any case.
    public init?(_ text: String) {
        guard let normalized = HostTable.normalizedMAC(text) else { return nil }
        bytes = normalized.split(separator: ":").map { UInt8($0, radix: 16)! }
    }

    public var description: String {
        bytes.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined(separator: ":")
    }
}

/// Why a datagram is not a DHCP message.
public enum DHCPDecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooShort(Int)
    case badCookie
    case badHardwareAddressLength(Int)
    case truncatedOption(code: UInt8, at: Int)

    public var description: String {
        switch self {
        case let .tooShort(count): return "\(count) bytes is too short for a BOOTP/DHCP message (at least 240)"
        case .badCookie: return "no DHCP magic cookie (99.130.83.99) after the BOOTP header"
        case let .badHardwareAddressLength(length): return "hardware address length \(length) is more than 16"
        case let .truncatedOption(code, at): return "option \(code) at byte \(at) runs past the end of its field"
        }
    }
}

/// Option codes this server reads or writes (RFC 2132, RFC 3004, RFC 4578).
public enum DHCPOptionCode {
    public static let pad: UInt8 = 0
    public static let subnetMask: UInt8 = 1
    public static let router: UInt8 = 3
    public static let domainNameServer: UInt8 = 6
    public static let hostName: UInt8 = 12
    public static let vendorSpecific: UInt8 = 43
    public static let requestedAddress: UInt8 = 50
    public static let leaseTime: UInt8 = 51
    public static let overload: UInt8 = 52
    public static let messageType: UInt8 = 53
    public static let serverIdentifier: UInt8 = 54
    public static let parameterRequestList: UInt8 = 55
    public static let message: UInt8 = 56
    public static let maxMessageSize: UInt8 = 57
    public static let renewalTime: UInt8 = 58
    public static let rebindingTime: UInt8 = 59
    public static let vendorClass: UInt8 = 60
    public static let clientIdentifier: UInt8 = 61
    public static let tftpServerName: UInt8 = 66
    public static let bootFileName: UInt8 = 67
    public static let userClass: UInt8 = 77
    public static let clientArchitecture: UInt8 = 93
    public static let clientNetworkInterface: UInt8 = 94
    public static let clientMachineID: UInt8 = 97
    public static let end: UInt8 = 255
}

/// DHCP message types (option 53).
public enum DHCPMessageType: UInt8, Sendable {
    case discover = 1, offer, request, decline, ack, nak, release, inform

    public var name: String {
        switch self {
        case .discover: return "DHCPDISCOVER"
        case .offer: return "DHCPOFFER"
        case .request: return "DHCPREQUEST"
        case .decline: return "DHCPDECLINE"
        case .ack: return "DHCPACK"
        case .nak: return "DHCPNAK"
        case .release: return "DHCPRELEASE"
        case .inform: return "DHCPINFORM"
        }
    }
}

/// DHCP options in the order they were read or set. A code that appears several times is
/// one option whose parts are joined (RFC 3396), which is how long options travel.
public struct DHCPOptions: Sendable, Equatable {
    public private(set) var entries: [(code: UInt8, value: [UInt8])] = []

    public init() {}

    public subscript(code: UInt8) -> [UInt8]? {
        get { entries.first { $0.code == code }?.value }
        set {
            if let index = entries.firstIndex(where: { $0.code == code }) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                entries.append((code, newValue))
            }
        }
    }

    /// Adds bytes to an option, joining them to earlier parts of the same code.
    mutating func append(_ code: UInt8, _ bytes: ArraySlice<UInt8>) {
        if let index = entries.firstIndex(where: { $0.code == code }) {
            entries[index].value += bytes
        } else {
            entries.append((code, Array(bytes)))
        }
    }

    public static func == (lhs: DHCPOptions, rhs: DHCPOptions) -> Bool {
        lhs.entries.count == rhs.entries.count && zip(lhs.entries, rhs.entries).allSatisfy { $0.code == $1.code && $0.value == $1.value }
    }

    /// Reads code-length-value triples up to the end option; pads are skipped.
    mutating func read(_ field: ArraySlice<UInt8>) throws(DHCPDecodeError) {
        var position = field.startIndex
        while position < field.endIndex {
            let code = field[position]
            if code == DHCPOptionCode.end { return }
            if code == DHCPOptionCode.pad { position += 1; continue }
            guard position + 1 < field.endIndex else { throw .truncatedOption(code: code, at: position) }
            let length = Int(field[position + 1])
            let start = position + 2
            guard start + length <= field.endIndex else { throw .truncatedOption(code: code, at: position) }
            append(code, field[start..<(start + length)])
            position = start + length
        }
    }

    /// The options as bytes, each split into parts of at most 255 bytes, then the end option.
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        for (code, value) in entries {
            if value.isEmpty { out += [code, 0]; continue }
            var start = 0
            while start < value.count {
                let part = value[start..<min(start + 255, value.count)]
                out += [code, UInt8(part.count)] + part
                start += part.count
            }
        }
        return out + [DHCPOptionCode.end]
    }
}

/// A BOOTP/DHCP message (RFC 951, RFC 2131): the fixed header and its options. Options a
/// client put into the `file` and `sname` fields (option 52, overload) are read as options.
public struct DHCPMessage: Sendable, Equatable {
    public static let cookie: [UInt8] = [99, 130, 83, 99]
    /// RFC 1542: BOOTP relays and some old PXE ROMs drop replies shorter than this.
    public static let minimumReplySize = 300

    public var op: UInt8 = 1
    public var hardwareType: UInt8 = 1
    public var hardwareAddressLength: UInt8 = 6
    public var hops: UInt8 = 0
    public var transactionID: UInt32 = 0
    public var seconds: UInt16 = 0
    public var flags: UInt16 = 0
    public var clientAddress = IPv4.zero
    public var yourAddress = IPv4.zero
    public var serverAddress = IPv4.zero
    public var relayAddress = IPv4.zero
    /// The 16-byte chaddr field.
    public var hardwareAddress: [UInt8] = Array(repeating: 0, count: 16)
    public var serverName = ""
    public var bootFile = ""
    public var options = DHCPOptions()

    public init() {}

    /// The broadcast bit: the client cannot receive unicast before it has an address.
    public var wantsBroadcast: Bool { flags & 0x8000 != 0 }

    public var clientMAC: MACAddress {
        MACAddress(Array(hardwareAddress.prefix(Int(min(hardwareAddressLength, 16)))))
    }

    public static func decode(_ bytes: [UInt8]) throws(DHCPDecodeError) -> DHCPMessage {
        guard bytes.count >= 240 else { throw .tooShort(bytes.count) }
        guard Array(bytes[236..<240]) == cookie else { throw .badCookie }
        var message = DHCPMessage()
        message.op = bytes[0]
        message.hardwareType = bytes[1]
        message.hardwareAddressLength = bytes[2]
        guard bytes[2] <= 16 else { throw .badHardwareAddressLength(Int(bytes[2])) }
        message.hops = bytes[3]
        message.transactionID = bytes[4..<8].reduce(0) { $0 << 8 | UInt32($1) }
        message.seconds = UInt16(bytes[8]) << 8 | UInt16(bytes[9])
        message.flags = UInt16(bytes[10]) << 8 | UInt16(bytes[11])
        message.clientAddress = IPv4(bytes: bytes[12..<16])
        message.yourAddress = IPv4(bytes: bytes[16..<20])
        message.serverAddress = IPv4(bytes: bytes[20..<24])
        message.relayAddress = IPv4(bytes: bytes[24..<28])
        message.hardwareAddress = Array(bytes[28..<44])
        try message.options.read(bytes[240...])
        // RFC 2131 section 4.1: after the options field come `file`, then `sname`.
        let overload = message.options[DHCPOptionCode.overload]?.first ?? 0
        if overload & 1 != 0 { try message.options.read(bytes[108..<236]) } else { message.bootFile = text(bytes[108..<236]) }
        if overload & 2 != 0 { try message.options.read(bytes[44..<108]) } else { message.serverName = text(bytes[44..<108]) }
        message.options[DHCPOptionCode.overload] = nil
        return message
    }

    /// The message as a datagram, padded to the BOOTP minimum. Names too long for their
    /// fields are cut; callers that need long boot file names also set option 67.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [op, hardwareType, hardwareAddressLength, hops]
        out += withUnsafeBytes(of: transactionID.bigEndian, Array.init)
        out += [UInt8(seconds >> 8), UInt8(seconds & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF)]
        out += clientAddress.bytes + yourAddress.bytes + serverAddress.bytes + relayAddress.bytes
        out += (hardwareAddress + Array(repeating: 0, count: 16)).prefix(16)
        out += field(serverName, size: 64)
        out += field(bootFile, size: 128)
        out += Self.cookie
        out += options.encoded()
        if out.count < Self.minimumReplySize { out += Array(repeating: 0, count: Self.minimumReplySize - out.count) }
        return out
    }

    private func field(_ text: String, size: Int) -> [UInt8] {
        let bytes = Array(text.utf8.prefix(size - 1))
        return bytes + Array(repeating: 0, count: size - bytes.count)
    }
}

/// A NUL-terminated name from a fixed field.
private func text(_ bytes: ArraySlice<UInt8>) -> String {
    let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
    return String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
}
