#if canImport(Glibc)
import Glibc
#endif

/// An interface's IPv4 address and netmask, read with getifaddrs.
public struct NetworkInterface: Sendable, Equatable {
    public var name: String
    public var address: IPv4
    public var netmask: IPv4

    /// The interface, or an error that lists the interfaces this machine has.
    public static func find(_ name: String) throws(PXEServerError) -> NetworkInterface {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { throw .interfaceMissing(name, known: []) }
        defer { freeifaddrs(list) }
        var names: [String] = []
        var sawName = false
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            let entryName = String(cString: entry.pointee.ifa_name)
            if !names.contains(entryName) { names.append(entryName) }
            guard entryName == name else { continue }
            sawName = true
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
                  let mask = entry.pointee.ifa_netmask else { continue }
            return NetworkInterface(name: name, address: ipv4(address), netmask: ipv4(mask))
        }
        if sawName { throw .interfaceWithoutAddress(name) }
        throw .interfaceMissing(name, known: names)
    }

    public var network: IPv4 { IPv4(address.value & netmask.value) }

    public func contains(_ other: IPv4) -> Bool { other.value & netmask.value == network.value }
}

private func ipv4(_ pointer: UnsafeMutablePointer<sockaddr>) -> IPv4 {
    pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { IPv4(UInt32(bigEndian: $0.pointee.sin_addr.s_addr)) }
}
