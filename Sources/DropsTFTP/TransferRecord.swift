import Foundation

/// One finished transfer, as logged: the one line a person or a log collector reads.
public struct TransferRecord: Sendable, Codable, Equatable {
    public var client: String
    public var direction: String
    public var file: String
    public var options: String
    public var bytes: Int
    public var seconds: Double
    public var outcome: String
    public var retransmissions: Int
    /// Times the transfer socket's send buffer was full and DATA had to wait for it: a
    /// window larger than the path to the client can drain in time. Shown when not zero.
    public var sendBufferWaits = 0

    public init(client: String, direction: String, file: String, options: String, bytes: Int, seconds: Double,
                outcome: String, retransmissions: Int, sendBufferWaits: Int = 0) {
        self.client = client
        self.direction = direction
        self.file = file
        self.options = options
        self.bytes = bytes
        self.seconds = seconds
        self.outcome = outcome
        self.retransmissions = retransmissions
        self.sendBufferWaits = sendBufferWaits
    }

    public var bytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds : 0 }

    public var text: String {
        let rate = String(format: "%.1f", bytesPerSecond / 1_000_000)
        let time = String(format: "%.3f", seconds)
        return "\(direction) \(file) client=\(client) options=[\(options)] bytes=\(bytes) seconds=\(time) rate=\(rate)MB/s retransmissions=\(retransmissions)"
            + (sendBufferWaits > 0 ? " send-buffer-waits=\(sendBufferWaits)" : "") + " outcome=\(outcome)"
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? text
    }
}
