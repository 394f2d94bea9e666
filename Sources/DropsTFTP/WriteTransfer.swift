/// The receiving side of a write request (uploads into `--upload-dir`), lock-step: every DATA
/// block is acknowledged. A block shorter than the block size ends the data; the transfer
/// then dallies for two timeouts (RFC 1350 section 6), acknowledging the last block again if
/// the client repeats it because our final ACK was lost.
public struct WriteTransfer: Sendable {
    public let options: NegotiatedOptions
    public let maxRetries: Int
    public let maxSize: Int

    private(set) var finished = false
    private(set) var started = false
    /// All data is in; waiting only to repeat the final ACK.
    private(set) var dallying = false
    /// Last block acknowledged (absolute, 0 before any data).
    private(set) var lastAcknowledged = 0
    private(set) var retries = 0
    private(set) var deadline: UInt64 = 0
    public private(set) var bytesReceived = 0

    public init(options: NegotiatedOptions, maxRetries: Int, maxSize: Int) {
        self.options = options
        self.maxRetries = maxRetries
        self.maxSize = maxSize
    }

    public var isFinished: Bool { finished }

    public mutating func handle(_ event: TransferEvent, now: UInt64) -> [TransferAction] {
        guard !finished else { return [] }
        switch event {
        case .start:
            guard !started else { return [] }
            started = true
            return [firstAnswer, arm(now)]
        case .timeout:
            guard started, now >= deadline else { return [] }
            if dallying {
                finished = true
                return [.finish(.completed)]
            }
            guard retries < maxRetries else {
                finished = true
                return [.send(.error(code: .notDefined, message: "timed out waiting for data")), .finish(.timedOut(retries: retries))]
            }
            retries += 1
            return [lastAnswer, arm(now)]
        case let .packet(.data(wire, payload)):
            let expected = lastAcknowledged + 1
            if wire == UInt16(truncatingIfNeeded: lastAcknowledged) {
                // Our ACK was lost: say it again.
                return dallying ? [lastAnswer] : [lastAnswer, arm(now)]
            }
            guard !dallying, wire == UInt16(truncatingIfNeeded: expected) else { return [] }
            guard payload.count <= options.blockSize else {
                finished = true
                return [.send(.error(code: .illegalOperation, message: "block of \(payload.count) bytes exceeds the block size \(options.blockSize)")),
                        .finish(.protocolError("oversized block"))]
            }
            guard bytesReceived + payload.count <= maxSize else {
                finished = true
                return [.send(.error(code: .diskFull, message: "upload larger than the limit of \(maxSize) bytes")),
                        .finish(.aborted("upload exceeds \(maxSize) bytes"))]
            }
            let offset = bytesReceived
            bytesReceived += payload.count
            lastAcknowledged = expected
            retries = 0
            var actions: [TransferAction] = [.write(offset: offset, bytes: payload), .send(.ack(block: wire))]
            if payload.count < options.blockSize {
                dallying = true
                deadline = now + 2 * options.timeoutNanoseconds
                actions.append(.armTimer(deadline: deadline))
            } else {
                actions.append(arm(now))
            }
            return actions
        case let .packet(.error(code, message)):
            finished = true
            return [dallying ? .finish(.completed) : .finish(.clientError(code: code, message: message))]
        case let .packet(packet):
            if dallying { return [] }
            finished = true
            return [.send(.error(code: .illegalOperation, message: "unexpected \(packet.kindName) during a write transfer")),
                    .finish(.protocolError("client sent \(packet.kindName) during a write transfer"))]
        }
    }

    /// OACK when options were agreed, else ACK 0 (the historic L4 client rejects an OACK).
    private var firstAnswer: TransferAction {
        options.acknowledged.isEmpty ? .send(.ack(block: 0)) : .send(.optionAck(options: options.acknowledged))
    }

    private var lastAnswer: TransferAction {
        lastAcknowledged == 0 ? firstAnswer : .send(.ack(block: UInt16(truncatingIfNeeded: lastAcknowledged)))
    }

    private mutating func arm(_ now: UInt64) -> TransferAction {
        deadline = now + options.timeoutNanoseconds
        return .armTimer(deadline: deadline)
    }
}
