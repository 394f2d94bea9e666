import DropsArchive
import DropsQEMU
import DropsTestSupport
import Foundation
import Testing

/// The RAM disk drops-build makes from rootfs/ boots Debian's own kernel (fetched by
/// `make kernel`, unpacked here with libarchive) to /init and BusyBox's shell, in every
/// compression the kernel unpacks.
@Suite(.serialized) struct RamDiskBootTests {
    static let kernelFolder = Repository.root + "/build/kernel"

    /// vmlinuz from the downloaded linux-image package, unpacked into `folder`.
    func kernel(into folder: TemporaryDirectory) throws -> String {
        let debs = ((try? FileManager.default.contentsOfDirectory(atPath: Self.kernelFolder)) ?? []).filter { $0.hasSuffix(".deb") }.sorted()
        let deb = try #require(debs.last, "run `make kernel` (apt-get download of Debian's linux-image-amd64)")
        let written = try DebianPackage.extract(Self.kernelFolder + "/" + deb, into: folder.path) { $0.hasPrefix("boot/vmlinuz-") }
        return try #require(written.first, "\(deb) holds no boot/vmlinuz-*")
    }

    func ramDisk(_ compression: RamDiskCompression, into folder: TemporaryDirectory) throws -> String {
        let tool = try #require(CommandLineTests.executable("drops-build"), "build the tools first (make build)")
        let output = folder.path + "/ramdisk.cpio\(compression.suffix)"
        let child = try ChildProcess([tool, "ramdisk", "--rootfs", Repository.root + "/rootfs", "--compression", compression.rawValue,
                                      "-o", output], errors: folder.path + "/build.err")
        #expect(child.wait() == 0, "\((try? String(contentsOfFile: folder.path + "/build.err", encoding: .utf8)) ?? "")")
        return output
    }

    @Test(arguments: [RamDiskCompression.gzip, .xz, .zstd, .lz4, .none])
    func debianKernelReachesInitAndTheShell(_ compression: RamDiskCompression) throws {
        try #require(QEMURunner.findExecutable("qemu-system-x86_64") != nil, "install qemu-system-x86 (make deps)")
        try #require(FileManager.default.isExecutableFile(atPath: Busybox.defaultPath), "install busybox-static (make deps)")
        let work = TemporaryDirectory("drops-rdboot")
        let vmlinuz = try kernel(into: work)
        let initrd = try ramDisk(compression, into: work)
        let command = QEMUCommand(executable: "qemu-system-x86_64", arguments: [
            "-accel", "tcg", "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-m", "256",
            "-kernel", vmlinuz, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 quiet",
        ], workingDirectory: work.path)
        let watcher = try SerialWatcher(patterns: [
            ExpectedPattern("DROPS-ROOTFS init reached", budget: 120),
            ExpectedPattern("DROPS-ROOTFS kernel 6.", budget: 10),
            ExpectedPattern("DROPS-ROOTFS shell on the console", budget: 20),
        ])
        let outcome = try QEMURunner().run(command, timeout: 180, watcher: watcher)
        #expect(outcome.ending == .finished, "\(compression): \(outcome.ending)\n\(outcome.transcript.suffix(3000))")
    }
}
