import DropsModel
import DropsTestSupport
import Foundation
import Testing

@testable import DropsImage

/// Component inspection on real system binaries, the probe build and synthetic images.
@Suite struct ComponentInspectorTests {
    static let probeKernel = Repository.probeBuild + "/probe"
    static let probeFiasco = Repository.probeBuild + "/fiasco"
    /// Any PXELINUX module: ELF32 i386 shared objects, so real ET_DYN files.
    static let c32 = ["ldlinux.c32", "libcom32.c32", "cat.c32", "mboot.c32"]
        .map { "/usr/lib/syslinux/modules/bios/" + $0 }
        .first { FileManager.default.fileExists(atPath: $0) }

    func inspect(_ bytes: [UInt8], _ inspection: Inspection, arch: Architecture = .ia32,
                 path: String = "/components/thing") throws(ImageError) -> InspectionReport {
        try ComponentInspector.inspect(bytes, component: "thing", path: path, inspection: inspection, arch: arch)
    }

    func failure(_ bytes: [UInt8], _ inspection: Inspection, arch: Architecture = .ia32,
                 path: String = "/components/thing") -> ImageError? {
        imageError { () throws(ImageError) in try inspect(bytes, inspection, arch: arch, path: path) }
    }

    func contents(_ path: String) throws -> [UInt8] {
        [UInt8](try #require(FileManager.default.contents(atPath: path)))
    }

    // MARK: real binaries

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/bin/ls")))
    func hostLsIsRejectedForIA32AsELF64() throws {
        let bytes = try contents("/bin/ls")
        let error = try #require(failure(bytes, .elf, path: "/bin/ls"))
        guard case let .wrongELF(component, path, found, expected) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(component == "thing")
        #expect(path == "/bin/ls")
        #expect(found == "ELF64 x86-64")
        #expect(expected.contains("ELF32 i386"))
        #expect(error.description.contains("/bin/ls"))
        #expect(error.description.contains("ELF64 x86-64"))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/bin/ls")))
    func hostLsHeaderIsReadAsX86_64() throws {
        let header = try ComponentInspector.elfHeader(try contents("/bin/ls"), component: "ls", path: "/bin/ls")
        #expect(header.elfClass == 2)
        #expect(header.machine == 62)
        #expect(header.summary == "ELF64 x86-64")
        // A position-independent ls is ET_DYN, which a boot loader cannot place: refused for amd64 too.
        if header.type == 3 {
            let error = try #require(failure(try contents("/bin/ls"), .elf, arch: .amd64, path: "/bin/ls"))
            guard case let .wrongELF(_, _, found, expected) = error else {
                Issue.record("expected wrongELF, got \(error)")
                return
            }
            #expect(found == "ELF64 x86-64 of type 3 (not an executable)")
            #expect(expected == "an executable (ET_EXEC)")
        }
    }

    @Test(.enabled(if: ComponentInspectorTests.c32 != nil))
    func pxelinuxModuleIsAnELF32SharedObjectAndRefused() throws {
        let path = try #require(Self.c32)
        let bytes = try contents(path)
        let header = try ComponentInspector.elfHeader(bytes, component: "c32", path: path)
        #expect(header.summary == "ELF32 i386")
        #expect(header.type == 3)
        let error = try #require(failure(bytes, .elf, path: path))
        guard case let .wrongELF(_, errorPath, found, _) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(errorPath == path)
        #expect(found == "ELF32 i386 of type 3 (not an executable)")
        #expect(error.description.contains(path))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: ComponentInspectorTests.probeKernel)))
    func probeKernelHasItsMultibootHeaderAt0x1000() throws {
        let bytes = try contents(Self.probeKernel)
        let header = try #require(try ComponentInspector.multibootHeader(bytes, component: "probe", path: Self.probeKernel))
        #expect(header.offset == 0x1000)
        #expect(!header.hasAddressFields)
        let report = try inspect(bytes, .multiboot, path: Self.probeKernel)
        #expect(report.summary.hasPrefix("ELF32 i386, Multiboot header at 0x1000 flags 0x"))
        #expect(try inspect(bytes, .elf, path: Self.probeKernel).summary == "ELF32 i386")
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: ComponentInspectorTests.probeFiasco)))
    func probeModuleIsAnI386Executable() throws {
        let bytes = try contents(Self.probeFiasco)
        #expect(try inspect(bytes, .elf, path: Self.probeFiasco).summary == "ELF32 i386")
        let error = try #require(failure(bytes, .elf, arch: .amd64, path: Self.probeFiasco))
        guard case let .wrongELF(_, _, found, expected) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(found == "ELF32 i386")
        #expect(expected.contains("ELF64 x86-64"))
        #expect(error.description.contains(Self.probeFiasco))
    }

    // MARK: synthetic ELF files

    @Test func elf32I386ExecutableIsAcceptedForIA32() throws {
        let report = try inspect(SyntheticBinary.elf(), .elf)
        #expect(report.summary == "ELF32 i386")
        let header = try ComponentInspector.elfHeader(SyntheticBinary.elf(), component: "x", path: "x")
        #expect(header == ELFHeader(elfClass: 1, littleEndian: true, type: 2, machine: 3, entry: 0x0010_0000))
    }

    @Test func elf64X86_64ExecutableIsAcceptedForAMD64Only() throws {
        let bytes = SyntheticBinary.elf(elfClass: 2, machine: 62)
        #expect(try inspect(bytes, .elf, arch: .amd64).summary == "ELF64 x86-64")
        let error = try #require(failure(bytes, .elf, arch: .ia32))
        guard case let .wrongELF(_, _, found, expected) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(found == "ELF64 x86-64")
        #expect(expected == "ELF32 i386 (arch ia32)")
    }

    @Test func elf32IsRejectedForAMD64() throws {
        let error = try #require(failure(SyntheticBinary.elf(), .elf, arch: .amd64))
        guard case let .wrongELF(_, _, found, expected) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(found == "ELF32 i386")
        #expect(expected == "ELF64 x86-64 (arch amd64)")
    }

    @Test func wrongMachineIsNamed() throws {
        let path = "/components/arm-kernel"
        let error = try #require(failure(SyntheticBinary.elf(machine: 40), .elf, path: path))
        guard case let .wrongELF(_, errorPath, found, _) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(errorPath == path)
        #expect(found == "ELF32 ARM")
        #expect(error.description.contains(path))
        #expect(error.description.contains("ELF32 ARM"))
    }

    @Test func unknownMachineIsShownByNumber() throws {
        let error = try #require(failure(SyntheticBinary.elf(machine: 8), .elf))
        guard case let .wrongELF(_, _, found, _) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(found == "ELF32 machine 8")
    }

    @Test func sharedObjectIsRejectedAsNotAnExecutable() throws {
        let path = "/components/lib.so"
        let error = try #require(failure(SyntheticBinary.elf(type: 3), .elf, path: path))
        guard case let .wrongELF(_, errorPath, found, expected) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(errorPath == path)
        #expect(found == "ELF32 i386 of type 3 (not an executable)")
        #expect(expected == "an executable (ET_EXEC)")
        #expect(error.description.contains(path))
    }

    @Test func textIsNotELF() throws {
        let path = "/components/README"
        let error = try #require(failure(Array("just some text, no binary\n".utf8), .elf, path: path))
        #expect(error == .notELF(component: "thing", path: path))
        #expect(error.description.contains(path))
        #expect(error.description.contains("not an ELF file"))
    }

    @Test func emptyFileIsNotELF() throws {
        #expect(failure([], .elf) == .notELF(component: "thing", path: "/components/thing"))
    }

    @Test func bigEndianELFIsRefused() throws {
        var bytes = SyntheticBinary.elf()
        bytes[5] = 2
        let error = try #require(failure(bytes, .elf))
        guard case let .wrongELF(_, _, found, _) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(found == "a big-endian ELF file")
    }

    @Test func unknownELFClassIsDamage() throws {
        var bytes = SyntheticBinary.elf()
        bytes[4] = 3
        let error = try #require(failure(bytes, .elf))
        guard case let .truncatedELF(_, _, detail) = error else {
            Issue.record("expected truncatedELF, got \(error)")
            return
        }
        #expect(detail.contains("class 3"))
    }

    // MARK: truncated ELF files

    func truncationDetail(_ bytes: [UInt8], path: String = "/components/cut") throws -> String {
        let error = try #require(failure(bytes, .elf, arch: bytes.count > 4 && bytes[4] == 2 ? .amd64 : .ia32, path: path))
        guard case let .truncatedELF(component, errorPath, detail) = error else {
            Issue.record("expected truncatedELF, got \(error)")
            return ""
        }
        #expect(component == "thing")
        #expect(errorPath == path)
        #expect(error.description.contains(path))
        return detail
    }

    @Test func elfCutWithinTheIdentificationIsTruncated() throws {
        let detail = try truncationDetail(Array(SyntheticBinary.elf().prefix(10)))
        #expect(detail == "only 10 bytes")
    }

    @Test func elf32CutInTheMiddleOfItsHeaderIsTruncated() throws {
        let detail = try truncationDetail(Array(SyntheticBinary.elf().prefix(30)))
        #expect(detail.contains("30 bytes"))
        #expect(detail.contains("needs 52"))
    }

    @Test func elf64CutInTheMiddleOfItsHeaderIsTruncated() throws {
        let detail = try truncationDetail(Array(SyntheticBinary.elf(elfClass: 2, machine: 62).prefix(40)))
        #expect(detail.contains("40 bytes"))
        #expect(detail.contains("needs 64"))
    }

    @Test func elfCutInItsProgramHeaderTableIsTruncated() throws {
        // ELF32: 52 header bytes, then one 32-byte program header ending at byte 84.
        let detail = try truncationDetail(Array(SyntheticBinary.elf().prefix(60)))
        #expect(detail.contains("84"))
        #expect(detail.contains("60"))
    }

    @Test func elfCutInTheMiddleOfItsSegmentIsTruncated() throws {
        let whole = SyntheticBinary.elf(payload: [UInt8](repeating: 0x90, count: 100))
        #expect(try inspect(whole, .elf).summary == "ELF32 i386")
        let cut = Array(whole.prefix(whole.count - 50))
        let detail = try truncationDetail(cut)
        #expect(detail.contains("segment 0"))
        #expect(detail.contains("\(whole.count)"))
        #expect(detail.contains("\(cut.count)"))
    }

    @Test func elf64CutInTheMiddleOfItsSegmentIsTruncated() throws {
        let whole = SyntheticBinary.elf(elfClass: 2, machine: 62, payload: [UInt8](repeating: 0x90, count: 100))
        let detail = try truncationDetail(Array(whole.prefix(whole.count - 1)))
        #expect(detail.contains("segment 0"))
        #expect(detail.contains("\(whole.count)"))
    }

    @Test func segmentOffsetBeyondTheFileIsTruncation() throws {
        var bytes = SyntheticBinary.elf()
        // p_offset = 0xFFFFFFFF with a non-zero p_filesz cannot lie in this file.
        for i in 0..<4 { bytes[52 + 4 + i] = 0xFF }
        let detail = try truncationDetail(bytes)
        #expect(detail.contains("segment 0"))
    }

    // MARK: Multiboot first stages

    @Test func multibootELFIsAcceptedWithItsHeaderOffsetAndFlags() throws {
        // ELF32 header (52) + one program header (32): the Multiboot header starts at 84 = 0x54.
        let report = try inspect(SyntheticBinary.multibootELF(), .multiboot)
        #expect(report.summary == "ELF32 i386, Multiboot header at 0x54 flags 0x3")
    }

    @Test func badMultibootChecksumIsABrokenHeader() throws {
        let path = "/components/bootstrap"
        let bytes = SyntheticBinary.elf(multibootFlags: 0x3, badChecksum: true)
        let error = try #require(failure(bytes, .multiboot, path: path))
        guard case let .badMultiboot(component, errorPath, detail) = error else {
            Issue.record("expected badMultiboot, got \(error)")
            return
        }
        #expect(component == "thing")
        #expect(errorPath == path)
        #expect(detail.contains("0x54"))
        #expect(detail.contains("checksum"))
        #expect(error.description.contains(path))
    }

    @Test func firstStageWithNeitherHeaderNorELFIsNotMultiboot() throws {
        let path = "/components/notes.txt"
        let error = try #require(failure(Array(String(repeating: "no header here ", count: 40).utf8), .multiboot, path: path))
        #expect(error == .notMultiboot(component: "thing", path: path))
        #expect(error.description.contains(path))
        #expect(error.description.contains("8192"))
    }

    @Test func tinyFirstStageIsNotMultiboot() throws {
        // Shorter than a Multiboot header: the search window is empty, not negative.
        #expect(failure(Array("tiny".utf8), .multiboot) == .notMultiboot(component: "thing", path: "/components/thing"))
        #expect(failure([], .multiboot) == .notMultiboot(component: "thing", path: "/components/thing"))
    }

    @Test func elf64FirstStageWithoutHeaderIsNotMultiboot() throws {
        let bytes = SyntheticBinary.elf(elfClass: 2, machine: 62)
        #expect(failure(bytes, .multiboot) == .notMultiboot(component: "thing", path: "/components/thing"))
    }

    @Test func elf64FirstStageNeedsTheAddressFields() throws {
        let without = SyntheticBinary.elf(elfClass: 2, machine: 62, multibootFlags: 0x3)
        let error = try #require(failure(without, .multiboot))
        guard case let .wrongELF(_, _, found, expected) = error else {
            Issue.record("expected wrongELF, got \(error)")
            return
        }
        #expect(found == "ELF64 x86-64")
        #expect(expected.contains("ELF32 i386"))
        let with = SyntheticBinary.elf(elfClass: 2, machine: 62, multibootFlags: 0x1_0003)
        #expect(try inspect(with, .multiboot).summary == "ELF64 x86-64, Multiboot header at 0x78 flags 0x10003")
    }

    /// A non-ELF image: filler, a valid Multiboot header with address fields at `offset`, then code.
    func rawImage(flags: UInt32, at offset: Int = 16, total: Int? = nil) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEB, count: offset)
        func word(_ value: UInt32) { for i in 0..<4 { bytes.append(UInt8((value >> (8 * UInt32(i))) & 0xFF)) } }
        word(MultibootHeader.magic)
        word(flags)
        word(0 &- MultibootHeader.magic &- flags)
        for address in [0x0010_0000, 0x0010_0000, 0, 0, 0x0010_0020] as [UInt32] { word(address) }
        bytes += Array("raw kernel code".utf8)
        if let total, bytes.count < total { bytes += [UInt8](repeating: 0, count: total - bytes.count) }
        return bytes
    }

    @Test func rawImageWithAddressFieldsIsAccepted() throws {
        let report = try inspect(rawImage(flags: 0x1_0000), .multiboot)
        #expect(report.summary == "Multiboot image, header at 0x10 flags 0x10000")
    }

    @Test func rawImageWithoutAddressFieldsIsRefused() throws {
        let path = "/components/raw.bin"
        let error = try #require(failure(rawImage(flags: 0x3), .multiboot, path: path))
        guard case let .badMultiboot(_, errorPath, detail) = error else {
            Issue.record("expected badMultiboot, got \(error)")
            return
        }
        #expect(errorPath == path)
        #expect(detail.contains("bit 16"))
        #expect(error.description.contains(path))
    }

    @Test func headerMustEndWithinTheFirst8192Bytes() throws {
        // At 8180 the 12 header bytes end exactly at byte 8192: an ELF32 with such a header passes.
        let padding = [UInt8](repeating: 0x90, count: 8180 - 84)
        var header: [UInt8] = []
        for value in [MultibootHeader.magic, 0x3, 0 &- MultibootHeader.magic &- 0x3] as [UInt32] {
            for i in 0..<4 { header.append(UInt8((value >> (8 * UInt32(i))) & 0xFF)) }
        }
        let inside = SyntheticBinary.elf(payload: padding + header + Array("code".utf8))
        #expect(try inspect(inside, .multiboot).summary == "ELF32 i386, Multiboot header at 0x1ff4 flags 0x3")
        // At 8184 the header is past the search window, so a raw image has none.
        let outside = rawImage(flags: 0x1_0000, at: 8184)
        #expect(failure(outside, .multiboot) == .notMultiboot(component: "thing", path: "/components/thing"))
    }

    @Test func headerMustBeFourByteAligned() throws {
        #expect(failure(rawImage(flags: 0x1_0000, at: 18), .multiboot) == .notMultiboot(component: "thing", path: "/components/thing"))
    }

    @Test func validHeaderAfterAStrayMagicIsUsed() throws {
        // A magic word with a wrong checksum first, the real header 16 bytes later.
        var bytes: [UInt8] = [0x02, 0xB0, 0xAD, 0x1B, 0, 0, 0, 0, 0, 0, 0, 0, 0xEB, 0xEB, 0xEB, 0xEB]
        bytes += rawImage(flags: 0x1_0000, at: 0)
        #expect(try inspect(bytes, .multiboot).summary == "Multiboot image, header at 0x10 flags 0x10000")
    }

    @Test func rawImageCutInsideItsAddressFieldsIsRefused() throws {
        // With bit 16 the loader reads five address words after the checksum; this file ends before them.
        let whole = rawImage(flags: 0x1_0000)
        let cut = Array(whole.prefix(16 + 12))
        let error = failure(cut, .multiboot, path: "/components/raw.bin")
        #expect(error != nil, "a Multiboot image without its address fields was accepted")
        #expect(error?.description.contains("/components/raw.bin") ?? true)
    }

    @Test func elf32WithoutMultibootHeaderIsNoFirstStage() throws {
        // GRUB, iPXE's multiboot loader and QEMU -kernel ("without PVH ELF Note") all need the header.
        let error = failure(SyntheticBinary.elf(), .multiboot, path: "/components/headerless")
        #expect(error == .notMultiboot(component: "thing", path: "/components/headerless"))
    }

    // MARK: data

    @Test func dataAcceptsAnything() throws {
        let samples: [[UInt8]] = [
            [],
            Array("plain text\n".utf8),
            Array(SyntheticBinary.elf().prefix(30)),
            SyntheticBinary.elf(machine: 40),
            SyntheticBinary.elf(multibootFlags: 0x3, badChecksum: true),
            [UInt8](repeating: 0xFF, count: 9000),
        ]
        for bytes in samples {
            #expect(try inspect(bytes, .data).summary == "data")
            #expect(try inspect(bytes, .data, arch: .amd64).summary == "data")
        }
    }
}
