/// What the probe kernel reported on the serial console (`DROPS-PROBE …` lines).
public struct ProbeReport: Sendable, Equatable {
    public struct Module: Sendable, Equatable {
        public var index: Int
        public var start: UInt64
        public var size: Int
        public var sha256: String
        public var cmdline: String
    }

    public var started = false
    public var magic: UInt32?
    public var flags: UInt32?
    public var cmdline: String?
    public var loaderName: String?
    public var memLower: Int?
    public var memUpper: Int?
    public var modules: [Module] = []
    /// The text of each module that starts with `#!` (a configuration file), by index.
    public var texts: [Int: String] = [:]
    /// The count from the `end` line; nil until the probe finished.
    public var endCount: Int?
    public var error: String?

    public init() {}

    /// True once the `end` line was seen.
    public var isComplete: Bool { endCount != nil || error != nil }

    /// Reads every probe line of a serial transcript; other lines are ignored.
    public static func parse(_ transcript: String) -> ProbeReport {
        var report = ProbeReport()
        for line in transcript.split(whereSeparator: \.isNewline) {
            report.consume(String(line))
        }
        return report
    }

    /// Takes one serial line into the report.
    public mutating func consume(_ line: String) {
        guard let range = line.range(of: "DROPS-PROBE ") else { return }
        let body = String(line[range.upperBound...])
        var fields = ProbeFields(body)
        guard let kind = fields.word() else { return }
        switch kind {
        case "hello":
            started = true
        case "boot":
            let values = fields.pairs()
            magic = values["magic"].flatMap(Self.hex32)
            flags = values["flags"].flatMap(Self.hex32)
            cmdline = values["cmdline"]
            error = values["error"]
        case "loader":
            loaderName = fields.pairs()["name"]
        case "mem":
            let values = fields.pairs()
            memLower = values["lower"].flatMap { Int($0) }
            memUpper = values["upper"].flatMap { Int($0) }
        case "module":
            guard let indexWord = fields.word(), let index = Int(indexWord) else { return }
            let values = fields.pairs()
            modules.append(Module(
                index: index,
                start: values["start"].flatMap { UInt64($0.dropFirst(2), radix: 16) } ?? 0,
                size: values["size"].flatMap { Int($0) } ?? -1,
                sha256: values["sha256"] ?? "",
                cmdline: values["cmdline"] ?? ""))
        case "text":
            guard let indexWord = fields.word(), let index = Int(indexWord) else { return }
            texts[index] = fields.pairs()["text"]
        case "end":
            endCount = fields.pairs()["modules"].flatMap { Int($0) }
        default:
            break
        }
    }

    static func hex32(_ text: String) -> UInt32? {
        text.hasPrefix("0x") ? UInt32(text.dropFirst(2), radix: 16) : nil
    }
}

/// Splits `key=value key="quoted \"text\""` the way the probe writes it.
struct ProbeFields {
    private var characters: [Character]
    private var position = 0

    init(_ text: String) {
        characters = Array(text)
    }

    mutating func word() -> String? {
        skipSpaces()
        var result = ""
        while position < characters.count, characters[position] != " " {
            result.append(characters[position])
            position += 1
        }
        return result.isEmpty ? nil : result
    }

    mutating func pairs() -> [String: String] {
        var result: [String: String] = [:]
        while true {
            skipSpaces()
            guard position < characters.count else { return result }
            var key = ""
            while position < characters.count, characters[position] != "=", characters[position] != " " {
                key.append(characters[position])
                position += 1
            }
            guard position < characters.count, characters[position] == "=" else { continue }
            position += 1
            result[key] = value()
        }
    }

    private mutating func value() -> String {
        guard position < characters.count, characters[position] == "\"" else {
            var plain = ""
            while position < characters.count, characters[position] != " " {
                plain.append(characters[position])
                position += 1
            }
            return plain
        }
        position += 1
        var bytes: [UInt8] = []
        while position < characters.count, characters[position] != "\"" {
            let c = characters[position]
            if c == "\\", position + 1 < characters.count {
                let next = characters[position + 1]
                if next == "x", position + 3 < characters.count,
                   let byte = UInt8(String(characters[(position + 2)...(position + 3)]), radix: 16) {
                    bytes.append(byte)
                    position += 4
                    continue
                }
                bytes += Array(String(next).utf8)
                position += 2
                continue
            }
            bytes += Array(String(c).utf8)
            position += 1
        }
        position += 1
        return String(decoding: bytes, as: UTF8.self)
    }

    private mutating func skipSpaces() {
        while position < characters.count, characters[position] == " " { position += 1 }
    }
}
