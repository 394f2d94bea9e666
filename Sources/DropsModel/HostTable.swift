import Foundation

/// Which PCs of a lab boot which profile: the hosts file of `drops-serve pxe`.
///
///     default_profile = "l4env"       # machines not listed below
///     unknown = "boot"                # or "refuse": unlisted machines get no answer
///
///     [[host]]
///     mac = "52:54:00:12:34:56"
///     name = "pc07"
///     profile = "selftest"
///     chain = "pxelinux"              # optional: ipxe, pxelinux or grub
///     firmware = "bios"               # optional: bios or uefi (what drops-run expects of it)
///     power = { ipmi = { host = "10.0.0.50", user = "admin", password_file = "pc07.ipmi" } }
///     console = "tcp://10.0.0.9:7007"
public struct HostTable: Sendable, Equatable {
    public struct Host: Sendable, Equatable {
        /// Lower-case `aa:bb:cc:dd:ee:ff`.
        public var mac: String
        public var name: String
        public var profile: String
        public var chain: String?
        public var firmware: String?
        /// How drops-run switches it (`power`), when it can.
        public var power: PowerControl?
        /// Where drops-run reads its serial console (`console`).
        public var console: ConsoleSource?
        public var location: SourceLocation

        public init(mac: String, name: String, profile: String, chain: String? = nil, firmware: String? = nil,
                    power: PowerControl? = nil, console: ConsoleSource? = nil, location: SourceLocation) {
            self.mac = mac
            self.name = name
            self.profile = profile
            self.chain = chain
            self.firmware = firmware
            self.power = power
            self.console = console
            self.location = location
        }
    }

    public enum UnknownMachines: String, Sendable, CaseIterable {
        /// Boot the default profile.
        case boot
        /// Give no answer at all, so another server (or none) boots them.
        case refuse
    }

    public static let chains = ["ipxe", "pxelinux", "grub"]
    static let topKeys = ["default_profile", "unknown", "host"]
    static let hostKeys = ["mac", "name", "profile", "chain", "firmware", "power", "console"]
    public static let firmwares = ["bios", "uefi"]

    public var defaultProfile: String?
    public var unknown = UnknownMachines.boot
    public var hosts: [Host] = []
    /// Where `default_profile` was set, for errors about it.
    public var defaultProfileLocation: SourceLocation?

    public init(defaultProfile: String? = nil, unknown: UnknownMachines = .boot, hosts: [Host] = []) {
        self.defaultProfile = defaultProfile
        self.unknown = unknown
        self.hosts = hosts
    }

    /// The entry for a MAC address (any case, `:` or `-`).
    public func host(mac: String) -> Host? {
        guard let normalized = Self.normalizedMAC(mac) else { return nil }
        return hosts.first { $0.mac == normalized }
    }

    /// `aa:bb:cc:dd:ee:ff` for six hex bytes separated by `:` or `-`; nil otherwise.
    public static func normalizedMAC(_ text: String) -> String? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).count == 6
            ? text.split(separator: ":", omittingEmptySubsequences: false)
            : text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else { return nil }
        return parts.map { $0.lowercased() }.joined(separator: ":")
    }

    public static func load(path: String) throws(ModelError) -> HostTable {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .syntax(SourceLocation(file: path, line: 1), message: "cannot read the hosts file; check the path given to --hosts")
        }
        return try decode(text: String(decoding: data, as: UTF8.self), path: path)
    }

    public static func decode(text: String, path: String) throws(ModelError) -> HostTable {
        let locator = TOMLKeyLocator(file: path, text: text)
        let root = try TOMLNode.parse(text, file: path)
        var table = HostTable()
        guard case let .table(entries) = root else { return table }
        for (key, value) in entries {
            let at = locator.location(key)
            switch key {
            case "default_profile":
                table.defaultProfile = try ProfileDecoder.string(value, key: key, at: at)
                table.defaultProfileLocation = at
            case "unknown":
                table.unknown = try ProfileDecoder.enumValue(value, key: key, at: at)
            case "host":
                guard case let .array(items) = value else {
                    throw .invalidValue(at, key: key, message: "must be an array of tables ([[host]]), found \(value.typeName)")
                }
                for (index, item) in items.enumerated() {
                    let host = try decodeHost(item, keyPath: "host.\(index)", locator: locator)
                    if let earlier = table.hosts.first(where: { $0.mac == host.mac }) {
                        throw .invalidValue(host.location, key: "host.\(index).mac",
                                            message: "\(host.mac) is listed twice (also at line \(earlier.location.line)); keep one entry per machine")
                    }
                    table.hosts.append(host)
                }
            default:
                throw .unknownKey(at, key: key, known: topKeys)
            }
        }
        return table
    }

    static func decodeHost(_ node: TOMLNode, keyPath: String, locator: TOMLKeyLocator) throws(ModelError) -> Host {
        let at = locator.location(keyPath)
        guard case let .table(entries) = node else {
            throw .invalidValue(at, key: keyPath, message: "must be a table, found \(node.typeName)")
        }
        var mac: String?
        var name: String?
        var profile: String?
        var chain: String?
        var firmware: String?
        var power: PowerControl?
        var console: ConsoleSource?
        for (key, value) in entries {
            let fullKey = "\(keyPath).\(key)"
            let kAt = locator.location(fullKey)
            switch key {
            case "mac":
                let text = try ProfileDecoder.string(value, key: fullKey, at: kAt)
                guard let normalized = normalizedMAC(text) else {
                    throw .invalidValue(kAt, key: fullKey, message: "'\(text)' is not a MAC address; write six hex bytes such as 52:54:00:12:34:56")
                }
                mac = normalized
            case "name":
                name = try ProfileDecoder.string(value, key: fullKey, at: kAt)
            case "profile":
                let text = try ProfileDecoder.string(value, key: fullKey, at: kAt)
                guard !text.isEmpty, !text.contains("/"), text != ".", text != ".." else {
                    throw .invalidValue(kAt, key: fullKey, message: "'\(text)' is not a profile name; name a folder of the served root, such as l4env")
                }
                profile = text
            case "chain":
                let text = try ProfileDecoder.string(value, key: fullKey, at: kAt)
                guard chains.contains(text) else {
                    throw .invalidValue(kAt, key: fullKey, message: "'\(text)' is not a boot chain; use one of \(chains.joined(separator: ", "))")
                }
                chain = text
            case "firmware":
                let text = try ProfileDecoder.string(value, key: fullKey, at: kAt)
                guard firmwares.contains(text) else {
                    throw .invalidValue(kAt, key: fullKey, message: "'\(text)' is not a firmware; use bios or uefi")
                }
                firmware = text
            case "power":
                power = try decodePower(value, key: fullKey, locator: locator)
            case "console":
                console = try decodeConsole(value, key: fullKey, at: kAt)
            default:
                throw .unknownKey(kAt, key: fullKey, known: hostKeys)
            }
        }
        guard let mac else { throw .invalidValue(at, key: keyPath, message: "has no 'mac'; every [[host]] names its machine's MAC address") }
        guard let profile else { throw .invalidValue(at, key: keyPath, message: "has no 'profile'; say which image this machine boots") }
        if console == .ipmiSOL && power?.ipmi == nil {
            throw .invalidValue(locator.location("\(keyPath).console"), key: "\(keyPath).console",
                                message: "ipmi-sol reads the console through the BMC: give power = { ipmi = { … } } for this host too")
        }
        return Host(mac: mac, name: name ?? mac, profile: profile, chain: chain, firmware: firmware, power: power, console: console, location: at)
    }
}
