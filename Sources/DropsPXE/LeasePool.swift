/// The addresses of `--dhcp-range`, who holds which, and until when. Pure: times are
/// seconds passed in, and the lease file is written by the caller from `leases`.
public struct LeasePool: Sendable, Equatable {
    public struct Lease: Sendable, Equatable {
        public var mac: String
        public var address: IPv4
        /// Seconds (the caller's clock, wall time for the lease file).
        public var expires: UInt64
        /// Offered but not yet requested: given away again after a short while.
        public var offered: Bool
    }

    public let first: IPv4
    public let last: IPv4
    public let subnetMask: IPv4
    public let leaseSeconds: UInt64
    /// How long an offer holds its address for the client that got it.
    public static let offerSeconds: UInt64 = 60
    /// How long a declined address (someone else answers ARP for it) stays out of use.
    public static let declineSeconds: UInt64 = 600

    public private(set) var leases: [Lease] = []
    private var declined: [IPv4: UInt64] = [:]

    public init(first: IPv4, last: IPv4, subnetMask: IPv4, leaseSeconds: UInt64 = 3600, leases: [Lease] = []) {
        self.first = first
        self.last = last
        self.subnetMask = subnetMask
        self.leaseSeconds = leaseSeconds
        self.leases = leases.filter { $0.address >= first && $0.address <= last }
    }

    public func contains(_ address: IPv4) -> Bool { address >= first && address <= last }

    /// The address to offer a client: its current lease, the address it asks for when free,
    /// or the lowest free one. Nil when the range is used up.
    public mutating func offer(mac: String, requested: IPv4?, now: UInt64) -> IPv4? {
        expire(now: now)
        if let index = leases.firstIndex(where: { $0.mac == mac }) {
            if leases[index].offered { leases[index].expires = now + Self.offerSeconds }
            return leases[index].address
        }
        let address: IPv4
        if let requested, contains(requested), isFree(requested) {
            address = requested
        } else {
            var candidate = first
            while !isFree(candidate) {
                guard candidate < last else { return nil }
                candidate = IPv4(candidate.value + 1)
            }
            address = candidate
        }
        leases.append(Lease(mac: mac, address: address, expires: now + Self.offerSeconds, offered: true))
        return address
    }

    /// Confirms a REQUEST: true when the address is this client's (offered or leased) or free.
    public mutating func commit(mac: String, address: IPv4, now: UInt64) -> Bool {
        expire(now: now)
        guard contains(address) else { return false }
        if let index = leases.firstIndex(where: { $0.mac == mac }) {
            guard leases[index].address == address else {
                // A client asking for another address than its lease: give up the old one
                // only when the new one is free.
                guard isFree(address) else { return false }
                leases[index].address = address
                leases[index].expires = now + leaseSeconds
                leases[index].offered = false
                return true
            }
            leases[index].expires = now + leaseSeconds
            leases[index].offered = false
            return true
        }
        guard isFree(address) else { return false }
        leases.append(Lease(mac: mac, address: address, expires: now + leaseSeconds, offered: false))
        return true
    }

    /// The client took another server's offer.
    public mutating func withdrawOffer(mac: String) {
        leases.removeAll { $0.mac == mac && $0.offered }
    }

    public mutating func release(mac: String, address: IPv4) {
        leases.removeAll { $0.mac == mac && $0.address == address }
    }

    public mutating func decline(address: IPv4, now: UInt64) {
        leases.removeAll { $0.address == address }
        declined[address] = now + Self.declineSeconds
    }

    private func isFree(_ address: IPv4) -> Bool {
        !leases.contains { $0.address == address } && declined[address] == nil
    }

    private mutating func expire(now: UInt64) {
        leases.removeAll { $0.expires <= now }
        declined = declined.filter { $0.value > now }
    }

    /// Committed leases as lease-file lines: `EXPIRES MAC ADDRESS`, one per line.
    public var fileText: String {
        leases.filter { !$0.offered }.map { "\($0.expires) \($0.mac) \($0.address)\n" }.joined()
    }

    /// Reads a lease file written by `fileText`; lines that do not parse are skipped and returned.
    public static func parseLeaseFile(_ text: String) -> (leases: [Lease], skipped: [Int]) {
        var leases: [Lease] = []
        var skipped: [Int] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let fields = line.split(separator: " ")
            guard fields.count == 3, let expires = UInt64(fields[0]), let mac = MACAddress(String(fields[1])),
                  let address = IPv4(String(fields[2])) else {
                skipped.append(index + 1)
                continue
            }
            leases.append(Lease(mac: mac.description, address: address, expires: expires, offered: false))
        }
        return (leases, skipped)
    }
}
