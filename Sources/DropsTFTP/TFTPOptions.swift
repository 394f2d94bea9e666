import Foundation

/// Server-side limits on what clients may negotiate.
public struct TFTPLimits: Sendable, Equatable {
    /// Largest block size granted (`--max-blksize`); RFC 2348 allows 8…65464.
    public var maxBlockSize: Int = 65464
    /// Largest window granted (`--max-windowsize`); RFC 7440 allows 1…65535.
    public var maxWindowSize: Int = 64
    /// Retransmission timeout in nanoseconds when the client does not ask for one.
    public var timeoutNanoseconds: UInt64 = 1_000_000_000
    /// Retransmissions of one packet before the transfer is given up.
    public var maxRetries: Int = 5
    /// Largest upload accepted, in bytes.
    public var maxUploadSize: Int = 64 << 20

    public init() {}
}

/// What was agreed for one transfer. Only options the client asked for and the server
/// accepts are acknowledged, in the client's order: firmware clients are capricious about
/// options they did not ask for, and the historic L4 client rejects an OACK that has any.
public struct NegotiatedOptions: Sendable, Equatable {
    public var blockSize = 512
    public var windowSize = 1
    public var timeoutNanoseconds: UInt64
    /// The options for the OACK; empty means no OACK is sent.
    public var acknowledged: [TFTPOption] = []

    /// Negotiates a request's options. `transferSize` is the file's size for reads (answered
    /// to `tsize`), nil for writes (the client's announced size is echoed and checked).
    public static func negotiate(_ requested: [TFTPOption], transferSize: Int?, limits: TFTPLimits) -> NegotiatedOptions {
        var result = NegotiatedOptions(timeoutNanoseconds: limits.timeoutNanoseconds)
        var seen = Set<String>()
        for option in requested {
            let name = option.name.lowercased()
            guard seen.insert(name).inserted, let value = Int(option.value.trimmingCharacters(in: .whitespaces)) else { continue }
            switch name {
            case "blksize":
                // Never more than asked: the historic L4 client does not check what it gets.
                guard value >= 8 else { continue }
                result.blockSize = min(value, limits.maxBlockSize, TFTPPacket.maxBlockSize)
                result.acknowledged.append(TFTPOption(option.name, String(result.blockSize)))
            case "tsize":
                guard value >= 0 else { continue }
                if let transferSize {
                    result.acknowledged.append(TFTPOption(option.name, String(transferSize)))
                } else {
                    result.acknowledged.append(TFTPOption(option.name, String(value)))
                }
            case "timeout":
                guard (1...255).contains(value) else { continue }
                result.timeoutNanoseconds = UInt64(value) * 1_000_000_000
                result.acknowledged.append(TFTPOption(option.name, String(value)))
            case "windowsize":
                guard (1...65535).contains(value) else { continue }
                result.windowSize = min(value, max(1, limits.maxWindowSize))
                result.acknowledged.append(TFTPOption(option.name, String(result.windowSize)))
            default:
                continue
            }
        }
        return result
    }

    /// A one-line summary for the transfer log.
    public var summary: String {
        acknowledged.isEmpty ? "none" : acknowledged.map { "\($0.name)=\($0.value)" }.joined(separator: " ")
    }
}

