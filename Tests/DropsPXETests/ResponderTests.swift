import DropsModel
@testable import DropsPXE
import Testing

@Suite struct ResponderTests {
    static let server = IPv4(10, 77, 0, 2)

    static func policy(chain: BootChain = .ipxe, hosts: HostTable = HostTable(), defaultProfile: String? = "selftest",
                      firmware: FirmwarePrograms = FirmwarePrograms(undionly: "undionly.kpxe", ipxeEFI: "ipxe.efi")) -> BootPolicy {
        BootPolicy(hosts: hosts, defaultProfile: defaultProfile, chain: chain,
                   profiles: ["selftest": ServedProfile(name: "selftest", isLinux: false, grubBIOS: "selftest/grub/i386-pc/core.0"),
                              "linux": ServedProfile(name: "linux", isLinux: true)],
                   firmware: firmware)
    }

    static func labHosts() throws -> HostTable {
        try HostTable.decode(text: """
            default_profile = "selftest"
            [[host]]
            mac = "52:54:00:77:00:02"
            name = "uefi-pc"
            profile = "linux"
            [[host]]
            mac = "52:54:00:77:00:09"
            name = "old-pc"
            profile = "selftest"
            chain = "pxelinux"
            """, path: "hosts.toml")
    }

    func answer(_ bytes: [UInt8], policy: BootPolicy = policy(), port: PXEPort = .dhcp, mac: [UInt8]? = nil,
                edit: (inout DHCPMessage) -> Void = { _ in }) throws -> (DHCPMessage, ReplyDestination)? {
        var request = try DHCPMessage.decode(bytes)
        if let mac { request.hardwareAddress = mac + Array(repeating: 0, count: 10) }
        edit(&request)
        var responder = PXEResponder(serverAddress: Self.server, policy: policy)
        return responder.respond(to: request, on: port, now: 0).reply
    }

    /// QEMU's iPXE ROM gets the profile's boot.ipxe, exactly as captured from the lab.
    @Test func iPXEClientGetsTheScriptByteForByte() throws {
        let (reply, destination) = try #require(try answer(CapturedPackets.ipxeBIOSDiscover))
        #expect(destination == .broadcast)
        #expect(reply.encoded() == CapturedPackets.dropsProxyOffer)
        #expect(reply.bootFile == "selftest/boot.ipxe")
        #expect(reply.serverAddress == Self.server && reply.yourAddress == .zero)
        // iPXE needs no PXE menu: no option 43.
        #expect(reply.options[DHCPOptionCode.vendorSpecific] == nil)
    }

    @Test func plainBIOSROMGetsUndionlyWithDiscoveryControl() throws {
        let answered = try answer(CapturedPackets.ipxeBIOSDiscover, edit: { $0.options[DHCPOptionCode.userClass] = nil })
        let (reply, _) = try #require(answered)
        #expect(reply.bootFile == "undionly.kpxe")
        #expect(reply.options[DHCPOptionCode.vendorSpecific] == [6, 1, 8, 255])
        #expect(reply.options[DHCPOptionCode.vendorClass] == Array("PXEClient".utf8))
        #expect(reply.options[DHCPOptionCode.messageType] == [DHCPMessageType.offer.rawValue])
        #expect(reply.options[DHCPOptionCode.clientMachineID] == [0] + Array(repeating: 0, count: 16))
    }

    @Test func chainsForBIOS() throws {
        let pxelinux = try #require(try answer(CapturedPackets.ipxeBIOSDiscover, policy: Self.policy(chain: .pxelinux)))
        #expect(pxelinux.0.bootFile == "selftest/lpxelinux.0")
        let grub = try #require(try answer(CapturedPackets.ipxeBIOSDiscover, policy: Self.policy(chain: .grub)))
        #expect(grub.0.bootFile == "selftest/grub/i386-pc/core.0")
        // Without Debian's ipxe package there is no undionly.kpxe: no answer rather than a wrong one.
        let bare = Self.policy(firmware: FirmwarePrograms())
        let unanswered = try answer(CapturedPackets.ipxeBIOSDiscover, policy: bare, edit: { $0.options[DHCPOptionCode.userClass] = nil })
        #expect(unanswered == nil)
    }

    @Test func uefiMachinesByProfile() throws {
        let hosts = try Self.labHosts()
        // The hosts file sends 52:54:00:77:00:02 to the linux profile.
        let ipxe = try #require(try answer(CapturedPackets.ipxeEFIDiscover, policy: Self.policy(hosts: hosts)))
        #expect(ipxe.0.bootFile == "linux/boot.ipxe")
        let firmware = try #require(try answer(CapturedPackets.ovmfPXEDiscover, policy: Self.policy(hosts: hosts)))
        #expect(firmware.0.bootFile == "ipxe.efi")
        // A multiboot chain on UEFI needs GRUB 2, which this policy lacks: no answer.
        #expect(try answer(CapturedPackets.ovmfPXEDiscover, policy: Self.policy(), mac: [0x52, 0x54, 0, 0x77, 0, 0x05]) == nil)
        // With GRUB 2 for x86_64-efi made for the tree, the firmware gets it, whatever the BIOS chain.
        var withGrub = Self.policy(chain: .pxelinux)
        withGrub.profiles["selftest"]?.grubEFI = "selftest/grub/x86_64-efi/core.efi"
        let grub = try #require(try answer(CapturedPackets.ovmfPXEDiscover, policy: withGrub, mac: [0x52, 0x54, 0, 0x77, 0, 0x05]))
        #expect(grub.0.bootFile == "selftest/grub/x86_64-efi/core.efi")
    }

    @Test func hostsFileChoosesProfileAndChain() throws {
        let hosts = try Self.labHosts()
        let old = try #require(try answer(CapturedPackets.ipxeBIOSDiscover, policy: Self.policy(hosts: hosts, defaultProfile: nil),
                                          mac: [0x52, 0x54, 0, 0x77, 0, 0x09]))
        #expect(old.0.bootFile == "selftest/lpxelinux.0")
        var refusing = hosts
        refusing.unknown = .refuse
        #expect(try answer(CapturedPackets.ipxeBIOSDiscover, policy: Self.policy(hosts: refusing, defaultProfile: nil)) == nil)
        #expect(try answer(CapturedPackets.ipxeBIOSDiscover, policy: Self.policy(hosts: refusing, defaultProfile: nil),
                           mac: [0x52, 0x54, 0, 0x77, 0, 0x09]) != nil)
    }

    @Test func neverAnswersWhatIsNotForIt() throws {
        // A plain DHCP client, an HTTP-boot client, a REQUEST meant for the site server, our own offer.
        #expect(try answer(CapturedPackets.udhcpcDiscover) == nil)
        #expect(try answer(CapturedPackets.ovmfHTTPDiscover) == nil)
        #expect(try answer(CapturedPackets.ipxeBIOSRequest) == nil)
        #expect(try answer(CapturedPackets.dropsProxyOffer) == nil)
        var responder = PXEResponder(serverAddress: Self.server, policy: Self.policy())
        let exchange = responder.respond(to: try DHCPMessage.decode(CapturedPackets.udhcpcDiscover), on: .dhcp, now: 0).exchange
        #expect(exchange.outcome == "ignored: not a PXE client (vendor class 'udhcp 1.35.0')")
        #expect(!exchange.answered)
    }

    @Test func exchangeLogsAsTextAndJSON() throws {
        var responder = PXEResponder(serverAddress: Self.server, policy: Self.policy())
        let exchange = responder.respond(to: try DHCPMessage.decode(CapturedPackets.ipxeBIOSDiscover), on: .dhcp, now: 0).exchange
        #expect(exchange.text == "52:54:00:77:00:01 host=- arch=\"x86 BIOS, iPXE\" DHCPDISCOVER port 67: proxy offer selftest/boot.ipxe (iPXE script, profile selftest)")
        #expect(exchange.json == #"{"answered":true,"arch":"x86 BIOS, iPXE","host":"-","mac":"52:54:00:77:00:01","outcome":"proxy offer selftest/boot.ipxe (iPXE script, profile selftest)","port":67,"request":"DHCPDISCOVER"}"#)
    }

    @Test func bootServerRequestIsAnsweredToTheSender() throws {
        let answered = try answer(CapturedPackets.ipxeBIOSRequest, port: .bootServer, edit: {
            $0.clientAddress = IPv4(10, 77, 0, 100)
            $0.options[DHCPOptionCode.serverIdentifier] = nil
        })
        let (reply, destination) = try #require(answered)
        #expect(destination == .sender)
        #expect(reply.options[DHCPOptionCode.messageType] == [DHCPMessageType.ack.rawValue])
        #expect(reply.clientAddress == IPv4(10, 77, 0, 100) && reply.yourAddress == .zero)
        #expect(reply.bootFile == "selftest/boot.ipxe")
        // A REQUEST on port 67 naming us as the server is answered too.
        let toUs = try answer(CapturedPackets.ipxeBIOSRequest, edit: { $0.options[DHCPOptionCode.serverIdentifier] = Self.server.bytes })
        let ours = try #require(toUs)
        #expect(ours.1 == .broadcast)
    }

    @Test func relayedRequestsGoBackToTheRelay() throws {
        let relayed = try answer(CapturedPackets.ipxeBIOSDiscover, edit: { $0.relayAddress = IPv4(10, 1, 0, 1) })
        let (_, destination) = try #require(relayed)
        #expect(destination == .relay(IPv4(10, 1, 0, 1)))
    }

    @Test func fullDHCPLeasesAddressesToEveryone() throws {
        let pool = LeasePool(first: IPv4(10, 77, 0, 100), last: IPv4(10, 77, 0, 101), subnetMask: IPv4(255, 255, 255, 0), leaseSeconds: 600)
        var responder = PXEResponder(serverAddress: Self.server, policy: Self.policy(), leases: pool)
        // The PXE client gets an address and its boot file in one answer.
        let discover = try DHCPMessage.decode(CapturedPackets.ipxeBIOSDiscover)
        let offer = try #require(responder.respond(to: discover, on: .dhcp, now: 1000).reply)
        #expect(offer.0.yourAddress == IPv4(10, 77, 0, 100))
        #expect(offer.0.bootFile == "selftest/boot.ipxe")
        #expect(offer.0.options[DHCPOptionCode.subnetMask] == [255, 255, 255, 0])
        #expect(offer.0.options[DHCPOptionCode.leaseTime] == [0, 0, 2, 88])
        var request = try DHCPMessage.decode(CapturedPackets.ipxeBIOSRequest)
        request.options[DHCPOptionCode.serverIdentifier] = Self.server.bytes
        let ack = try #require(responder.respond(to: request, on: .dhcp, now: 1001).reply)
        #expect(ack.0.options[DHCPOptionCode.messageType] == [DHCPMessageType.ack.rawValue])
        #expect(ack.0.yourAddress == IPv4(10, 77, 0, 100))
        #expect(responder.leases?.fileText == "1601 52:54:00:77:00:01 10.77.0.100\n")

        // A plain client gets an address too, without boot options.
        let plain = try DHCPMessage.decode(CapturedPackets.udhcpcDiscover)
        let plainOffer = try #require(responder.respond(to: plain, on: .dhcp, now: 1002).reply)
        #expect(plainOffer.0.yourAddress == IPv4(10, 77, 0, 101))
        #expect(plainOffer.0.bootFile.isEmpty && plainOffer.0.options[DHCPOptionCode.vendorClass] == nil)

        // The range is used up: a third machine gets nothing.
        var third = discover
        third.hardwareAddress[5] = 0x33
        #expect(responder.respond(to: third, on: .dhcp, now: 1003).reply == nil)

        // Asking for an address that is not yours: NAK.
        var wrong = request
        wrong.hardwareAddress[5] = 0x44
        let nak = try #require(responder.respond(to: wrong, on: .dhcp, now: 1004).reply)
        #expect(nak.0.options[DHCPOptionCode.messageType] == [DHCPMessageType.nak.rawValue])
    }

    /// A DHCP client like the L4 tftp file provider's (GRUB legacy netboot code: no vendor
    /// class, broadcast flag clear, asking for options 1, 3, 12 and 18) learns its TFTP server
    /// from siaddr, and gets the router when --router names one.
    @Test func fullDHCPNamesUsAsNextServerAndTheRouterForEveryClient() throws {
        let pool = LeasePool(first: IPv4(10, 77, 0, 100), last: IPv4(10, 77, 0, 101), subnetMask: IPv4(255, 255, 255, 0), leaseSeconds: 600)
        var discover = try DHCPMessage.decode(CapturedPackets.udhcpcDiscover)
        discover.options[DHCPOptionCode.vendorClass] = nil
        discover.options[DHCPOptionCode.parameterRequestList] = [1, 3, 12, 18]
        discover.flags = 0
        var withRouter = PXEResponder(serverAddress: Self.server, policy: Self.policy(), leases: pool, router: IPv4(10, 77, 0, 1))
        let offer = try #require(withRouter.respond(to: discover, on: .dhcp, now: 1000).reply)
        #expect(offer.0.serverAddress == Self.server)
        #expect(offer.0.options[DHCPOptionCode.router] == [10, 77, 0, 1])
        var request = discover
        request.options[DHCPOptionCode.messageType] = [DHCPMessageType.request.rawValue]
        request.options[DHCPOptionCode.requestedAddress] = offer.0.yourAddress.bytes
        request.options[DHCPOptionCode.serverIdentifier] = Self.server.bytes
        let ack = try #require(withRouter.respond(to: request, on: .dhcp, now: 1001).reply)
        #expect(ack.0.serverAddress == Self.server && ack.0.options[DHCPOptionCode.router] == [10, 77, 0, 1])
        var without = PXEResponder(serverAddress: Self.server, policy: Self.policy(), leases: pool)
        let plain = try #require(without.respond(to: discover, on: .dhcp, now: 1000).reply)
        #expect(plain.0.serverAddress == Self.server && plain.0.options[DHCPOptionCode.router] == nil)
    }
}

@Suite struct LeasePoolTests {
    let mask = IPv4(255, 255, 255, 0)

    @Test func offersCommitsAndExpires() {
        var pool = LeasePool(first: IPv4(10, 0, 0, 10), last: IPv4(10, 0, 0, 12), subnetMask: mask, leaseSeconds: 100)
        let r1 = pool.offer(mac: "a", requested: nil, now: 0)
        #expect(r1 == IPv4(10, 0, 0, 10))
        // The same client asking again gets the same address; a wish for a free one is granted.
        let r2 = pool.offer(mac: "a", requested: nil, now: 1)
        #expect(r2 == IPv4(10, 0, 0, 10))
        let r101 = pool.offer(mac: "b", requested: IPv4(10, 0, 0, 12), now: 1)
        #expect(r101 == IPv4(10, 0, 0, 12))
        let r102 = pool.commit(mac: "a", address: IPv4(10, 0, 0, 10), now: 2)
        #expect(r102)
        let r103 = pool.commit(mac: "c", address: IPv4(10, 0, 0, 10), now: 2)
        #expect(!r103)
        let r104 = pool.commit(mac: "c", address: IPv4(10, 0, 0, 99), now: 2)
        #expect(!r104)
        // b's offer lapses after a minute; a's lease after 100 s.
        let r105 = pool.offer(mac: "c", requested: IPv4(10, 0, 0, 12), now: 70)
        #expect(r105 == IPv4(10, 0, 0, 12))
        let r3 = pool.offer(mac: "d", requested: nil, now: 71)
        #expect(r3 == IPv4(10, 0, 0, 11))
        let r4 = pool.offer(mac: "e", requested: nil, now: 72)
        #expect(r4 == nil)
        let r5 = pool.offer(mac: "e", requested: nil, now: 103)
        #expect(r5 == IPv4(10, 0, 0, 10))
    }

    @Test func releaseDeclineAndWithdraw() {
        var pool = LeasePool(first: IPv4(10, 0, 0, 10), last: IPv4(10, 0, 0, 11), subnetMask: mask)
        let r106 = pool.commit(mac: "a", address: IPv4(10, 0, 0, 10), now: 0)
        #expect(r106)
        pool.release(mac: "a", address: IPv4(10, 0, 0, 10))
        let r107 = pool.leases.isEmpty
        #expect(r107)
        pool.decline(address: IPv4(10, 0, 0, 10), now: 0)
        let r108 = pool.offer(mac: "b", requested: IPv4(10, 0, 0, 10), now: 1)
        #expect(r108 == IPv4(10, 0, 0, 11))
        pool.withdrawOffer(mac: "b")
        let r109 = pool.leases.isEmpty
        #expect(r109)
        let r6 = pool.offer(mac: "c", requested: nil, now: 601)
        #expect(r6 == IPv4(10, 0, 0, 10))
    }

    @Test func leaseFileRoundTrip() {
        var pool = LeasePool(first: IPv4(10, 0, 0, 10), last: IPv4(10, 0, 0, 20), subnetMask: mask, leaseSeconds: 50)
        _ = pool.commit(mac: "52:54:00:00:00:01", address: IPv4(10, 0, 0, 15), now: 100)
        _ = pool.offer(mac: "52:54:00:00:00:02", requested: nil, now: 100)
        let r110 = pool.fileText
        #expect(r110 == "150 52:54:00:00:00:01 10.0.0.15\n")
        let (leases, skipped) = LeasePool.parseLeaseFile(pool.fileText + "garbage line\n")
        #expect(skipped == [2])
        let restored = LeasePool(first: IPv4(10, 0, 0, 10), last: IPv4(10, 0, 0, 20), subnetMask: mask, leaseSeconds: 50, leases: leases)
        #expect(restored.leases == [LeasePool.Lease(mac: "52:54:00:00:00:01", address: IPv4(10, 0, 0, 15), expires: 150, offered: false)])
    }
}
