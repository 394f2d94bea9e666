import Foundation

/// Where a request came in: the DHCP port, or the PXE boot-server port a client asks once
/// it has an address and saw a proxy offer.
public enum PXEPort: Int, Sendable {
    case dhcp = 67
    case bootServer = 4011
}

/// Where an answer goes.
public enum ReplyDestination: Sendable, Equatable {
    /// 255.255.255.255:68 on the served interface: the client has no address yet.
    case broadcast
    /// A DHCP relay (giaddr), port 67.
    case relay(IPv4)
    /// The sender of the request, which already has an address (port 4011 exchanges).
    case sender
}

/// One exchange: what came in, what went out, and why. Becomes the log line.
public struct PXEExchange: Sendable, Equatable, Codable {
    public var mac: String
    public var hostName: String
    public var architecture: String
    public var request: String
    public var port: Int
    /// What was given (`proxy offer selftest/boot.ipxe`, `lease 10.0.0.5`), or why nothing.
    public var outcome: String
    public var answered: Bool

    enum CodingKeys: String, CodingKey {
        case mac, hostName = "host", architecture = "arch", request, port, outcome, answered
    }

    public var text: String {
        "\(mac) host=\(hostName) arch=\"\(architecture)\" \(request) port \(port): \(outcome)"
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? text
    }
}

/// The pure part of the PXE server: turns a request into an answer.
public struct PXEResponder: Sendable {
    public var serverAddress: IPv4
    public var policy: BootPolicy
    /// Present with --dhcp-range: the server also hands out addresses.
    public var leases: LeasePool?
    /// With --dhcp-range: the router (option 3) every address answer names, when there is one.
    public var router: IPv4?
    /// The URL of our HTTP listener (`http://ADDRESS:PORT`), when there is one: UEFI HTTP Boot
    /// clients get their boot program's URI under it; without it they get no answer.
    public var httpBase: String?

    public init(serverAddress: IPv4, policy: BootPolicy, leases: LeasePool? = nil, router: IPv4? = nil) {
        self.serverAddress = serverAddress
        self.policy = policy
        self.leases = leases
        self.router = router
    }

    /// The answer to a request, if any, with the exchange to log. `now` is in seconds (for leases).
    public mutating func respond(to request: DHCPMessage, on port: PXEPort, now: UInt64) -> (reply: (DHCPMessage, ReplyDestination)?, exchange: PXEExchange) {
        let client = PXEClient(request)
        var exchange = PXEExchange(mac: client.mac.description, hostName: "-", architecture: describe(client),
                                   request: client.messageType?.name ?? "BOOTP", port: port.rawValue, outcome: "", answered: false)
        guard request.op == 1 else {
            exchange.outcome = "ignored: not a request"
            return (nil, exchange)
        }
        if let host = policy.hosts.host(mac: client.mac.description) { exchange.hostName = host.name }
        guard let type = client.messageType else {
            exchange.outcome = "ignored: BOOTP without a DHCP message type"
            return (nil, exchange)
        }
        if leases != nil, port == .dhcp {
            return respondWithAddress(request, client: client, type: type, now: now, exchange: exchange)
        }
        // proxyDHCP: PXE and HTTP Boot clients only, never an address.
        guard client.isPXE || client.isHTTPClient else {
            exchange.outcome = "ignored: not a PXE client (vendor class '\(client.vendorClass)')"
            return (nil, exchange)
        }
        let replyType: DHCPMessageType
        switch (type, port) {
        case (.discover, .dhcp):
            replyType = .offer
        case (.request, .dhcp):
            // The client's REQUEST to the site server, or to us when it took our offer.
            guard let server = request.options[DHCPOptionCode.serverIdentifier], IPv4(bytes: server[...]) == serverAddress else {
                exchange.outcome = "ignored: request for another server"
                return (nil, exchange)
            }
            replyType = .ack
        case (.request, .bootServer), (.inform, .bootServer):
            replyType = .ack
        default:
            exchange.outcome = "ignored: \(type.name) on port \(port.rawValue)"
            return (nil, exchange)
        }
        switch bootChoice(for: client) {
        case let .failure(refusal):
            exchange.outcome = "no answer: \(refusal.reason)"
            return (nil, exchange)
        case let .success(choice):
            let reply = bootReply(to: request, client: client, type: replyType, choice: choice, address: .zero)
            exchange.hostName = choice.hostName
            exchange.outcome = "proxy \(replyType == .offer ? "offer" : "ack") \(shown(choice, for: client)) (\(choice.how), profile \(choice.profile))"
            exchange.answered = true
            return ((reply, destination(request, port: port)), exchange)
        }
    }

    /// Full DHCP (an isolated lab without another DHCP server): every client gets an
    /// address; PXE clients also get their boot file in the same answer.
    private mutating func respondWithAddress(_ request: DHCPMessage, client: PXEClient, type: DHCPMessageType, now: UInt64,
                                             exchange: PXEExchange) -> (reply: (DHCPMessage, ReplyDestination)?, exchange: PXEExchange) {
        var exchange = exchange
        guard var pool = leases else { return (nil, exchange) }
        defer { leases = pool }
        let mac = client.mac.description
        let requested = request.options[DHCPOptionCode.requestedAddress].flatMap { $0.count == 4 ? IPv4(bytes: $0[...]) : nil }
        let serverID = request.options[DHCPOptionCode.serverIdentifier].flatMap { $0.count == 4 ? IPv4(bytes: $0[...]) : nil }
        var choice: BootChoice?
        var refusal: BootRefusal?
        if client.isPXE || client.isHTTPClient {
            switch bootChoice(for: client) {
            case let .success(chosen): choice = chosen
            case let .failure(reason): refusal = reason
            }
        }
        func answer(_ type: DHCPMessageType, _ address: IPv4) -> DHCPMessage {
            var reply: DHCPMessage
            if let choice {
                reply = bootReply(to: request, client: client, type: type, choice: choice, address: address)
            } else {
                reply = baseReply(to: request, type: type)
                reply.yourAddress = address
            }
            if type != .nak {
                // The next server (RFC 2131's siaddr) for every client, PXE or not: clients
                // such as the L4 tftp file provider fetch from it without a boot file.
                reply.serverAddress = serverAddress
                if let router { reply.options[DHCPOptionCode.router] = router.bytes }
                reply.options[DHCPOptionCode.subnetMask] = pool.subnetMask.bytes
                reply.options[DHCPOptionCode.leaseTime] = bigEndian(UInt32(pool.leaseSeconds))
                reply.options[DHCPOptionCode.renewalTime] = bigEndian(UInt32(pool.leaseSeconds / 2))
                reply.options[DHCPOptionCode.rebindingTime] = bigEndian(UInt32(pool.leaseSeconds * 7 / 8))
            }
            return reply
        }
        let boot = choice.map { ", boot \(shown($0, for: client)) (\($0.how), profile \($0.profile))" }
            ?? refusal.map { ", no boot file: \($0.reason)" } ?? ""
        switch type {
        case .discover:
            guard let address = pool.offer(mac: mac, requested: requested, now: now) else {
                exchange.outcome = "no answer: the address range is used up"
                return (nil, exchange)
            }
            exchange.outcome = "offer \(address)\(boot)"
            exchange.answered = true
            if let choice { exchange.hostName = choice.hostName }
            return ((answer(.offer, address), destination(request, port: .dhcp)), exchange)
        case .request:
            if let serverID, serverID != serverAddress {
                pool.withdrawOffer(mac: mac)
                exchange.outcome = "ignored: the client took \(serverID)'s offer"
                return (nil, exchange)
            }
            let wanted = requested ?? (request.clientAddress != .zero ? request.clientAddress : nil)
            guard let wanted, pool.commit(mac: mac, address: wanted, now: now) else {
                exchange.outcome = "nak: \(wanted.map { "\($0)" } ?? "no address") is not this client's lease"
                exchange.answered = true
                var nak = baseReply(to: request, type: .nak)
                nak.flags |= 0x8000
                return ((nak, destination(request, port: .dhcp)), exchange)
            }
            exchange.outcome = "ack \(wanted)\(boot)"
            exchange.answered = true
            if let choice { exchange.hostName = choice.hostName }
            return ((answer(.ack, wanted), destination(request, port: .dhcp)), exchange)
        case .release:
            pool.release(mac: mac, address: request.clientAddress)
            exchange.outcome = "released \(request.clientAddress)"
            return (nil, exchange)
        case .decline:
            if let requested { pool.decline(address: requested, now: now) }
            exchange.outcome = "declined \(requested.map { "\($0)" } ?? "?"): set aside"
            return (nil, exchange)
        default:
            exchange.outcome = "ignored"
            return (nil, exchange)
        }
    }

    private func baseReply(to request: DHCPMessage, type: DHCPMessageType) -> DHCPMessage {
        var reply = DHCPMessage()
        reply.op = 2
        reply.hardwareType = request.hardwareType
        reply.hardwareAddressLength = request.hardwareAddressLength
        reply.transactionID = request.transactionID
        reply.flags = request.flags
        reply.clientAddress = request.clientAddress
        reply.relayAddress = request.relayAddress
        reply.hardwareAddress = request.hardwareAddress
        reply.options[DHCPOptionCode.messageType] = [type.rawValue]
        reply.options[DHCPOptionCode.serverIdentifier] = serverAddress.bytes
        return reply
    }

    /// An answer that makes PXE firmware fetch `choice.file` from us at once; for a UEFI HTTP
    /// Boot client, its http:// URI under our HTTP listener, with vendor class HTTPClient
    /// (UEFI 2.5+, 24.7: the client takes the offer by that class and the URI in the file).
    private func bootReply(to request: DHCPMessage, client: PXEClient, type: DHCPMessageType, choice: BootChoice, address: IPv4) -> DHCPMessage {
        var reply = baseReply(to: request, type: type)
        reply.yourAddress = address
        reply.serverAddress = serverAddress
        if client.isHTTPClient, let httpBase {
            let uri = "\(httpBase)/\(choice.file)"
            reply.bootFile = uri.utf8.count <= 127 ? uri : ""
            reply.options[DHCPOptionCode.bootFileName] = Array(uri.utf8)
            reply.options[DHCPOptionCode.vendorClass] = Array("HTTPClient".utf8)
            if let machineID = client.machineID { reply.options[DHCPOptionCode.clientMachineID] = machineID }
            return reply
        }
        reply.bootFile = choice.file
        reply.options[DHCPOptionCode.vendorClass] = Array("PXEClient".utf8)
        // PXE sub-option 6 (discovery control), bit 3: boot the file named in this answer
        // without a boot-server discovery or menu.
        if !client.isIPXE { reply.options[DHCPOptionCode.vendorSpecific] = [6, 1, 8, 255] }
        if let machineID = client.machineID { reply.options[DHCPOptionCode.clientMachineID] = machineID }
        // The file field holds 127 bytes; longer names also travel as option 67.
        if choice.file.utf8.count > 127 { reply.options[DHCPOptionCode.bootFileName] = Array(choice.file.utf8) }
        return reply
    }

    /// The policy's choice, for a client this server can serve: a UEFI HTTP Boot client
    /// needs our HTTP listener.
    private func bootChoice(for client: PXEClient) -> Result<BootChoice, BootRefusal> {
        if client.isHTTPClient && httpBase == nil {
            return .failure(BootRefusal(reason: "a UEFI HTTP Boot client, and this server has no HTTP listener (--http-port)"))
        }
        return policy.choose(for: client)
    }

    /// The boot file as the client gets it: a name on the TFTP server, or an HTTP Boot URI.
    private func shown(_ choice: BootChoice, for client: PXEClient) -> String {
        if client.isHTTPClient, let httpBase { return "\(httpBase)/\(choice.file)" }
        return choice.file
    }

    private func destination(_ request: DHCPMessage, port: PXEPort) -> ReplyDestination {
        if port == .bootServer { return .sender }
        if request.relayAddress != .zero { return .relay(request.relayAddress) }
        return .broadcast
    }

    private func describe(_ client: PXEClient) -> String {
        client.architecture.description + (client.isIPXE ? ", iPXE" : "")
    }
}

func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
}
