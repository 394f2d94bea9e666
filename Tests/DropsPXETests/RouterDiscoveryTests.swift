import DropsPXE
import Testing

/// The router discovery messages drops-serve pxe answers and sends (RFC 4861, 4.1 and 4.2).
@Suite struct RouterDiscoveryTests {
    @Test func aSolicitationIsRecognisedAndNothingElse() {
        // An RS as rdisc6 sends it: type 133, code 0, checksum, reserved, source link-layer option.
        let solicitation: [UInt8] = [133, 0, 0x4f, 0x21, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 0x77, 0, 0x0b]
        #expect(RouterDiscovery.isSolicitation(solicitation))
        #expect(!RouterDiscovery.isSolicitation(Array(solicitation.prefix(7))), "shorter than its header")
        #expect(!RouterDiscovery.isSolicitation([134] + solicitation.dropFirst()), "an advertisement")
        #expect(!RouterDiscovery.isSolicitation([133, 1] + solicitation.dropFirst(2)), "code must be 0")
    }

    @Test func theAdvertisementSaysNoRouterAndNoDHCPv6() {
        let mac: [UInt8] = [0x06, 0xc4, 0xd6, 0x72, 0x84, 0x2a]
        let message = RouterDiscovery.emptyAdvertisement(mac: mac)
        #expect(message.count == 24)
        #expect(message[0] == 134 && message[1] == 0)
        #expect(message[4] == 0, "hop limit unspecified")
        #expect(message[5] == 0, "M and O clear: iPXE ends its IPv6 configuration at once")
        #expect(message[6] == 0 && message[7] == 0, "router lifetime 0: not a default router")
        #expect(message[8..<16].allSatisfy { $0 == 0 }, "reachable and retransmit times unspecified")
        #expect(Array(message[16...]) == [1, 1] + mac, "source link-layer address option")
        #expect(RouterDiscovery.emptyAdvertisement(mac: nil).count == 16)
    }
}
