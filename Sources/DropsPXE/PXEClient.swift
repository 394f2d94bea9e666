/// Client system architectures a PXE client announces in option 93 (RFC 4578, IANA
/// "Processor Architecture Types"), as far as this server tells them apart.
public enum ClientArchitecture: Sendable, Equatable, CustomStringConvertible {
    case x86BIOS
    case efiIA32
    case efiX64
    /// 16: x86-64 UEFI HTTP Boot, which asks for an http:// URI instead of a TFTP file.
    case efiX64HTTP
    case other(UInt16)

    public init(code: UInt16) {
        switch code {
        case 0: self = .x86BIOS
        case 6: self = .efiIA32
        // 7 is "EFI BC", which every x86-64 UEFI firmware sends; 9 is what the registry
        // later named x86-64. Firmware in the field uses both.
        case 7, 9: self = .efiX64
        case 16: self = .efiX64HTTP
        default: self = .other(code)
        }
    }

    public var description: String {
        switch self {
        case .x86BIOS: return "x86 BIOS"
        case .efiIA32: return "EFI IA32"
        case .efiX64: return "x86-64 UEFI"
        case .efiX64HTTP: return "x86-64 UEFI HTTP"
        case let .other(code): return "architecture \(code)"
        }
    }

    /// bios or uefi, for an architecture as `description` writes it (the `arch` of a logged
    /// PXEExchange, which may add ", iPXE"); nil for one this server does not tell apart.
    public static func firmware(described text: String) -> String? {
        let known: [ClientArchitecture] = [.x86BIOS, .efiIA32, .efiX64, .efiX64HTTP]
        guard let architecture = known.first(where: { text.hasPrefix($0.description) }) else { return nil }
        return architecture == .x86BIOS ? "bios" : "uefi"
    }
}

/// What a request says about the machine that sent it.
public struct PXEClient: Sendable, Equatable {
    public var mac: MACAddress
    public var messageType: DHCPMessageType?
    public var vendorClass: String
    public var architecture: ClientArchitecture
    /// The client runs iPXE already (user class `iPXE`): chain-loading iPXE again would loop.
    public var isIPXE: Bool
    /// Option 97 (client machine identifier, the UUID); PXE clients expect it echoed.
    public var machineID: [UInt8]?

    public init(_ message: DHCPMessage) {
        mac = message.clientMAC
        messageType = message.options[DHCPOptionCode.messageType]?.first.flatMap(DHCPMessageType.init(rawValue:))
        vendorClass = message.options[DHCPOptionCode.vendorClass].map { String(decoding: $0, as: UTF8.self) } ?? ""
        if let arch = message.options[DHCPOptionCode.clientArchitecture], arch.count >= 2 {
            architecture = ClientArchitecture(code: UInt16(arch[0]) << 8 | UInt16(arch[1]))
        } else if let range = vendorClass.range(of: "Arch:"), let code = UInt16(vendorClass[range.upperBound...].prefix(5)) {
            // PXE 2.1 clients without option 93 still name it in the vendor class.
            architecture = ClientArchitecture(code: code)
        } else {
            architecture = .x86BIOS
        }
        isIPXE = Self.userClasses(message.options[DHCPOptionCode.userClass] ?? []).contains("iPXE")
        machineID = message.options[DHCPOptionCode.clientMachineID]
    }

    /// Vendor class `PXEClient…`: the only requests a proxyDHCP server may answer.
    public var isPXE: Bool { vendorClass.hasPrefix("PXEClient") }

    /// Vendor class `HTTPClient…`: UEFI HTTP Boot, answered with an http:// URI.
    public var isHTTPClient: Bool { vendorClass.hasPrefix("HTTPClient") }

    /// Option 77 as iPXE sends it (the bare text) and as RFC 3004 defines it (length-prefixed
    /// class names); both forms are read.
    static func userClasses(_ bytes: [UInt8]) -> [String] {
        guard !bytes.isEmpty else { return [] }
        var classes = [String(decoding: bytes, as: UTF8.self)]
        var position = 0
        var listed: [String] = []
        while position < bytes.count {
            let length = Int(bytes[position])
            guard length > 0, position + 1 + length <= bytes.count else { listed = []; break }
            listed.append(String(decoding: bytes[(position + 1)...(position + length)], as: UTF8.self))
            position += 1 + length
        }
        classes += listed
        return classes
    }
}
