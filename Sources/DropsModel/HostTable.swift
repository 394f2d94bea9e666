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
public struct HostTable: Sendable, Equatable {
    public struct Host: Sendable, Equatable {
        /// Lower-case `aa:bb:cc:dd:ee:ff`.
        public var mac: String
        public var name: String
        public var profile: String
        public var chain: String?
        public var location: SourceLocation
    }

    public enum UnknownMachines: String, Sendable, CaseIterable {
        /// Boot the default profile.
        case boot
        /// Give no answer at all, so another server (or none) boots them.
        case refuse
    }

    public static let chains = ["ipxe", "pxelinux", "grub"]
    static let topKeys = ["default_profile", "unknown", "host"]
    static let hostKeys = ["mac", "name", "profile", "chain"]

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
            default:
                throw .unknownKey(kAt, key: fullKey, known: hostKeys)
            }
        }
        guard let mac else { throw .invalidValue(at, key: keyPath, message: "has no 'mac'; every [[host]] names its machine's MAC address") }
        guard let profile else { throw .invalidValue(at, key: keyPath, message: "has no 'profile'; say which image this machine boots") }
        return Host(mac: mac, name: name ?? mac, profile: profile, chain: chain, location: at)
    }
}
