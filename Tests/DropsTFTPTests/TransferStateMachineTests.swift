import Testing

@testable import DropsTFTP

/// The transfer state machines driven by hand with an injected clock: no sockets, no sleeps.
@Suite struct ReadTransferTests {
    let second: UInt64 = 1_000_000_000

    func options(_ requested: [TFTPOption], size: Int, limits: TFTPLimits = TFTPLimits()) -> NegotiatedOptions {
        NegotiatedOptions.negotiate(requested, transferSize: size, limits: limits)
    }

    func dataBlocks(_ actions: [TransferAction]) -> [UInt16] {
        actions.compactMap { if case let .sendData(block, _, _) = $0 { return block } else { return nil } }
    }

    @Test func plainTransferWithoutOptionsIsLockStep() {
        var transfer = ReadTransfer(size: 1000, options: options([], size: 1000), maxRetries: 3)
        let first = transfer.handle(.start, now: 0)
        #expect(first == [.sendData(block: 1, offset: 0, length: 512), .armTimer(deadline: second)])
        let second = transfer.handle(.packet(.ack(block: 1)), now: 10)
        #expect(second == [.sendData(block: 2, offset: 512, length: 488), .armTimer(deadline: 10 + self.second)])
        #expect(transfer.handle(.packet(.ack(block: 2)), now: 20) == [.finish(.completed)])
        #expect(transfer.isFinished)
    }

    @Test func exactMultipleOfTheBlockSizeEndsWithAnEmptyBlock() {
        var transfer = ReadTransfer(size: 1024, options: options([], size: 1024), maxRetries: 3)
        _ = transfer.handle(.start, now: 0)
        _ = transfer.handle(.packet(.ack(block: 1)), now: 0)
        let third = transfer.handle(.packet(.ack(block: 2)), now: 0)
        #expect(third.first == .sendData(block: 3, offset: 1024, length: 0))
        #expect(transfer.handle(.packet(.ack(block: 3)), now: 0) == [.finish(.completed)])
    }

    @Test func emptyFileIsOneEmptyBlock() {
        var transfer = ReadTransfer(size: 0, options: options([], size: 0), maxRetries: 3)
        #expect(transfer.handle(.start, now: 0).first == .sendData(block: 1, offset: 0, length: 0))
        #expect(transfer.handle(.packet(.ack(block: 1)), now: 0) == [.finish(.completed)])
    }

    @Test func optionsAreConfirmedWithOACKBeforeData() {
        // RFC 2347 example: blksize and tsize acknowledged, data starts after ACK 0.
        let negotiated = options([TFTPOption("blksize", "1432"), TFTPOption("tsize", "0")], size: 2000)
        var transfer = ReadTransfer(size: 2000, options: negotiated, maxRetries: 3)
        #expect(transfer.handle(.start, now: 0) == [.send(.optionAck(options: [TFTPOption("blksize", "1432"), TFTPOption("tsize", "2000")])),
                                                    .armTimer(deadline: second)])
        // Anything but ACK 0 is ignored while the OACK is outstanding.
        #expect(transfer.handle(.packet(.ack(block: 1)), now: 1).isEmpty)
        #expect(transfer.handle(.packet(.ack(block: 0)), now: 2).first == .sendData(block: 1, offset: 0, length: 1432))
    }

    @Test func clientMayRejectTheOACKWithAnError() {
        var transfer = ReadTransfer(size: 5, options: options([TFTPOption("tsize", "0")], size: 5), maxRetries: 3)
        _ = transfer.handle(.start, now: 0)
        // The historic L4 client aborts once it knows the size, then asks again.
        #expect(transfer.handle(.packet(.error(code: .optionRefused, message: "size known")), now: 1)
                == [.finish(.clientError(code: .optionRefused, message: "size known"))])
        #expect(transfer.handle(.timeout, now: 10 * second).isEmpty)
    }

    @Test func duplicateAckNeverResends() {
        // Sorcerer's Apprentice: the second ACK 1 must not trigger another block 2.
        var transfer = ReadTransfer(size: 5000, options: options([], size: 5000), maxRetries: 3)
        _ = transfer.handle(.start, now: 0)
        #expect(dataBlocks(transfer.handle(.packet(.ack(block: 1)), now: 1)) == [2])
        #expect(transfer.handle(.packet(.ack(block: 1)), now: 2).isEmpty)
        #expect(dataBlocks(transfer.handle(.packet(.ack(block: 2)), now: 3)) == [3])
    }

    @Test func timeoutResendsTheWindowThenGivesUp() {
        var transfer = ReadTransfer(size: 5000, options: options([], size: 5000), maxRetries: 2)
        _ = transfer.handle(.start, now: 0)
        // A timer that fires early (a stale one) does nothing.
        #expect(transfer.handle(.timeout, now: second / 2).isEmpty)
        #expect(transfer.handle(.timeout, now: second) == [.sendData(block: 1, offset: 0, length: 512), .armTimer(deadline: 2 * second)])
        #expect(dataBlocks(transfer.handle(.timeout, now: 2 * second)) == [1])
        let last = transfer.handle(.timeout, now: 3 * second)
        #expect(last.last == .finish(.timedOut(retries: 2)))
        #expect(transfer.retransmissions == 2)
    }

    @Test func ackResetsTheRetryBudget() {
        var transfer = ReadTransfer(size: 5000, options: options([], size: 5000), maxRetries: 1)
        _ = transfer.handle(.start, now: 0)
        _ = transfer.handle(.timeout, now: second)
        _ = transfer.handle(.packet(.ack(block: 1)), now: second + 1)
        #expect(dataBlocks(transfer.handle(.timeout, now: 3 * second)) == [2])
    }

    @Test func windowsAreSentWholeAndRestartAfterAPartialAck() {
        let negotiated = options([TFTPOption("windowsize", "4")], size: 512 * 10)
        var transfer = ReadTransfer(size: 512 * 10, options: negotiated, maxRetries: 3)
        _ = transfer.handle(.start, now: 0)
        #expect(dataBlocks(transfer.handle(.packet(.ack(block: 0)), now: 0)) == [1, 2, 3, 4])
        // RFC 7440: the client saw 1 and 2 only; the next window starts at 3.
        #expect(dataBlocks(transfer.handle(.packet(.ack(block: 2)), now: 1)) == [3, 4, 5, 6])
        #expect(dataBlocks(transfer.handle(.packet(.ack(block: 6)), now: 2)) == [7, 8, 9, 10])
        // An ACK for a block not yet sent is ignored.
        #expect(transfer.handle(.packet(.ack(block: 12)), now: 3).isEmpty)
        #expect(dataBlocks(transfer.handle(.packet(.ack(block: 10)), now: 4)) == [11])
        #expect(transfer.handle(.packet(.ack(block: 11)), now: 5) == [.finish(.completed)])
    }

    @Test func blockNumbersRollOverFrom65535ToZero() {
        // 65536 full blocks of 512 bytes plus the final empty block: 65537 blocks in all.
        let size = 65536 * 512
        var transfer = ReadTransfer(size: size, options: options([], size: size), maxRetries: 3)
        var actions = transfer.handle(.start, now: 0)
        var sentByStep: [Int: (block: UInt16, offset: Int, length: Int)] = [:]
        var step = 0
        while !transfer.isFinished {
            guard case let .sendData(block, offset, length) = actions.first else {
                Issue.record("expected a data block, got \(actions)")
                return
            }
            step += 1
            if step >= 65534 || step <= 2 { sentByStep[step] = (block, offset, length) }
            actions = transfer.handle(.packet(.ack(block: block)), now: 0)
        }
        #expect(step == 65537)
        #expect(sentByStep[1]?.block == 1)
        #expect(sentByStep[65535]?.block == 65535)
        #expect(sentByStep[65536]?.block == 0)
        #expect(sentByStep[65536]?.offset == 65535 * 512)
        #expect(sentByStep[65537]?.block == 1)
        #expect(sentByStep[65537]?.length == 0)
        #expect(actions == [.finish(.completed)])
    }

    @Test func somethingElseThanAnAckIsAnIllegalOperation() {
        var transfer = ReadTransfer(size: 5, options: options([], size: 5), maxRetries: 3)
        _ = transfer.handle(.start, now: 0)
        let actions = transfer.handle(.packet(.data(block: 1, payload: [])), now: 1)
        #expect(actions.first == .send(.error(code: .illegalOperation, message: "unexpected DATA during a read transfer")))
        #expect(transfer.isFinished)
    }
}

@Suite struct WriteTransferTests {
    let options = NegotiatedOptions(timeoutNanoseconds: 1_000_000_000)

    @Test func acceptsBlocksAndEndsOnAShortOne() {
        var transfer = WriteTransfer(options: options, maxRetries: 3, maxSize: 10_000)
        #expect(transfer.handle(.start, now: 0).first == .send(.ack(block: 0)))
        let full = [UInt8](repeating: 7, count: 512)
        #expect(transfer.handle(.packet(.data(block: 1, payload: full)), now: 1).prefix(2)
                == [.write(offset: 0, bytes: full), .send(.ack(block: 1))])
        // A repeated block 1 (our ACK got lost) is acknowledged again, not written twice.
        #expect(transfer.handle(.packet(.data(block: 1, payload: full)), now: 2).first == .send(.ack(block: 1)))
        let end = transfer.handle(.packet(.data(block: 2, payload: [1, 2])), now: 3)
        #expect(end == [.write(offset: 512, bytes: [1, 2]), .send(.ack(block: 2)), .armTimer(deadline: 3 + 2_000_000_000)])
        #expect(transfer.bytesReceived == 514)
        // Dallying: the final block again means our last ACK was lost; nothing is written twice.
        #expect(transfer.handle(.packet(.data(block: 2, payload: [1, 2])), now: 4) == [.send(.ack(block: 2))])
        #expect(transfer.handle(.timeout, now: 1_000_000_000).isEmpty)
        #expect(transfer.handle(.timeout, now: 3 + 2_000_000_000) == [.finish(.completed)])
        #expect(transfer.isFinished)
    }

    @Test func sizeLimitStopsTheUpload() {
        var transfer = WriteTransfer(options: options, maxRetries: 3, maxSize: 600)
        _ = transfer.handle(.start, now: 0)
        _ = transfer.handle(.packet(.data(block: 1, payload: [UInt8](repeating: 0, count: 512))), now: 0)
        let actions = transfer.handle(.packet(.data(block: 2, payload: [UInt8](repeating: 0, count: 512))), now: 0)
        #expect(actions.first == .send(.error(code: .diskFull, message: "upload larger than the limit of 600 bytes")))
        #expect(transfer.isFinished)
    }

    @Test func optionsGetAnOACKInsteadOfAck0() {
        var negotiated = options
        negotiated.acknowledged = [TFTPOption("blksize", "1024")]
        negotiated.blockSize = 1024
        var transfer = WriteTransfer(options: negotiated, maxRetries: 3, maxSize: 10_000)
        #expect(transfer.handle(.start, now: 0).first == .send(.optionAck(options: [TFTPOption("blksize", "1024")])))
        #expect(transfer.handle(.timeout, now: 1_000_000_000).first == .send(.optionAck(options: [TFTPOption("blksize", "1024")])))
    }

    @Test func silenceTimesOut() {
        var transfer = WriteTransfer(options: options, maxRetries: 1, maxSize: 10_000)
        _ = transfer.handle(.start, now: 0)
        #expect(transfer.handle(.timeout, now: 1_000_000_000).first == .send(.ack(block: 0)))
        #expect(transfer.handle(.timeout, now: 2_000_000_000).last == .finish(.timedOut(retries: 1)))
    }
}
