import Foundation

/// Builds small but valid binaries for tests: ELF executables of a chosen class and machine,
/// with or without a Multiboot header, so inspection can be tested without real L4 binaries.
public enum SyntheticBinary {
    /// An ELF executable with one PT_LOAD segment covering the whole file.
    /// - Parameters:
    ///   - elfClass: 1 for ELF32, 2 for ELF64.
    ///   - machine: 3 (i386) or 62 (x86-64).
    ///   - type: 2 (ET_EXEC) or 3 (ET_DYN).
    ///   - multibootFlags: when set, a Multiboot 1 header with these flags follows the headers.
    ///   - badChecksum: write a header whose checksum does not add up.
    ///   - payload: bytes after the headers, to vary contents and size.
    public static func elf(elfClass: UInt8 = 1, machine: UInt16 = 3, type: UInt16 = 2,
                           multibootFlags: UInt32? = nil, badChecksum: Bool = false,
                           payload: [UInt8] = Array("drops test".utf8)) -> [UInt8] {
        let is32 = elfClass == 1
        let headerSize = is32 ? 52 : 64
        let phentsize = is32 ? 32 : 56
        var bytes = [UInt8](repeating: 0, count: headerSize + phentsize)
        bytes[0...3] = [0x7F, 0x45, 0x4C, 0x46]
        bytes[4] = elfClass
        bytes[5] = 1
        bytes[6] = 1
        put16(&bytes, 16, type)
        put16(&bytes, 18, machine)
        put32(&bytes, 20, 1)
        if is32 {
            put32(&bytes, 24, 0x0010_0000)
            put32(&bytes, 28, UInt32(headerSize))
            put16(&bytes, 40, UInt16(headerSize))
            put16(&bytes, 42, UInt16(phentsize))
            put16(&bytes, 44, 1)
        } else {
            put64(&bytes, 24, 0x0010_0000)
            put64(&bytes, 32, UInt64(headerSize))
            put16(&bytes, 52, UInt16(headerSize))
            put16(&bytes, 54, UInt16(phentsize))
            put16(&bytes, 56, 1)
        }
        if let flags = multibootFlags {
            while bytes.count % 4 != 0 { bytes.append(0) }
            var header = [UInt8](repeating: 0, count: 12)
            let magic: UInt32 = 0x1BAD_B002
            put32(&header, 0, magic)
            put32(&header, 4, flags)
            put32(&header, 8, UInt32(0) &- magic &- flags &+ (badChecksum ? 1 : 0))
            if flags & 0x1_0000 != 0 {
                // Address fields: file offset 0 loads at 1 MiB, the whole file, entry at its start.
                let headerAddress = 0x0010_0000 + UInt32(bytes.count)
                var fields = [UInt8](repeating: 0, count: 20)
                put32(&fields, 0, headerAddress)
                put32(&fields, 4, 0x0010_0000)
                put32(&fields, 16, 0x0010_0000)
                header += fields
            }
            bytes += header
        }
        bytes += payload
        // The PT_LOAD segment spans the file.
        let ph = headerSize
        put32(&bytes, ph, 1)
        if is32 {
            put32(&bytes, ph + 4, 0)
            put32(&bytes, ph + 8, 0x0010_0000)
            put32(&bytes, ph + 12, 0x0010_0000)
            put32(&bytes, ph + 16, UInt32(bytes.count))
            put32(&bytes, ph + 20, UInt32(bytes.count))
        } else {
            put64(&bytes, ph + 8, 0)
            put64(&bytes, ph + 16, 0x0010_0000)
            put64(&bytes, ph + 24, 0x0010_0000)
            put64(&bytes, ph + 32, UInt64(bytes.count))
            put64(&bytes, ph + 40, UInt64(bytes.count))
        }
        return bytes
    }

    /// A first-stage image: ELF32 i386 with a Multiboot header (page-align and memory-info flags).
    public static func multibootELF(payload: [UInt8] = Array("first stage".utf8)) -> [UInt8] {
        elf(multibootFlags: 0x3, payload: payload)
    }

    static func put16(_ b: inout [UInt8], _ o: Int, _ v: UInt16) {
        b[o] = UInt8(v & 0xFF); b[o + 1] = UInt8(v >> 8)
    }
    static func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
        for i in 0..<4 { b[o + i] = UInt8((v >> (8 * UInt32(i))) & 0xFF) }
    }
    static func put64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) {
        for i in 0..<8 { b[o + i] = UInt8((v >> (8 * UInt64(i))) & 0xFF) }
    }
}

/// A fresh folder under the system's temporary folder, removed when the value is released.
extension SyntheticBinary {
    /// A minimal Linux bzImage setup header: boot flag, `HdrS`, the boot protocol version
    /// and a kernel version string the header points to.
    public static func bzImage(version: UInt16 = 0x020F) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 0x1000)
        bytes[0x1FE] = 0x55
        bytes[0x1FF] = 0xAA
        bytes.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        bytes[0x206] = UInt8(version & 0xFF)
        bytes[0x207] = UInt8(version >> 8)
        let text = Array("6.1.0-test (builder@drops) #1 SMP".utf8) + [0]
        bytes.replaceSubrange(0x800..<(0x800 + text.count), with: text)
        bytes[0x20E] = 0x00   // the version string at 0x600 + 0x200
        bytes[0x20F] = 0x06
        return bytes
    }
}

public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "drops-test") {
        let base = FileManager.default.temporaryDirectory.path
        path = "\(base)/\(label)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes a file (making folders as needed) and returns its path.
    @discardableResult
    public func write(_ relative: String, _ bytes: [UInt8]) -> String {
        let full = path + "/" + relative
        let folder = (full as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: full, contents: Data(bytes))
        return full
    }

    @discardableResult
    public func write(_ relative: String, text: String) -> String {
        write(relative, Array(text.utf8))
    }
}

/// Where the repository is, found from this source file, so tests can read profiles/.
public enum Repository {
    public static var root: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }

    public static var profiles: String { root + "/profiles" }

    /// The probe build output (`make probe`).
    public static var probeBuild: String { root + "/build/probe" }

    /// A search-path folder with a synthetic binary for every component any shipped profile
    /// names: first stages carry a Multiboot header, data files are plain bytes.
    public static func fakeComponents(in directory: TemporaryDirectory, arch64: Bool = false) -> String {
        let firstStages = ["bootstrap", "rmgr", "kickstart"]
        let programs = ["fiasco", "sigma0", "roottask", "names", "log", "dm_phys", "simple_ts", "l4io", "tftp",
                        "loader", "l4con", "vmlinuz", "hazelnut", "ia32-kernel", "moe", "l4re", "ned", "io"]
        let data = ["ramdisk.img", "x86-legacy.devs", "l4lx-x86.io"]
        for name in firstStages {
            directory.write("components/\(name)", SyntheticBinary.multibootELF(payload: Array(name.utf8)))
        }
        for name in programs {
            directory.write("components/\(name)", SyntheticBinary.elf(elfClass: arch64 ? 2 : 1, machine: arch64 ? 62 : 3,
                                                                     payload: Array(name.utf8)))
        }
        for name in data {
            directory.write("components/\(name)", Array("data of \(name)\n".utf8))
        }
        return directory.path + "/components"
    }
}
