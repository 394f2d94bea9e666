import Testing

@testable import DropsTFTP

@Suite struct TFTPPacketTests {
    @Test func readRequestFromRFC2347Example() throws {
        // RFC 2347 section "Example": RRQ foobar octet blksize 1428 tsize 0 (the option values in text).
        let bytes: [UInt8] = [0, 1] + Array("foobar".utf8) + [0] + Array("octet".utf8) + [0]
            + Array("blksize".utf8) + [0] + Array("1428".utf8) + [0] + Array("tsize".utf8) + [0] + Array("0".utf8) + [0]
        let packet = try TFTPPacket.decode(bytes)
        #expect(packet == .readRequest(filename: "foobar", mode: .octet, options: [TFTPOption("blksize", "1428"), TFTPOption("tsize", "0")]))
        #expect(packet.encoded() == bytes)
    }

    @Test func modeIsCaseInsensitive() throws {
        let bytes: [UInt8] = [0, 1] + Array("f".utf8) + [0] + Array("NetASCII".utf8) + [0]
        #expect(try TFTPPacket.decode(bytes) == .readRequest(filename: "f", mode: .netascii, options: []))
    }

    @Test func danglingOptionNameIsDropped() throws {
        // The historic L4 client's write request: "blksize" with no value.
        let bytes: [UInt8] = [0, 2] + Array("dump".utf8) + [0] + Array("octet".utf8) + [0] + Array("blksize".utf8) + [0]
        #expect(try TFTPPacket.decode(bytes) == .writeRequest(filename: "dump", mode: .octet, options: []))
        let unterminated: [UInt8] = [0, 2] + Array("dump".utf8) + [0] + Array("octet".utf8) + [0] + Array("blksize".utf8)
        #expect(try TFTPPacket.decode(unterminated) == .writeRequest(filename: "dump", mode: .octet, options: []))
    }

    @Test func roundTripsEveryKind() throws {
        let packets: [TFTPPacket] = [
            .data(block: 65535, payload: [1, 2, 3]),
            .data(block: 0, payload: []),
            .ack(block: 513),
            .error(code: .fileNotFound, message: "no such file"),
            .optionAck(options: [TFTPOption("blksize", "1432"), TFTPOption("tsize", "12345")]),
            .writeRequest(filename: "a/b", mode: .octet, options: [TFTPOption("windowsize", "16")]),
        ]
        for packet in packets {
            #expect(try TFTPPacket.decode(packet.encoded()) == packet)
        }
        #expect(TFTPPacket.ack(block: 0x0102).encoded() == [0, 4, 1, 2])
        #expect(TFTPPacket.data(block: 1, payload: [9]).encoded() == [0, 3, 0, 1, 9])
    }

    @Test func malformedPacketsAreRejected() {
        #expect(throws: TFTPDecodeError.tooShort(1)) { try TFTPPacket.decode([0]) }
        #expect(throws: TFTPDecodeError.unknownOpcode(9)) { try TFTPPacket.decode([0, 9, 0, 0]) }
        #expect(throws: TFTPDecodeError.tooShort(3)) { try TFTPPacket.decode([0, 4, 0]) }
        #expect(throws: TFTPDecodeError.unterminatedString(field: "filename")) { try TFTPPacket.decode([0, 1] + Array("abc".utf8)) }
        #expect(throws: TFTPDecodeError.badMode("mail")) {
            try TFTPPacket.decode([0, 1, 0x61, 0] + Array("mail".utf8) + [0])
        }
        #expect(throws: TFTPDecodeError.self) { try TFTPPacket.decode([0, 1, 0xFF, 0xFE, 0] + Array("octet".utf8) + [0]) }
    }

    @Test func errorWithoutTerminatorIsAccepted() throws {
        #expect(try TFTPPacket.decode([0, 5, 0, 1] + Array("gone".utf8)) == .error(code: .fileNotFound, message: "gone"))
    }
}

@Suite struct OptionNegotiationTests {
    let limits = TFTPLimits()

    @Test func acknowledgesOnlyWhatWasAskedInTheClientsOrder() {
        let result = NegotiatedOptions.negotiate([TFTPOption("tsize", "0"), TFTPOption("foo", "bar"), TFTPOption("BLKSIZE", "1432")],
                                                 transferSize: 1000, limits: limits)
        #expect(result.acknowledged == [TFTPOption("tsize", "1000"), TFTPOption("BLKSIZE", "1432")])
        #expect(result.blockSize == 1432)
        #expect(result.windowSize == 1)
    }

    @Test func neverGrantsMoreThanAskedOrAllowed() {
        var capped = limits
        capped.maxBlockSize = 1024
        capped.maxWindowSize = 16
        let result = NegotiatedOptions.negotiate([TFTPOption("blksize", "65464"), TFTPOption("windowsize", "64")], transferSize: 1, limits: capped)
        #expect(result.blockSize == 1024)
        #expect(result.windowSize == 16)
        #expect(result.acknowledged == [TFTPOption("blksize", "1024"), TFTPOption("windowsize", "16")])
        let small = NegotiatedOptions.negotiate([TFTPOption("blksize", "8")], transferSize: 1, limits: limits)
        #expect(small.blockSize == 8)
    }

    @Test func invalidValuesAreIgnoredNotEchoed() {
        let result = NegotiatedOptions.negotiate([TFTPOption("blksize", "7"), TFTPOption("timeout", "0"), TFTPOption("windowsize", "x"),
                                                  TFTPOption("tsize", "-1"), TFTPOption("blksize", "")], transferSize: 5, limits: limits)
        #expect(result.acknowledged.isEmpty)
        #expect(result.blockSize == 512)
    }

    @Test func timeoutIsTakenInSeconds() {
        let result = NegotiatedOptions.negotiate([TFTPOption("timeout", "3")], transferSize: 1, limits: limits)
        #expect(result.timeoutNanoseconds == 3_000_000_000)
        #expect(result.acknowledged == [TFTPOption("timeout", "3")])
    }

    @Test func writeRequestEchoesTheAnnouncedSize() {
        let result = NegotiatedOptions.negotiate([TFTPOption("tsize", "4096")], transferSize: nil, limits: limits)
        #expect(result.acknowledged == [TFTPOption("tsize", "4096")])
    }
}

@Suite struct NetasciiTests {
    @Test func convertsLineEndsBothWays() {
        let text: [UInt8] = Array("a\nb\rc\r\n".utf8)
        let wire = Netascii.encode(text)
        #expect(wire == Array("a\r\nb\r\0c\r\0\r\n".utf8))
        #expect(Netascii.decode(wire) == text)
    }
}
