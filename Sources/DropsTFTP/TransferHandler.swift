import CDatagrams
import Foundation
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Drives one transfer on its own ephemeral socket: turns datagrams into events for the
/// state machine and its actions into datagrams, file reads and writes, and timers.
final class TransferHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    enum Machine {
        case read(ReadTransfer)
        case write(WriteTransfer)
    }

    let server: TFTPServer
    let request: TFTPPacket
    let client: SocketAddress
    /// The transfer socket. NIO owns it (reads the ACKs, sends everything else, closes it);
    /// DATA packets go out on it directly, a window's worth with one sendmmsg, from buffers
    /// kept for the whole transfer. That spares every block a buffer allocation and a trip
    /// through the pipeline and the channel's queue of pending writes: the per-packet cost
    /// that decides lock-step speed.
    let descriptor: CInt
    private var clientAddress = sockaddr_storage()
    private var clientAddressLength: socklen_t = 0
    /// Slots for DATA packets of the agreed block size, filled and then sent together.
    private var slots: UnsafeMutableRawBufferPointer?
    private var slotSize = 0
    private var slotCount = 0
    /// Lengths of the packets in the first slots, not sent yet.
    private var pending: [Int] = []
    /// The file bytes slot 0 already holds: the first block of the next window, read while
    /// the client is busy acknowledging, so that an ACK is answered without a file read
    /// (tftpd-hpa reads ahead too).
    private var packetHolds: (offset: Int, length: Int)?
    /// DATA packets handed to the channel because the socket's send buffer was full; until
    /// the channel has sent them, later blocks queue behind them there to keep their order.
    private var queuedInChannel = 0
    private var sendBufferWaits = 0

    private var machine: Machine?
    private var source: FileSource?
    private var upload: (descriptor: CInt, path: String)?
    private var timer: Scheduled<Void>?
    /// When the state machine wants its next `.timeout`; the scheduled task may fire earlier
    /// and is then moved on, so a packet exchange costs no timer cancel and reschedule.
    private var timerDeadline: UInt64 = 0
    private var started: UInt64 = 0
    private var file = ""
    private var direction = "read"
    private var optionsSummary = "none"
    private var finished = false

    init(server: TFTPServer, request: TFTPPacket, client: SocketAddress, descriptor: CInt) {
        self.server = server
        self.request = request
        self.client = client
        self.descriptor = descriptor
        client.withSockAddr { address, length in
            withUnsafeMutableBytes(of: &clientAddress) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: length)) }
            clientAddressLength = socklen_t(length)
        }
    }

    deinit {
        slots?.deallocate()
    }

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    func channelActive(context: ChannelHandlerContext) {
        started = Self.now()
        let limits = server.configuration.limits
        switch request {
        case let .readRequest(name, mode, options):
            file = name
            do {
                let path = try server.resolveForReading(name)
                let source = try FileSource(path: path, netascii: mode == .netascii)
                self.source = source
                let negotiated = NegotiatedOptions.negotiate(options, transferSize: source.size, limits: limits)
                optionsSummary = negotiated.summary
                // Up to a window of slots, within 256 KiB; one slot for lock-step clients.
                slotSize = 4 + negotiated.blockSize
                slotCount = max(1, min(negotiated.windowSize, (256 << 10) / slotSize))
                slots = .allocate(byteCount: slotCount * slotSize, alignment: 8)
                pending.reserveCapacity(slotCount)
                machine = .read(ReadTransfer(size: source.size, options: negotiated, maxRetries: limits.maxRetries))
            } catch {
                refuse(context: context, error)
                return
            }
        case let .writeRequest(name, mode, options):
            direction = "write"
            file = name
            do {
                let path = try uploadPath(for: name, mode: mode)
                var negotiated = NegotiatedOptions.negotiate(options, transferSize: nil, limits: limits)
                // Uploads are acknowledged block by block; a window is not offered.
                negotiated.windowSize = 1
                negotiated.acknowledged.removeAll { $0.name.lowercased() == "windowsize" }
                if let announced = negotiated.acknowledged.first(where: { $0.name.lowercased() == "tsize" }).flatMap({ Int($0.value) }),
                   announced > limits.maxUploadSize {
                    throw Refusal(.diskFull, "upload of \(announced) bytes is larger than the limit of \(limits.maxUploadSize)")
                }
                let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
                guard descriptor >= 0 else {
                    throw errno == EEXIST
                        ? Refusal(.fileExists, "\(name) already exists; uploads never overwrite")
                        : Refusal(.accessViolation, "cannot create \(name): \(String(cString: strerror(errno)))")
                }
                upload = (descriptor, path)
                optionsSummary = negotiated.summary
                machine = .write(WriteTransfer(options: negotiated, maxRetries: limits.maxRetries, maxSize: limits.maxUploadSize))
            } catch {
                refuse(context: context, error)
                return
            }
        default:
            return
        }
        handle(.start, context: context)
    }

    /// Upload names are plain file names inside the upload folder.
    private func uploadPath(for name: String, mode: TFTPMode) throws(Refusal) -> String {
        guard let folder = server.configuration.uploadDirectory else {
            throw Refusal(.accessViolation, "uploads are not enabled on this server (it was started without --upload-dir)")
        }
        guard mode == .octet else { throw Refusal(.illegalOperation, "uploads must use octet mode") }
        let base = String(name.split(separator: "/").last ?? "")
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+")
        guard !base.isEmpty, base != ".", base != "..", base.count <= 255, base.allSatisfy({ allowed.contains($0) }),
              !name.contains("..") else {
            throw Refusal(.accessViolation, "upload name '\(name)' is not a plain file name")
        }
        return folder + "/" + base
    }

    private func refuse(context: ChannelHandlerContext, _ error: Error) {
        let refusal = error as? Refusal ?? Refusal(.notDefined, "\(error)")
        end(sending: .error(code: refusal.code, message: refusal.reason), .aborted(refusal.reason), context: context)
    }

    /// Sends a last ERROR and ends the transfer.
    private func end(sending error: TFTPPacket, _ outcome: TransferOutcome, context: ChannelHandlerContext) {
        send(error, context: context)
        context.flush()
        finish(outcome, context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == client else {
            // RFC 1350 section 4: answer the stranger, leave the transfer alone; but never
            // answer an ERROR, which could start an endless exchange with another server.
            if case .error? = try? TFTPPacket.decode(envelope.data.readableBytesView) { return }
            send(.error(code: .unknownTransferID, message: "unknown transfer ID"), to: envelope.remoteAddress, context: context)
            context.flush()
            return
        }
        let packet: TFTPPacket
        let view = envelope.data.readableBytesView
        // ACKs are nearly every packet a read transfer gets: read them without the general decoder.
        if view.count == 4, view[view.startIndex] == 0, view[view.startIndex + 1] == 4 {
            packet = .ack(block: UInt16(view[view.startIndex + 2]) << 8 | UInt16(view[view.startIndex + 3]))
            handle(.packet(packet), context: context)
            return
        }
        do {
            packet = try TFTPPacket.decode(view)
        } catch {
            end(sending: .error(code: .illegalOperation, message: "malformed packet: \(error)"), .protocolError("malformed packet: \(error)"), context: context)
            return
        }
        handle(.packet(packet), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable and the like: the client is gone.
        finish(.aborted("\(error)"), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.aborted("transfer socket closed"), context: context)
    }

    private func handle(_ event: TransferEvent, context: ChannelHandlerContext) {
        guard !finished, var current = machine else { return }
        let now = Self.now()
        let actions: [TransferAction]
        switch current {
        case var .read(transfer):
            actions = transfer.handle(event, now: now)
            current = .read(transfer)
        case var .write(transfer):
            actions = transfer.handle(event, now: now)
            current = .write(transfer)
        }
        machine = current
        perform(actions, context: context)
    }

    private func perform(_ actions: [TransferAction], context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case let .send(packet):
                guard sendPending(context: context) else { return }
                send(packet, context: context)
            case let .sendData(block, offset, length):
                guard let source, let slots else { continue }
                // A change is caught before the last block leaves at the latest, so a client
                // never completes a torn file; every MiB it is looked for earlier too.
                if offset + length >= source.size || offset & 0xFFFFF < length {
                    guard source.isUnchanged() else {
                        abortChanged(context: context)
                        return
                    }
                }
                let slot = slots.baseAddress! + pending.count * slotSize
                let ready = pending.isEmpty && packetHolds.map { $0.offset == offset && $0.length == length } == true
                packetHolds = nil
                guard ready || source.read(into: slot + 4, offset: offset, length: length) else {
                    abortChanged(context: context)
                    return
                }
                slot.storeBytes(of: UInt16(3).bigEndian, toByteOffset: 0, as: UInt16.self)
                slot.storeBytes(of: block.bigEndian, toByteOffset: 2, as: UInt16.self)
                pending.append(4 + length)
                if pending.count == slotCount { guard sendPending(context: context) else { return } }
            case let .write(offset, bytes):
                guard let upload else { continue }
                let written = bytes.withUnsafeBytes { pwrite(upload.descriptor, $0.baseAddress, $0.count, off_t(offset)) }
                if written != bytes.count {
                    end(sending: .error(code: .diskFull, message: "cannot write the upload: \(String(cString: strerror(errno)))"), .aborted("write failed"), context: context)
                    return
                }
            case let .armTimer(deadline):
                timerDeadline = deadline
                if timer == nil { scheduleTimer(context: context) }
            case let .finish(outcome):
                guard sendPending(context: context) else { return }
                context.flush()
                finish(outcome, context: context)
                return
            }
        }
        guard sendPending(context: context) else { return }
        context.flush()
        prepareNextBlock()
    }

    /// Sends the DATA packets in the slots on the transfer socket. When the socket's send
    /// buffer is full (a large window), the rest go through the channel, which waits for the
    /// socket to drain, and so do later packets until it has. False when the transfer ended.
    private func sendPending(context: ChannelHandlerContext) -> Bool {
        guard !pending.isEmpty, let slots else { return true }
        defer { pending.removeAll(keepingCapacity: true) }
        var sent = 0
        if queuedInChannel == 0 {
            let result = pending.withUnsafeBufferPointer { lengths in
                withUnsafePointer(to: &clientAddress) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        drops_send_datagrams(descriptor, slots.baseAddress!.assumingMemoryBound(to: UInt8.self), slotSize,
                                             lengths.baseAddress, UInt32(lengths.count), $0, clientAddressLength)
                    }
                }
            }
            let failure = errno
            if result < 0, failure != EAGAIN, failure != EWOULDBLOCK, failure != ENOBUFS, failure != EINTR {
                finish(.aborted("cannot send to the client: \(String(cString: strerror(failure)))"), context: context)
                return false
            }
            sent = max(0, Int(result))
            if sent == pending.count { return true }
            sendBufferWaits += 1
        }
        for index in sent..<pending.count {
            var buffer = context.channel.allocator.buffer(capacity: pending[index])
            buffer.writeBytes(UnsafeRawBufferPointer(start: slots.baseAddress! + index * slotSize, count: pending[index]))
            queuedInChannel += 1
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenComplete { [self] _ in queuedInChannel -= 1 }
            context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: client, data: buffer)), promise: promise)
        }
        return true
    }

    /// Reads the first block of the next window ahead of its ACK. A read that fails is left
    /// to the send, which then ends the transfer with its error.
    private func prepareNextBlock() {
        guard packetHolds == nil, let source, let slots, case let .read(transfer)? = machine, !transfer.isFinished,
              let next = transfer.nextWindowStart else { return }
        guard source.read(into: slots.baseAddress! + 4, offset: next.offset, length: next.length) else { return }
        packetHolds = next
    }

    private func scheduleTimer(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(timerDeadline)) { [self] in
            self.timer = nil
            guard !self.finished else { return }
            if Self.now() >= self.timerDeadline {
                self.handle(.timeout, context: context)
            } else {
                self.scheduleTimer(context: context)
            }
        }
    }

    private func abortChanged(context: ChannelHandlerContext) {
        end(sending: .error(code: .notDefined, message: "the file changed on the server during the transfer; request it again"),
            .aborted("file changed during the transfer"), context: context)
    }

    /// Queues a packet for the client (or another address); the caller flushes.
    private func send(_ packet: TFTPPacket, to address: SocketAddress? = nil, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(packet.datagram(to: address ?? client, allocator: context.channel.allocator)), promise: nil)
    }

    private func finish(_ outcome: TransferOutcome, context: ChannelHandlerContext) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        timer = nil
        var bytes = 0
        var retransmissions = 0
        switch machine {
        case let .read(transfer)?:
            bytes = outcome.isSuccess ? transfer.size : transfer.bytesSent
            retransmissions = transfer.retransmissions
        case let .write(transfer)?:
            bytes = transfer.bytesReceived
        case nil:
            break
        }
        if let upload {
            close(upload.descriptor)
            // A partial upload is removed: only complete files appear in the upload folder.
            if !outcome.isSuccess { unlink(upload.path) }
            self.upload = nil
        }
        source = nil
        let seconds = Double(Self.now() - started) / 1e9
        server.transferFinished(client: client, request: request, TransferRecord(
            client: client.hostAndPort, direction: direction, file: file,
            options: optionsSummary, bytes: bytes, seconds: seconds, outcome: outcome.summary,
            retransmissions: retransmissions, sendBufferWaits: sendBufferWaits))
        context.close(promise: nil)
    }
}
