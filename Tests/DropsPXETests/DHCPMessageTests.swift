@testable import DropsPXE
import Testing

@Suite struct DHCPMessageTests {
    @Test func readsCapturedRequests() throws {
        let bios = try DHCPMessage.decode(CapturedPackets.ipxeBIOSDiscover)
        #expect(bios.op == 1)
        #expect(bios.transactionID == 0x6896_227B)
        #expect(bios.clientMAC.description == "52:54:00:77:00:01")
        let client = PXEClient(bios)
        #expect(client.messageType == .discover)
        #expect(client.vendorClass == "PXEClient:Arch:00000:UNDI:002001")
        #expect(client.architecture == .x86BIOS)
        #expect(client.isPXE && client.isIPXE)
        #expect(client.machineID == [0] + Array(repeating: 0, count: 16))

        let efi = PXEClient(try DHCPMessage.decode(CapturedPackets.ipxeEFIDiscover))
        #expect(efi.architecture == .efiX64 && efi.isIPXE && efi.isPXE)

        let ovmf = PXEClient(try DHCPMessage.decode(CapturedPackets.ovmfPXEDiscover))
        #expect(ovmf.architecture == .efiX64 && !ovmf.isIPXE && ovmf.isPXE)

        let http = PXEClient(try DHCPMessage.decode(CapturedPackets.ovmfHTTPDiscover))
        #expect(!http.isPXE && http.isHTTPClient)
        #expect(http.architecture == .efiX64HTTP)
        // The firmware behind an exchange's logged arch, as drops-run --host reads it back.
        #expect(ClientArchitecture.firmware(described: "x86 BIOS, iPXE") == "bios")
        #expect(ClientArchitecture.firmware(described: ClientArchitecture.efiX64HTTP.description) == "uefi")
        #expect(ClientArchitecture.firmware(described: "EFI IA32") == "uefi")
        #expect(ClientArchitecture.firmware(described: "architecture 11") == nil)

        let plain = PXEClient(try DHCPMessage.decode(CapturedPackets.udhcpcDiscover))
        #expect(plain.vendorClass == "udhcp 1.35.0" && !plain.isPXE && !plain.isIPXE)

        let request = try DHCPMessage.decode(CapturedPackets.ipxeBIOSRequest)
        #expect(PXEClient(request).messageType == .request)
        #expect(request.options[DHCPOptionCode.serverIdentifier] == [10, 77, 0, 1])
        #expect(request.options[DHCPOptionCode.requestedAddress] == [10, 77, 0, 100])
    }

    @Test func readsReferenceServersAnswers() throws {
        let offer = try DHCPMessage.decode(CapturedPackets.dnsmasqOffer)
        #expect(offer.op == 2 && offer.yourAddress == IPv4(10, 77, 0, 100))
        #expect(offer.options[DHCPOptionCode.messageType] == [2])
        #expect(offer.options[DHCPOptionCode.serverIdentifier] == [10, 77, 0, 1])

        // dnsmasq's proxy offer: no address, PXEClient, a boot menu in option 43.
        let proxy = try DHCPMessage.decode(CapturedPackets.dnsmasqProxyOffer)
        #expect(proxy.yourAddress == .zero)
        #expect(proxy.options[DHCPOptionCode.vendorClass] == Array("PXEClient".utf8))
        let pxe = try #require(proxy.options[DHCPOptionCode.vendorSpecific])
        #expect(pxe.first == 6 && pxe.last == 255)
    }

    /// Every captured datagram decodes, re-encodes and decodes to the same message; our own
    /// offer is reproduced byte for byte.
    @Test(arguments: [CapturedPackets.ipxeBIOSDiscover, CapturedPackets.ipxeBIOSRequest, CapturedPackets.dropsProxyOffer,
                      CapturedPackets.dnsmasqOffer, CapturedPackets.dnsmasqProxyOffer, CapturedPackets.ipxeEFIDiscover,
                      CapturedPackets.ovmfPXEDiscover, CapturedPackets.ovmfHTTPDiscover, CapturedPackets.udhcpcDiscover])
    func roundTrips(bytes: [UInt8]) throws {
        let message = try DHCPMessage.decode(bytes)
        #expect(try DHCPMessage.decode(message.encoded()) == message)
    }

    @Test func ownOfferIsByteIdentical() throws {
        let message = try DHCPMessage.decode(CapturedPackets.dropsProxyOffer)
        #expect(message.encoded() == CapturedPackets.dropsProxyOffer)
    }

    @Test func overloadedFieldsAreReadAsOptions() throws {
        var bytes = CapturedPackets.udhcpcDiscover
        // Option 52 = 3: both file and sname hold options. Put the vendor class into `file`
        // and a host name into `sname`.
        let optionsStart = 240
        bytes.replaceSubrange(optionsStart..<bytes.count, with: [52, 1, 3, 53, 1, 1, 255] + Array(repeating: 0, count: 53))
        let vendor = Array("PXEClient:Arch:00000".utf8)
        bytes.replaceSubrange(108..<(108 + vendor.count + 3), with: [60, UInt8(vendor.count)] + vendor + [255])
        bytes.replaceSubrange(44..<52, with: [12, 5] + Array("pc-07".utf8) + [255])
        let message = try DHCPMessage.decode(bytes)
        #expect(message.options[DHCPOptionCode.vendorClass] == vendor)
        #expect(message.options[DHCPOptionCode.hostName] == Array("pc-07".utf8))
        #expect(message.options[DHCPOptionCode.overload] == nil)
        #expect(message.bootFile.isEmpty && message.serverName.isEmpty)
        #expect(PXEClient(message).isPXE)
    }

    @Test func longOptionsAreJoinedAndSplit() throws {
        var message = try DHCPMessage.decode(CapturedPackets.udhcpcDiscover)
        let long = (0..<600).map { UInt8($0 % 251) }
        message.options[DHCPOptionCode.bootFileName] = long
        let bytes = message.encoded()
        // 600 bytes travel as parts of 255, 255 and 90 (RFC 3396) and come back whole.
        #expect(try DHCPMessage.decode(bytes).options[DHCPOptionCode.bootFileName] == long)
    }

    @Test(arguments: [
        ([UInt8](repeating: 0, count: 239), DHCPDecodeError.tooShort(239)),
        ([UInt8](repeating: 0, count: 240), DHCPDecodeError.badCookie),
    ])
    func refusesWhatIsNotDHCP(bytes: [UInt8], expected: DHCPDecodeError) {
        #expect(throws: expected) { try DHCPMessage.decode(bytes) }
    }

    @Test func truncatedOptionIsAnError() {
        var bytes = Array(CapturedPackets.udhcpcDiscover.prefix(240))
        bytes += [53, 1, 1, 60, 20, 65, 66]
        #expect(throws: DHCPDecodeError.truncatedOption(code: 60, at: 243)) { try DHCPMessage.decode(bytes) }
    }

    @Test func userClassInBothForms() {
        #expect(PXEClient.userClasses(Array("iPXE".utf8)).contains("iPXE"))
        #expect(PXEClient.userClasses([4] + Array("iPXE".utf8) + [3] + Array("lab".utf8)).contains("iPXE"))
        #expect(!PXEClient.userClasses(Array("gPXE".utf8)).contains("iPXE"))
    }

    /// Seeded random datagrams and mutations of the captures: the decoder and the responder
    /// never trap, whatever arrives.
    @Test func randomDatagramsNeverTrap() {
        var generator = SeededGenerator(seed: 0xD0C5)
        let seeds = [CapturedPackets.ipxeBIOSDiscover, CapturedPackets.ipxeBIOSRequest, CapturedPackets.ovmfPXEDiscover,
                     CapturedPackets.udhcpcDiscover, CapturedPackets.dnsmasqProxyOffer]
        var responder = PXEResponder(serverAddress: IPv4(10, 77, 0, 2), policy: ResponderTests.policy(),
                                     leases: LeasePool(first: IPv4(10, 77, 0, 100), last: IPv4(10, 77, 0, 103), subnetMask: IPv4(255, 255, 255, 0)))
        var proxy = PXEResponder(serverAddress: IPv4(10, 77, 0, 2), policy: ResponderTests.policy())
        var decoded = 0
        for round in 0..<30_000 {
            var bytes: [UInt8]
            if round % 3 == 0 {
                bytes = (0..<Int.random(in: 0...600, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                bytes = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...12, using: &generator) {
                    let index = Int.random(in: 0..<bytes.count, using: &generator)
                    // Options and their lengths are where decoders break: aim there often.
                    bytes[Bool.random(using: &generator) ? index : max(236, index)] = UInt8.random(in: 0...255, using: &generator)
                }
                if Bool.random(using: &generator) { bytes.removeLast(Int.random(in: 0..<min(80, bytes.count), using: &generator)) }
            }
            guard let message = try? DHCPMessage.decode(bytes) else { continue }
            decoded += 1
            _ = message.encoded()
            _ = responder.respond(to: message, on: round % 2 == 0 ? .dhcp : .bootServer, now: UInt64(round))
            _ = proxy.respond(to: message, on: .dhcp, now: UInt64(round))
        }
        #expect(decoded > 1000)
    }
}

/// xorshift64*: the same sequence on every run, so a failure can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
