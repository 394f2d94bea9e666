import DropsTestSupport
import Testing

@testable import DropsTFTP

/// Seeded random input for the codec and the transfer state machines: nothing may trap, and
/// the invariants the network handler relies on must hold whatever a peer sends.
@Suite struct FuzzTests {
    static let validPackets: [TFTPPacket] = [
        .readRequest(filename: "l4env/bin/fiasco", mode: .octet, options: [TFTPOption("blksize", "1468"), TFTPOption("tsize", "0")]),
        .readRequest(filename: "/tftpboot/jork/menu.lst", mode: .netascii, options: []),
        .readRequest(filename: "boot.ipxe", mode: .octet, options: [TFTPOption("windowsize", "16"), TFTPOption("timeout", "3")]),
        .writeRequest(filename: "dump", mode: .octet, options: [TFTPOption("tsize", "4096")]),
        .data(block: 1, payload: Array(0..<255)),
        .data(block: 65535, payload: []),
        .ack(block: 0),
        .ack(block: 4242),
        .error(code: .fileNotFound, message: "no such file"),
        .optionAck(options: [TFTPOption("blksize", "1432"), TFTPOption("windowsize", "8")]),
    ]

    static let words: [[UInt8]] = [
        Array("octet".utf8), Array("NETASCII".utf8), Array("mail".utf8), Array("blksize".utf8), Array("65464".utf8),
        Array("tsize".utf8), Array("windowsize".utf8), Array("timeout".utf8), Array("../".utf8), [], [0xFF, 0xFE], [0xC3], [0xE2, 0x82],
    ]

    static func integer(_ random: inout SplitMix64, _ range: Range<Int>) -> Int {
        range.lowerBound + Int(random.next() % UInt64(range.count))
    }

    /// One datagram: random bytes, a mutated valid packet, or a request made of loose words.
    static func input(_ random: inout SplitMix64) -> [UInt8] {
        let valid = validPackets[integer(&random, 0..<validPackets.count)].encoded()
        switch integer(&random, 0..<8) {
        case 0:
            return random.bytes(integer(&random, 0..<64))
        case 1:
            return [0, UInt8(integer(&random, 0..<8))] + random.bytes(integer(&random, 0..<600))
        case 2:
            var bytes = valid
            for _ in 0..<integer(&random, 1..<5) {
                bytes[integer(&random, 0..<bytes.count)] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            }
            return bytes
        case 3:
            return Array(valid.prefix(integer(&random, 0..<valid.count)))
        case 4:
            let tail = random.next() & 1 == 0 ? random.bytes(integer(&random, 1..<32)) : [UInt8](repeating: 0, count: integer(&random, 1..<8))
            return valid + tail
        case 5:
            var bytes = valid
            bytes[0] = UInt8(truncatingIfNeeded: random.next())
            bytes[1] = UInt8(truncatingIfNeeded: random.next())
            return bytes
        case 6:
            var bytes: [UInt8] = [0, UInt8(integer(&random, 1..<3))]
            for index in 0..<integer(&random, 0..<7) {
                bytes += words[integer(&random, 0..<words.count)]
                // Sometimes the last field has no terminator, as the historic L4 client sends it.
                if index < 6 || random.next() & 1 == 0 { bytes.append(0) }
            }
            return bytes
        default:
            // DATA around the largest block size: 65464 is the limit, one more is refused.
            let size = TFTPPacket.maxBlockSize + integer(&random, -1..<3)
            return [0, 3, UInt8(integer(&random, 0..<256)), UInt8(integer(&random, 0..<256))] + [UInt8](repeating: 0xA5, count: size)
        }
    }

    @Test func decoderReturnsOrThrowsForAnyDatagram() {
        var random = SplitMix64(seed: 0x7F7B_F022)
        var decoded = 0
        var refused = 0
        var unstable = 0
        for _ in 0..<200_000 {
            let bytes = Self.input(&random)
            do {
                let packet = try TFTPPacket.decode(bytes)
                decoded += 1
                // Whatever decodes must survive its own encoding unchanged.
                let again = try? TFTPPacket.decode(packet.encoded())
                if again != packet {
                    unstable += 1
                    if unstable <= 5 { Issue.record("\(bytes.prefix(40)) decodes to \(packet), its encoding to \(String(describing: again))") }
                }
            } catch {
                refused += 1
            }
        }
        // The mix must exercise both outcomes, or the generator is broken.
        #expect(decoded > 20_000)
        #expect(refused > 20_000)
        #expect(unstable == 0)
    }

    @Test func readTransferInvariantsHoldUnderRandomEvents() {
        var random = SplitMix64(seed: 0x0BAD_AC4B)
        var completions = 0
        for round in 0..<3000 {
            var requested: [TFTPOption] = []
            if random.next() & 1 == 0 { requested.append(TFTPOption("blksize", String([8, 9, 512, 1024, 1468][Self.integer(&random, 0..<5)]))) }
            if random.next() & 1 == 0 { requested.append(TFTPOption("windowsize", String(Self.integer(&random, 1..<17)))) }
            if random.next() & 3 == 0 { requested.append(TFTPOption("tsize", "0")) }
            var limits = TFTPLimits()
            limits.timeoutNanoseconds = 1000
            let blockSizeGuess = requested.first { $0.name == "blksize" }.flatMap { Int($0.value) } ?? 512
            let size: Int = switch Self.integer(&random, 0..<4) {
            case 0: 0
            case 1: blockSizeGuess * Self.integer(&random, 1..<12)
            default: Self.integer(&random, 0..<(blockSizeGuess * 12))
            }
            let options = NegotiatedOptions.negotiate(requested, transferSize: size, limits: limits)
            let maxRetries = Self.integer(&random, 0..<4)
            var transfer = ReadTransfer(size: size, options: options, maxRetries: maxRetries)
            let blockSize = options.blockSize
            var now: UInt64 = 0
            var finished = false
            var lastBlockSent = false
            var highestSent: UInt16 = 0
            var dataBytes = 0
            for step in 0..<300 {
                now += UInt64(Self.integer(&random, 0..<1500))
                let event: TransferEvent
                if step == 0 && random.next() % 10 != 0 {
                    event = .start
                } else {
                    switch Self.integer(&random, 0..<20) {
                    case 0..<9: event = .packet(.ack(block: highestSent))
                    case 9: event = .packet(.ack(block: highestSent &- UInt16(Self.integer(&random, 0..<4))))
                    case 10: event = .packet(.ack(block: UInt16(truncatingIfNeeded: random.next())))
                    case 11: event = .packet(.ack(block: 0))
                    case 12..<15: event = .timeout
                    case 15: event = .start
                    case 16: event = .packet(.data(block: highestSent, payload: [1]))
                    case 17: event = .packet(.error(code: .notDefined, message: "gone"))
                    case 18: event = .packet(.optionAck(options: []))
                    default: event = .packet(.ack(block: highestSent &+ 1))
                    }
                }
                let actions = transfer.handle(event, now: now)
                if finished {
                    #expect(actions.isEmpty, "round \(round): \(event) after the finish gave \(actions)")
                    continue
                }
                var dataInList = 0
                for (index, action) in actions.enumerated() {
                    switch action {
                    case let .sendData(block, offset, length):
                        dataInList += 1
                        dataBytes += length
                        #expect(offset >= 0 && length >= 0 && offset + length <= size, "round \(round): \(action) for a file of \(size)")
                        #expect(length <= blockSize && offset % blockSize == 0, "round \(round): \(action) with blocks of \(blockSize)")
                        #expect(block == UInt16(truncatingIfNeeded: offset / blockSize + 1), "round \(round): \(action)")
                        if length < blockSize { lastBlockSent = true }
                        highestSent = block
                    case let .armTimer(deadline):
                        #expect(deadline > now, "round \(round): a timer in the past")
                    case let .finish(outcome):
                        finished = true
                        #expect(index == actions.count - 1, "round \(round): actions after the finish: \(actions)")
                        if outcome == .completed {
                            completions += 1
                            #expect(lastBlockSent, "round \(round): completed before the last block went out")
                        }
                        if case let .timedOut(retries) = outcome { #expect(retries == maxRetries) }
                    case let .send(packet):
                        if case .error = packet {
                            #expect(actions.last.map { if case .finish = $0 { true } else { false } } == true,
                                    "round \(round): an ERROR that does not end the transfer: \(actions)")
                        }
                    case .write:
                        Issue.record("round \(round): a read transfer wrote \(action)")
                    }
                }
                #expect(dataInList <= options.windowSize, "round \(round): \(dataInList) blocks for a window of \(options.windowSize)")
                #expect(transfer.isFinished == finished)
            }
            #expect(transfer.bytesSent == dataBytes)
        }
        // Good clients dominate the mix: many rounds must reach the end.
        #expect(completions > 300)
    }

    @Test func writeTransferInvariantsHoldUnderRandomEvents() {
        var random = SplitMix64(seed: 0x5EED_0002)
        var completions = 0
        for round in 0..<3000 {
            var requested: [TFTPOption] = []
            if random.next() & 1 == 0 { requested.append(TFTPOption("blksize", String([8, 100, 512, 1468][Self.integer(&random, 0..<4)]))) }
            var limits = TFTPLimits()
            limits.timeoutNanoseconds = 1000
            let options = NegotiatedOptions.negotiate(requested, transferSize: nil, limits: limits)
            let blockSize = options.blockSize
            let maxSize = Self.integer(&random, 0..<(blockSize * 10))
            let maxRetries = Self.integer(&random, 0..<4)
            var transfer = WriteTransfer(options: options, maxRetries: maxRetries, maxSize: maxSize)
            var now: UInt64 = 0
            var finished = false
            var written = 0
            var lastWriteWasShort = false
            var blocks = 0
            for step in 0..<200 {
                now += UInt64(Self.integer(&random, 0..<1500))
                let next = UInt16(truncatingIfNeeded: blocks + 1)
                let payloadSize: Int = switch Self.integer(&random, 0..<10) {
                case 0..<6: blockSize
                case 6, 7: Self.integer(&random, 0..<blockSize)
                case 8: blockSize + Self.integer(&random, 1..<10)
                default: 0
                }
                let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: step), count: payloadSize)
                let event: TransferEvent
                if step == 0 && random.next() % 10 != 0 {
                    event = .start
                } else {
                    switch Self.integer(&random, 0..<16) {
                    case 0..<8: event = .packet(.data(block: next, payload: payload))
                    case 8: event = .packet(.data(block: next &- 1, payload: payload))
                    case 9: event = .packet(.data(block: UInt16(truncatingIfNeeded: random.next()), payload: payload))
                    case 10, 11: event = .timeout
                    case 12: event = .start
                    case 13: event = .packet(.error(code: .diskFull, message: "stop"))
                    case 14: event = .packet(.ack(block: next))
                    default: event = .packet(.data(block: next &+ 1, payload: payload))
                    }
                }
                let actions = transfer.handle(event, now: now)
                if finished {
                    #expect(actions.isEmpty, "round \(round): \(event) after the finish gave \(actions)")
                    continue
                }
                for (index, action) in actions.enumerated() {
                    switch action {
                    case let .write(offset, bytes):
                        #expect(offset == written, "round \(round): a write at \(offset) after \(written) bytes")
                        #expect(bytes.count <= blockSize, "round \(round): a block of \(bytes.count) with blocks of \(blockSize)")
                        written += bytes.count
                        blocks += 1
                        lastWriteWasShort = bytes.count < blockSize
                        // The ACK right after a write names the block just written.
                        if index + 1 < actions.count {
                            #expect(actions[index + 1] == .send(.ack(block: UInt16(truncatingIfNeeded: blocks))))
                        }
                    case let .finish(outcome):
                        finished = true
                        #expect(index == actions.count - 1, "round \(round): actions after the finish: \(actions)")
                        if outcome == .completed {
                            completions += 1
                            #expect(lastWriteWasShort, "round \(round): completed without a short block")
                        }
                        if case let .timedOut(retries) = outcome { #expect(retries == maxRetries) }
                    case let .armTimer(deadline):
                        #expect(deadline > now)
                    case .sendData:
                        Issue.record("round \(round): a write transfer sent data \(action)")
                    case .send:
                        break
                    }
                }
                #expect(written <= maxSize, "round \(round): \(written) bytes written with a limit of \(maxSize)")
                #expect(transfer.bytesReceived == written)
                #expect(transfer.isFinished == finished)
            }
        }
        #expect(completions > 300)
    }
}
