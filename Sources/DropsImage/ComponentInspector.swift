import DropsModel
import Foundation

/// What an inspection found, in words for the manifest.
public struct InspectionReport: Sendable, Equatable {
    public var summary: String
}

/// Facts from an ELF header that matter for booting.
public struct ELFHeader: Sendable, Equatable {
    public var elfClass: UInt8
    public var littleEndian: Bool
    public var type: UInt16
    public var machine: UInt16
    public var entry: UInt64

    public var machineName: String {
        switch machine {
        case 3: return "i386"
        case 62: return "x86-64"
        case 40: return "ARM"
        case 183: return "AArch64"
        case 243: return "RISC-V"
        default: return "machine \(machine)"
        }
    }

    public var summary: String { "ELF\(elfClass == 1 ? 32 : 64) \(machineName)" }
}

/// A Multiboot 1 header found in an image.
public struct MultibootHeader: Sendable, Equatable {
    public static let magic: UInt32 = 0x1BAD_B002
    /// The header must lie 4-byte aligned within the first 8192 bytes (Multiboot 1, 3.1.1).
    public static let searchLimit = 8192

    public var offset: Int
    public var flags: UInt32
    /// Bit 16: the load addresses are in the header (a.out kludge) instead of ELF headers.
    public var hasAddressFields: Bool { flags & 0x1_0000 != 0 }
}

/// Checks components' bytes before they go into an image.
public enum ComponentInspector {
    /// A Linux kernel for the x86 boot protocol: the setup header's `HdrS` magic at 0x202,
    /// its version, and the kernel's version string it points to.
    static func linuxKernel(_ bytes: [UInt8], component: String, path: String) throws(ImageError) -> String {
        func word(_ offset: Int) -> Int { Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 }
        guard bytes.count > 0x264, Array(bytes[0x202..<0x206]) == Array("HdrS".utf8), word(0x1FE) == 0xAA55 else {
            throw .badMultiboot(component: component, path: path,
                                detail: "not a Linux kernel image for the x86 boot protocol (no HdrS setup header at 0x202); use the bzImage (vmlinuz), not vmlinux")
        }
        let version = word(0x206)
        guard version >= 0x0200 else {
            throw .badMultiboot(component: component, path: path, detail: "Linux boot protocol \(version >> 8).\(version & 0xFF) is older than 2.00 (no initrd support)")
        }
        var summary = "Linux bzImage, boot protocol \(version >> 8).\(String(format: "%02d", version & 0xFF))"
        let pointer = word(0x20E) + 0x200
        if word(0x20E) != 0, pointer < bytes.count {
            let text = bytes[pointer...].prefix(while: { $0 != 0 }).prefix(120)
            summary += ", \(String(decoding: text, as: UTF8.self).split(separator: " ").first ?? "")"
        }
        return summary
    }

    /// Inspects a component's bytes for its inspection kind and the profile's architecture.
    public static func inspect(_ bytes: [UInt8], component: String, path: String,
                               inspection: Inspection, arch: Architecture) throws(ImageError) -> InspectionReport {
        switch inspection {
        case .data:
            return InspectionReport(summary: "data")
        case .bzimage:
            return InspectionReport(summary: try linuxKernel(bytes, component: component, path: path))
        case .elf:
            let header = try elfHeader(bytes, component: component, path: path)
            guard header.elfClass == arch.elfClass, header.machine == arch.elfMachine else {
                throw .wrongELF(component: component, path: path, found: header.summary,
                                expected: "ELF\(arch.elfClass == 1 ? 32 : 64) \(arch == .ia32 ? "i386" : "x86-64") (arch \(arch.rawValue))")
            }
            guard header.type == 2 else {
                throw .wrongELF(component: component, path: path, found: "\(header.summary) of type \(header.type) (not an executable)",
                                expected: "an executable (ET_EXEC)")
            }
            return InspectionReport(summary: header.summary)
        case .multiboot:
            // Every Multiboot loader (QEMU -kernel, GRUB, iPXE, mboot.c32) needs the header;
            // an ELF without one is refused by all of them.
            guard let multiboot = try multibootHeader(bytes, component: component, path: path) else {
                throw .notMultiboot(component: component, path: path)
            }
            let flags = "header at 0x\(String(multiboot.offset, radix: 16)) flags 0x\(String(multiboot.flags, radix: 16))"
            let isELF = bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46])
            if multiboot.hasAddressFields {
                try checkAddressFields(bytes, multiboot, component: component, path: path)
                if isELF { return InspectionReport(summary: "\(try elfHeader(bytes, component: component, path: path).summary), Multiboot \(flags)") }
                return InspectionReport(summary: "Multiboot image, \(flags)")
            }
            guard isELF else {
                throw .badMultiboot(component: component, path: path,
                                    detail: "not an ELF file and flag bit 16 (load addresses in the header) is clear, so no loader knows where to put it")
            }
            let header = try elfHeader(bytes, component: component, path: path)
            // Without address fields a loader places the image by its ELF32 program headers.
            guard header.elfClass == 1, header.machine == 3 else {
                throw .wrongELF(component: component, path: path, found: header.summary,
                                expected: "ELF32 i386 (or Multiboot flag bit 16 with load addresses) for a Multiboot loader")
            }
            return InspectionReport(summary: "\(header.summary), Multiboot \(flags)")
        }
    }

    /// With flag bit 16 the header carries header_addr, load_addr, load_end_addr, bss_end_addr
    /// and entry_addr (Multiboot 1, 3.1.3); they must describe bytes the file really has.
    static func checkAddressFields(_ bytes: [UInt8], _ header: MultibootHeader, component: String, path: String) throws(ImageError) {
        let o = header.offset
        guard o + 32 <= bytes.count else {
            throw .badMultiboot(component: component, path: path, detail: "the file ends inside the header's address fields")
        }
        let headerAddress = UInt64(read32(bytes, o + 12))
        let loadAddress = UInt64(read32(bytes, o + 16))
        let loadEnd = UInt64(read32(bytes, o + 20))
        let bssEnd = UInt64(read32(bytes, o + 24))
        let entry = UInt64(read32(bytes, o + 28))
        guard loadAddress <= headerAddress, headerAddress - loadAddress <= UInt64(o) else {
            throw .badMultiboot(component: component, path: path, detail: "load_addr 0x\(String(loadAddress, radix: 16)) does not lie before the header in the file")
        }
        let fileStart = UInt64(o) - (headerAddress - loadAddress)
        let end = loadEnd == 0 ? loadAddress + UInt64(bytes.count) - fileStart : loadEnd
        guard end > loadAddress, fileStart + (end - loadAddress) <= UInt64(bytes.count) else {
            throw .badMultiboot(component: component, path: path,
                                detail: "load_end_addr 0x\(String(loadEnd, radix: 16)) lies beyond the end of the file")
        }
        let imageEnd = max(end, bssEnd)
        guard entry >= loadAddress, entry < imageEnd else {
            throw .badMultiboot(component: component, path: path, detail: "entry_addr 0x\(String(entry, radix: 16)) is outside the loaded image")
        }
    }

    /// Parses and sanity-checks the ELF identification and header, including that the
    /// program headers lie within the file.
    public static func elfHeader(_ bytes: [UInt8], component: String, path: String) throws(ImageError) -> ELFHeader {
        guard bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46]) else { throw .notELF(component: component, path: path) }
        guard bytes.count >= 16 else { throw .truncatedELF(component: component, path: path, detail: "only \(bytes.count) bytes") }
        let elfClass = bytes[4]
        guard elfClass == 1 || elfClass == 2 else {
            throw .truncatedELF(component: component, path: path, detail: "unknown ELF class \(elfClass)")
        }
        guard bytes[5] == 1 else {
            throw .wrongELF(component: component, path: path, found: "a big-endian ELF file", expected: "a little-endian x86 binary")
        }
        let headerSize = elfClass == 1 ? 52 : 64
        guard bytes.count >= headerSize else {
            throw .truncatedELF(component: component, path: path, detail: "\(bytes.count) bytes, the ELF header alone needs \(headerSize)")
        }
        let type = read16(bytes, 16)
        let machine = read16(bytes, 18)
        let entry = elfClass == 1 ? UInt64(read32(bytes, 24)) : read64(bytes, 24)
        let phoff = elfClass == 1 ? UInt64(read32(bytes, 28)) : read64(bytes, 32)
        let phentsize = UInt64(read16(bytes, elfClass == 1 ? 42 : 54))
        let phnum = UInt64(read16(bytes, elfClass == 1 ? 44 : 56))
        let tableEnd = phoff.addingReportingOverflow(phentsize * phnum)
        guard !tableEnd.overflow, tableEnd.partialValue <= UInt64(bytes.count) else {
            throw .truncatedELF(component: component, path: path,
                                detail: "program headers end at byte \(tableEnd.partialValue), the file has \(bytes.count)")
        }
        // Every loadable segment's file bytes must be present.
        for index in 0..<phnum {
            let base = Int(phoff + index * phentsize)
            guard phentsize >= (elfClass == 1 ? 32 : 56) else { break }
            let segmentType = read32(bytes, base)
            guard segmentType == 1 else { continue }
            let offset = elfClass == 1 ? UInt64(read32(bytes, base + 4)) : read64(bytes, base + 8)
            let fileSize = elfClass == 1 ? UInt64(read32(bytes, base + 16)) : read64(bytes, base + 32)
            let end = offset.addingReportingOverflow(fileSize)
            guard !end.overflow, end.partialValue <= UInt64(bytes.count) else {
                throw .truncatedELF(component: component, path: path,
                                    detail: "segment \(index) needs bytes up to \(end.partialValue), the file has \(bytes.count)")
            }
        }
        return ELFHeader(elfClass: elfClass, littleEndian: true, type: type, machine: machine, entry: entry)
    }

    /// The first Multiboot 1 header in the search window. A magic with a wrong checksum
    /// is an error, not "absent": it is almost always a damaged image.
    public static func multibootHeader(_ bytes: [UInt8], component: String, path: String) throws(ImageError) -> MultibootHeader? {
        let limit = min(bytes.count, MultibootHeader.searchLimit) - 12
        guard limit >= 0 else { return nil }
        var offset = 0
        var brokenAt: Int?
        while offset <= limit {
            if read32(bytes, offset) == MultibootHeader.magic {
                let flags = read32(bytes, offset + 4)
                let checksum = read32(bytes, offset + 8)
                if MultibootHeader.magic &+ flags &+ checksum == 0 {
                    return MultibootHeader(offset: offset, flags: flags)
                }
                brokenAt = brokenAt ?? offset
            }
            offset += 4
        }
        if let brokenAt {
            throw .badMultiboot(component: component, path: path,
                                detail: "magic at offset 0x\(String(brokenAt, radix: 16)) but the checksum does not add up to zero")
        }
        return nil
    }

    static func read16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    static func read32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
    static func read64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(read32(b, o)) | UInt64(read32(b, o + 4)) << 32 }
}
