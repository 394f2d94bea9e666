/// RFC 764 netascii as TFTP uses it: a line end is CR LF, a lone CR is CR NUL.
public enum Netascii {
    public static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 16)
        for byte in bytes {
            switch byte {
            case 0x0A: out += [0x0D, 0x0A]
            case 0x0D: out += [0x0D, 0x00]
            default: out.append(byte)
            }
        }
        return out
    }

    /// The inverse, for uploads in netascii mode.
    public static func decode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0D, index + 1 < bytes.count {
                let next = bytes[index + 1]
                if next == 0x0A { out.append(0x0A); index += 2; continue }
                if next == 0x00 { out.append(0x0D); index += 2; continue }
            }
            out.append(byte)
            index += 1
        }
        return out
    }
}
