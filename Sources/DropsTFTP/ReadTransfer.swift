/// How a transfer ended.
public enum TransferOutcome: Sendable, Equatable {
    case completed
    case clientError(code: TFTPErrorCode, message: String)
    case timedOut(retries: Int)
    case protocolError(String)
    case aborted(String)

    public var isSuccess: Bool { self == .completed }

    public var summary: String {
        switch self {
        case .completed: return "ok"
        case let .clientError(code, message): return "client error \(code.rawValue): \(message)"
        case let .timedOut(retries): return "timed out after \(retries) retries"
        case let .protocolError(reason): return "protocol error: \(reason)"
        case let .aborted(reason): return "aborted: \(reason)"
        }
    }
}

/// What a transfer asks its driver (the network handler or a test) to do.
public enum TransferAction: Sendable, Equatable {
    /// Send this packet to the client.
    case send(TFTPPacket)
    /// Send a DATA packet with the file bytes at `offset` (the driver reads them).
    case sendData(block: UInt16, offset: Int, length: Int)
    /// Write received bytes at `offset` (uploads).
    case write(offset: Int, bytes: [UInt8])
    /// Deliver a `.timeout` event at this time unless something else happens first.
    case armTimer(deadline: UInt64)
    case finish(TransferOutcome)
}

/// Events a transfer reacts to. `now` is a monotonic time in nanoseconds, injected so the
/// state machine can be tested without clocks or sockets.
public enum TransferEvent: Sendable, Equatable {
    case start
    case packet(TFTPPacket)
    case timeout
}

/// The sending side of a read request (RFC 1350 with RFC 2347/2348/2349/7440 options), as a
/// pure state machine. Blocks are numbered from 1 and wrap from 65535 to 0, as tftpd-hpa and
/// iPXE expect, so files of any size can be sent. A window is sent, then the sender waits
/// for the ACK; an ACK for a block inside the window restarts the window after it; an ACK
/// for a block already acknowledged is ignored (never a resend: Sorcerer's Apprentice).
public struct ReadTransfer: Sendable {
    public let size: Int
    public let options: NegotiatedOptions
    public let maxRetries: Int

    enum Phase: Sendable, Equatable { case idle, awaitingOptionAck, sending, finished }

    private(set) var phase = Phase.idle
    /// First block not yet acknowledged (absolute, from 1).
    private(set) var base = 1
    /// One past the last block sent in the current window.
    private(set) var sentThrough = 0
    private(set) var retries = 0
    private(set) var deadline: UInt64 = 0
    /// Data bytes sent, retransmissions included.
    public private(set) var bytesSent = 0
    public private(set) var retransmissions = 0

    /// Blocks in the file: always one more than full blocks, the last one short (maybe empty).
    public var blockCount: Int { size / options.blockSize + 1 }

    public init(size: Int, options: NegotiatedOptions, maxRetries: Int) {
        self.size = size
        self.options = options
        self.maxRetries = maxRetries
    }

    public var isFinished: Bool { phase == .finished }

    public mutating func handle(_ event: TransferEvent, now: UInt64) -> [TransferAction] {
        switch (phase, event) {
        case (.finished, _):
            return []
        case (.idle, .start):
            if options.acknowledged.isEmpty {
                phase = .sending
                return sendWindow(now: now)
            }
            phase = .awaitingOptionAck
            return [.send(.optionAck(options: options.acknowledged)), arm(now)]
        case (.idle, _):
            return []
        case (_, .start):
            return []
        case (_, .timeout):
            guard now >= deadline else { return [] }
            guard retries < maxRetries else {
                phase = .finished
                return [.send(.error(code: .notDefined, message: "timed out waiting for an acknowledgement")),
                        .finish(.timedOut(retries: retries))]
            }
            retries += 1
            retransmissions += 1
            if phase == .awaitingOptionAck {
                return [.send(.optionAck(options: options.acknowledged)), arm(now)]
            }
            return sendWindow(now: now)
        case let (_, .packet(.error(code, message))):
            phase = .finished
            return [.finish(.clientError(code: code, message: message))]
        case let (.awaitingOptionAck, .packet(.ack(block))):
            // Only ACK 0 confirms the OACK; anything else is a stale or confused packet.
            guard block == 0 else { return [] }
            phase = .sending
            retries = 0
            return sendWindow(now: now)
        case let (.sending, .packet(.ack(block))):
            guard let acknowledged = absoluteBlock(for: block) else { return [] }
            retries = 0
            if acknowledged == blockCount {
                phase = .finished
                return [.finish(.completed)]
            }
            base = acknowledged + 1
            return sendWindow(now: now)
        case let (_, .packet(packet)):
            phase = .finished
            return [.send(.error(code: .illegalOperation, message: "unexpected \(packet.kindName) during a read transfer")),
                    .finish(.protocolError("client sent \(packet.kindName) during a read transfer"))]
        }
    }

    /// Where the block after the window in flight lies in the file: the next one sent when
    /// the whole window is acknowledged. Nil before the first window and after the last block.
    var nextWindowStart: (offset: Int, length: Int)? {
        guard phase == .sending, sentThrough > 0, sentThrough <= blockCount else { return nil }
        let offset = (sentThrough - 1) * options.blockSize
        return (offset, min(options.blockSize, size - offset))
    }

    /// Maps a 16-bit ACK number to the block it acknowledges among those in flight, or nil
    /// for duplicates and numbers outside the window.
    func absoluteBlock(for wire: UInt16) -> Int? {
        let first = base - 1
        let delta = Int(wire &- UInt16(truncatingIfNeeded: first))
        let acknowledged = first + delta
        guard delta > 0, acknowledged < sentThrough else { return nil }
        return acknowledged
    }

    private mutating func sendWindow(now: UInt64) -> [TransferAction] {
        var actions: [TransferAction] = []
        let last = min(base + options.windowSize - 1, blockCount)
        if last < base { return [.finish(.completed)] }
        for block in base...last {
            let offset = (block - 1) * options.blockSize
            let length = min(options.blockSize, size - offset)
            actions.append(.sendData(block: UInt16(truncatingIfNeeded: block), offset: offset, length: length))
            bytesSent += length
        }
        sentThrough = last + 1
        actions.append(arm(now))
        return actions
    }

    private mutating func arm(_ now: UInt64) -> TransferAction {
        deadline = now + options.timeoutNanoseconds
        return .armTimer(deadline: deadline)
    }
}

extension TFTPPacket {
    /// The packet's kind, for messages.
    public var kindName: String {
        switch self {
        case .readRequest: return "RRQ"
        case .writeRequest: return "WRQ"
        case .data: return "DATA"
        case .ack: return "ACK"
        case .error: return "ERROR"
        case .optionAck: return "OACK"
        }
    }
}
