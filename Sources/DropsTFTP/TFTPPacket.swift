/// TFTP error codes (RFC 1350, RFC 2347).
public enum TFTPErrorCode: UInt16, Sendable, Equatable {
    case notDefined = 0
    case fileNotFound = 1
    case accessViolation = 2
    case diskFull = 3
    case illegalOperation = 4
    case unknownTransferID = 5
    case fileExists = 6
    case noSuchUser = 7
    /// RFC 2347: the client's options could not be accepted.
    case optionRefused = 8
}

/// Transfer mode of a request.
public enum TFTPMode: String, Sendable, Equatable {
    case octet
    case netascii
}

/// One option as the client wrote it: names are compared case-insensitively, the order is
/// kept because an OACK answers in the client's order.
public struct TFTPOption: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A TFTP packet (RFC 1350, 2347).
public enum TFTPPacket: Sendable, Equatable {
    case readRequest(filename: String, mode: TFTPMode, options: [TFTPOption])
    case writeRequest(filename: String, mode: TFTPMode, options: [TFTPOption])
    case data(block: UInt16, payload: [UInt8])
    case ack(block: UInt16)
    case error(code: TFTPErrorCode, message: String)
    case optionAck(options: [TFTPOption])

    public enum Opcode: UInt16 {
        case rrq = 1, wrq, data, ack, error, oack
    }
}

/// Why bytes are not a TFTP packet; each case maps to the ERROR the peer should get.
public enum TFTPDecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooShort(Int)
    case unknownOpcode(UInt16)
    case unterminatedString(field: String)
    case badMode(String)
    case invalidText(field: String)
    case dataTooLarge(Int)

    public var description: String {
        switch self {
        case let .tooShort(count): return "packet of \(count) bytes is too short"
        case let .unknownOpcode(code): return "unknown opcode \(code)"
        case let .unterminatedString(field): return "\(field) is not NUL-terminated"
        case let .badMode(mode): return "mode '\(mode)' is not octet or netascii"
        case let .invalidText(field): return "\(field) is not valid text"
        case let .dataTooLarge(count): return "data block of \(count) bytes is larger than any block size"
        }
    }
}

extension TFTPPacket {
    /// Largest data payload any client can negotiate (RFC 2348: blksize up to 65464).
    public static let maxBlockSize = 65464

    /// Decodes one datagram. Malformed packets throw; the server answers them with ERROR 4.
    /// A request's trailing option without a value is dropped rather than refused: the historic
    /// L4 tftp client sends `blksize` with no value on write requests.
    public static func decode(_ bytes: some Collection<UInt8>) throws(TFTPDecodeError) -> TFTPPacket {
        let bytes = Array(bytes)
        guard bytes.count >= 2 else { throw .tooShort(bytes.count) }
        let rawOpcode = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        guard let opcode = Opcode(rawValue: rawOpcode) else { throw .unknownOpcode(rawOpcode) }
        switch opcode {
        case .rrq, .wrq:
            var reader = StringFields(bytes: bytes, start: 2)
            guard let filename = try reader.next(field: "filename") else { throw .unterminatedString(field: "filename") }
            guard let modeText = try reader.next(field: "mode") else { throw .unterminatedString(field: "mode") }
            guard let mode = TFTPMode(rawValue: modeText.lowercased()) else { throw .badMode(modeText) }
            var options: [TFTPOption] = []
            while let name = try reader.next(field: "option name") {
                guard let value = try reader.next(field: "option value") else { break }
                options.append(TFTPOption(name, value))
            }
            return opcode == .rrq
                ? .readRequest(filename: filename, mode: mode, options: options)
                : .writeRequest(filename: filename, mode: mode, options: options)
        case .data:
            guard bytes.count >= 4 else { throw .tooShort(bytes.count) }
            guard bytes.count - 4 <= maxBlockSize else { throw .dataTooLarge(bytes.count - 4) }
            return .data(block: UInt16(bytes[2]) << 8 | UInt16(bytes[3]), payload: Array(bytes[4...]))
        case .ack:
            guard bytes.count >= 4 else { throw .tooShort(bytes.count) }
            return .ack(block: UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
        case .error:
            guard bytes.count >= 4 else { throw .tooShort(bytes.count) }
            let raw = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
            // Some clients omit the NUL after the message; accept what is there.
            let end = bytes[4...].firstIndex(of: 0) ?? bytes.count
            let message = String(decoding: bytes[4..<end], as: UTF8.self)
            return .error(code: TFTPErrorCode(rawValue: raw) ?? .notDefined, message: message)
        case .oack:
            var reader = StringFields(bytes: bytes, start: 2)
            var options: [TFTPOption] = []
            while let name = try reader.next(field: "option name") {
                guard let value = try reader.next(field: "option value") else { throw .unterminatedString(field: "option value") }
                options.append(TFTPOption(name, value))
            }
            return .optionAck(options: options)
        }
    }

    /// The datagram bytes of this packet.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        func opcode(_ code: Opcode) { out += [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)] }
        func number(_ value: UInt16) { out += [UInt8(value >> 8), UInt8(value & 0xFF)] }
        func string(_ text: String) { out += Array(text.utf8); out.append(0) }
        switch self {
        case let .readRequest(filename, mode, options), let .writeRequest(filename, mode, options):
            if case .readRequest = self { opcode(.rrq) } else { opcode(.wrq) }
            string(filename)
            string(mode.rawValue)
            for option in options { string(option.name); string(option.value) }
        case let .data(block, payload):
            opcode(.data)
            number(block)
            out += payload
        case let .ack(block):
            opcode(.ack)
            number(block)
        case let .error(code, message):
            opcode(.error)
            number(code.rawValue)
            string(message)
        case let .optionAck(options):
            opcode(.oack)
            for option in options { string(option.name); string(option.value) }
        }
        return out
    }
}

/// Reads NUL-terminated strings one after another; nil at the end of the packet.
struct StringFields {
    let bytes: [UInt8]
    var position: Int

    init(bytes: [UInt8], start: Int) {
        self.bytes = bytes
        position = start
    }

    mutating func next(field: String) throws(TFTPDecodeError) -> String? {
        guard position < bytes.count else { return nil }
        guard let end = bytes[position...].firstIndex(of: 0) else {
            // Unterminated trailing bytes: a dangling option name is dropped (see decode).
            if field == "option name" || field == "option value" { position = bytes.count; return nil }
            throw .unterminatedString(field: field)
        }
        guard let text = String(validating: bytes[position..<end], as: UTF8.self) else {
            throw .invalidText(field: field)
        }
        position = end + 1
        return text
    }
}
