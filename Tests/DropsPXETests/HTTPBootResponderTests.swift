import DropsModel
@testable import DropsPXE
import Testing

/// UEFI HTTP Boot (UEFI 2.5+): a client whose vendor class starts with HTTPClient and whose
/// architecture is 16 gets the http:// URI of its boot program on our HTTP listener, with
/// vendor class HTTPClient in the answer, as proxyDHCP and as a full DHCP server.
@Suite struct HTTPBootResponderTests {
    /// OVMF's HTTP Boot DISCOVER as captured (vendor class HTTPClient:Arch:00016), from the
    /// machine the hosts file sends to the linux profile.
    func httpDiscover() throws -> DHCPMessage {
        var request = try DHCPMessage.decode(CapturedPackets.ovmfHTTPDiscover)
        request.hardwareAddress = [0x52, 0x54, 0, 0x77, 0, 0x02] + Array(repeating: 0, count: 10)
        #expect(PXEClient(request).isHTTPClient && PXEClient(request).architecture == .efiX64HTTP)
        return request
    }

    @Test func aProxyOfferNamesTheBootProgramsURI() throws {
        let hosts = try ResponderTests.labHosts()
        var responder = PXEResponder(serverAddress: ResponderTests.server, policy: ResponderTests.policy(hosts: hosts))
        responder.httpBase = "http://10.77.0.2:8080"
        let (reply, exchange) = responder.respond(to: try httpDiscover(), on: .dhcp, now: 0)
        let (offer, _) = try #require(reply, "\(exchange.outcome)")
        // 52:54:00:77:00:02 boots the linux profile: iPXE for UEFI, over HTTP.
        #expect(offer.options[DHCPOptionCode.bootFileName] == Array("http://10.77.0.2:8080/ipxe.efi".utf8))
        #expect(offer.bootFile == "http://10.77.0.2:8080/ipxe.efi")
        #expect(offer.options[DHCPOptionCode.vendorClass] == Array("HTTPClient".utf8))
        #expect(offer.options[DHCPOptionCode.vendorSpecific] == nil, "no PXE menu options for an HTTP client")
        #expect(offer.yourAddress == .zero, "proxyDHCP: no address")
        #expect(exchange.architecture == "x86-64 UEFI HTTP")
        #expect(exchange.outcome.contains("proxy offer http://10.77.0.2:8080/ipxe.efi"), "\(exchange.outcome)")
    }

    @Test func withoutAnHTTPListenerTheClientGetsNoAnswerAndTheLogSaysWhy() throws {
        var responder = PXEResponder(serverAddress: ResponderTests.server, policy: ResponderTests.policy())
        let (reply, exchange) = responder.respond(to: try httpDiscover(), on: .dhcp, now: 0)
        #expect(reply == nil)
        #expect(exchange.outcome.contains("no HTTP listener (--http-port)"), "\(exchange.outcome)")
    }

    @Test func aFullDHCPAnswerCarriesAddressAndURI() throws {
        let pool = LeasePool(first: IPv4(10, 77, 0, 150), last: IPv4(10, 77, 0, 160), subnetMask: IPv4(255, 255, 255, 0))
        var responder = PXEResponder(serverAddress: ResponderTests.server, policy: ResponderTests.policy(hosts: try ResponderTests.labHosts()), leases: pool)
        responder.httpBase = "http://10.77.0.2:8080"
        let (reply, exchange) = responder.respond(to: try httpDiscover(), on: .dhcp, now: 0)
        let (offer, _) = try #require(reply, "\(exchange.outcome)")
        #expect(offer.yourAddress == IPv4(10, 77, 0, 150))
        #expect(offer.options[DHCPOptionCode.bootFileName] == Array("http://10.77.0.2:8080/ipxe.efi".utf8))
        #expect(offer.options[DHCPOptionCode.vendorClass] == Array("HTTPClient".utf8))
    }

    @Test func pxeClientsStillGetTFTPNames() throws {
        var responder = PXEResponder(serverAddress: ResponderTests.server, policy: ResponderTests.policy(hosts: try ResponderTests.labHosts()))
        responder.httpBase = "http://10.77.0.2:8080"
        let (reply, _) = responder.respond(to: try DHCPMessage.decode(CapturedPackets.ovmfPXEDiscover), on: .dhcp, now: 0)
        let (offer, _) = try #require(reply)
        #expect(offer.bootFile == "ipxe.efi")
        #expect(offer.options[DHCPOptionCode.vendorClass] == Array("PXEClient".utf8))
    }
}
