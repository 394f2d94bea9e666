import Foundation

/// One answered HTTP request, as logged: the same shape and `--log-format json` as a TFTP
/// transfer's line, so one collector reads both.
public struct HTTPRequestRecord: Sendable, Codable, Equatable {
    public var client: String
    public var method: String
    public var path: String
    public var status: Int
    /// Body bytes sent.
    public var bytes: Int
    public var seconds: Double
    /// Why a request was refused (403, 404, 416, …); empty when it was served.
    public var reason: String

    public init(client: String, method: String, path: String, status: Int, bytes: Int, seconds: Double, reason: String = "") {
        self.client = client
        self.method = method
        self.path = path
        self.status = status
        self.bytes = bytes
        self.seconds = seconds
        self.reason = reason
    }

    public var bytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds : 0 }

    public var text: String {
        let rate = String(format: "%.1f", bytesPerSecond / 1_000_000)
        let time = String(format: "%.3f", seconds)
        return "http \(method) \(path) client=\(client) status=\(status) bytes=\(bytes) seconds=\(time) rate=\(rate)MB/s"
            + (reason.isEmpty ? "" : " reason=\"\(reason)\"")
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? text
    }
}
