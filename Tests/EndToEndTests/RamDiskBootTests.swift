import DropsArchive
import DropsImage
import DropsModel
import DropsProcess
import DropsQEMU
import DropsRunner
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

    /// ia32 profiles need i386 binaries: BusyBox from the i386 package (make busybox-i386),
    /// recorded with its version, runs as /init's shell (Debian's kernel runs i386 programs).
    @Test func i386BusyboxForIa32Profiles() throws {
        let busybox = Repository.root + "/build/busybox-i386/busybox"
        try #require(FileManager.default.isExecutableFile(atPath: busybox), "run `make busybox-i386`")
        let work = TemporaryDirectory("drops-rdboot")
        let vmlinuz = try kernel(into: work)
        let tool = try #require(CommandLineTests.executable("drops-build"))
        let initrd = work.path + "/ramdisk.cpio.gz"
        let child = try ChildProcess([tool, "ramdisk", "--rootfs", Repository.root + "/rootfs", "--busybox", busybox, "-o", initrd, "--json"],
                                     output: work.path + "/build.json", errors: work.path + "/build.err")
        #expect(child.wait() == 0, "\((try? String(contentsOfFile: work.path + "/build.err", encoding: .utf8)) ?? "")")
        let summary = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: work.path + "/build.json")))) as? [String: Any]
        #expect((summary?["busybox"] as? String)?.contains(" i386 (") == true, "\(String(describing: summary))")
        let binary = try #require(try ArchiveListing.read(initrd).first { $0.path == "bin/busybox" })
        #expect(binary.data[4] == 1 && binary.data[18] == 3, "bin/busybox is not an ELF32 i386 program")
        let command = QEMUCommand(executable: "qemu-system-x86_64", arguments: [
            "-accel", "tcg", "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-m", "256",
            "-kernel", vmlinuz, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 quiet",
        ], workingDirectory: work.path)
        let watcher = try SerialWatcher(patterns: [ExpectedPattern("DROPS-ROOTFS init reached", budget: 120),
                                                   ExpectedPattern("DROPS-ROOTFS shell on the console", budget: 30)])
        let outcome = try TargetBoot.run(QEMUGuest(command: command), watcher: watcher, timeout: 180)
        #expect(outcome.ending == .finished, "\(outcome.ending)\n\(outcome.transcript.suffix(3000))")
    }

    @Test(arguments: [RamDiskCompression.gzip, .xz, .zstd, .lz4, .none])
    func debianKernelReachesInitAndTheShell(_ compression: RamDiskCompression) throws {
        try #require(Programs.find("qemu-system-x86_64") != nil, "install qemu-system-x86 (make deps)")
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
        let outcome = try TargetBoot.run(QEMUGuest(command: command), watcher: watcher, timeout: 180)
        #expect(outcome.ending == .finished, "\(compression): \(outcome.ending)\n\(outcome.transcript.suffix(3000))")
    }
}

/// The selftest as a CD: drops-build profile --iso writes it with libarchive, its files read
/// back as the tree's, and drops-run --iso boots it with every probe module verified.
@Suite(.serialized) struct IsoBootTests {
    @Test func selftestCDBootsWithEveryModuleVerified() throws {
        try #require(SelftestBootTests.ready, "run `make probe` and install qemu-system-x86 first")
        try #require(IsoImage.unavailableReason() == nil, "install isolinux and syslinux-common (make deps)")
        let out = TemporaryDirectory("drops-iso")
        let build = try #require(CommandLineTests.executable("drops-build"))
        let built = try ChildProcess([build, "profile", "selftest", "--iso", "--out", out.path], errors: out.path + "/build.err",
                                     environment: ["DROPS_PROFILES_DIR": Repository.profiles])
        #expect(built.wait() == 0, "\((try? String(contentsOfFile: out.path + "/build.err", encoding: .utf8)) ?? "")")
        let iso = out.path + "/selftest.iso"
        let manifest = try TreeVerifier.loadManifest(directory: out.path + "/selftest")

        // What is on the CD: ISOLINUX and its modules, its configuration, the tree's files.
        let items = Dictionary(uniqueKeysWithValues: try ArchiveListing.read(iso).map { ($0.path, $0) })
        for path in ["isolinux/isolinux.bin", "isolinux/ldlinux.c32", "isolinux/mboot.c32", "isolinux/libcom32.c32", "manifest.json"] {
            #expect(items[path] != nil, "\(path) missing from the CD: \(items.keys.sorted())")
        }
        for module in [manifest.firstStage] + manifest.modules {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: out.path + "/selftest/" + module.path))
            #expect(items[module.path]?.data == [UInt8](bytes), "\(module.path) differs on the CD")
        }
        let config = String(decoding: items["isolinux/isolinux.cfg"]?.data ?? [], as: UTF8.self)
        #expect(config.contains("KERNEL mboot.c32"))
        #expect(config.contains("APPEND /bin/probe -serial -modaddr 0x02000000 --- /bin/fiasco "))

        let run = try DropsRunTool.run([out.path + "/selftest", "--iso", "--json"])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(run.verifiedModules == manifest.modules.count)
        #expect(run.served.isEmpty)
    }

    @Test func missingCDImageIsNamedWithTheFix() throws {
        try #require(SelftestBootTests.ready, "run `make probe` and install qemu-system-x86 first")
        let out = TemporaryDirectory("drops-iso")
        let plan = try Planner.plan(try ProfileLoader(directory: Repository.profiles).load("selftest"), options: PlanOptions())
        let result = try ImageBuilder().build(plan, outputRoot: out.path)
        let run = try DropsRunTool.run([result.directory, "--iso"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("no CD image \(result.directory).iso; make it with drops-build profile selftest --iso"), "\(run.stderr)")
    }
}

/// drops-build ramdisk refuses bad input with one line naming it, exit 1, and no file.
@Suite struct RamDiskCommandTests {
    func ramdisk(_ arguments: [String], in work: TemporaryDirectory) throws -> (status: Int32, stderr: String) {
        let tool = try #require(CommandLineTests.executable("drops-build"), "build the tools first (make build)")
        let child = try ChildProcess([tool, "ramdisk", "--busybox", "none"] + arguments, errors: work.path + "/err")
        let status = child.wait()
        return (status, (try? String(contentsOfFile: work.path + "/err", encoding: .utf8)) ?? "")
    }

    func root(_ work: TemporaryDirectory) -> String {
        work.write("root/init", text: "#!/bin/sh\n")
        work.write("root/devices.txt", text: "/dev/console c 600 0 0 5 1\n")
        return work.path + "/root"
    }

    func expectRefused(_ result: (status: Int32, stderr: String), _ words: [String], nothingIn work: TemporaryDirectory,
                       sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(result.status == 1, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)", sourceLocation: sourceLocation)
        for word in words { #expect(result.stderr.contains(word), "missing '\(word)' in \(result.stderr)", sourceLocation: sourceLocation) }
        let written = ((try? FileManager.default.contentsOfDirectory(atPath: work.path + "/out")) ?? [])
        #expect(written.isEmpty, "\(written)", sourceLocation: sourceLocation)
    }

    @Test func goodInputWritesTheFile() throws {
        let work = TemporaryDirectory("drops-rdcmd")
        let result = try ramdisk(["--rootfs", root(work), "-o", work.path + "/out/r.cpio.gz"], in: work)
        #expect(result.status == 0, "\(result.stderr)")
        let names = try ArchiveListing.read(work.path + "/out/r.cpio.gz").map(\.path)
        #expect(names == ["dev", "dev/console", "init"])
    }

    @Test func deviceTableErrorNamesFileAndLine() throws {
        let work = TemporaryDirectory("drops-rdcmd")
        let rootfs = root(work)
        work.write("root/devices.txt", text: "# nodes\n/dev/console c 600 0 0 5 1\n/dev/null c 666 0 0 1\n")
        expectRefused(try ramdisk(["--rootfs", rootfs, "-o", work.path + "/out/r.cpio.gz"], in: work),
                      ["\(rootfs)/devices.txt:3:", "6 fields"], nothingIn: work)
    }

    @Test func symlinkOutOfTheTreeIsRefused() throws {
        let work = TemporaryDirectory("drops-rdcmd")
        let rootfs = root(work)
        try FileManager.default.createSymbolicLink(atPath: rootfs + "/shadow", withDestinationPath: "../../etc/shadow")
        expectRefused(try ramdisk(["--rootfs", rootfs, "-o", work.path + "/out/r.cpio.gz"], in: work),
                      ["shadow", "outside the root file system"], nothingIn: work)
    }

    @Test func ext2TooSmallForTheContentIsRefused() throws {
        try #require(Ext2Writer.unavailableReason() == nil, "install e2fsprogs and faketime (make deps)")
        let work = TemporaryDirectory("drops-rdcmd")
        let rootfs = root(work)
        work.write("root/big", [UInt8](repeating: 1, count: 200_000))
        expectRefused(try ramdisk(["--rootfs", rootfs, "--format", "ext2", "--size", "100K", "-o", work.path + "/out/r.ext2"], in: work),
                      ["100 KiB is too small", "raise its size"], nothingIn: work)
        let fits = try ramdisk(["--rootfs", rootfs, "--format", "ext2", "-o", work.path + "/out/r.ext2"], in: work)
        #expect(fits.status == 0, "\(fits.stderr)")
    }

    @Test func missingRootfsAndBadCompressionAreRefused() throws {
        let work = TemporaryDirectory("drops-rdcmd")
        expectRefused(try ramdisk(["--rootfs", work.path + "/none", "-o", work.path + "/out/r.cpio"], in: work),
                      ["\(work.path)/none does not exist"], nothingIn: work)
        let usage = try ramdisk(["--rootfs", root(work), "--compression", "bzip2"], in: work)
        #expect(usage.status == 2)
        #expect(usage.stderr.contains("gzip, xz, zstd, lz4"))
    }
}

/// The linux profile: Debian's kernel and the RAM disk from rootfs/, booted over the network
/// from our TFTP server through drops-run (iPXE and PXELINUX) and from its CD image.
@Suite(.serialized) struct LinuxProfileBootTests {
    func linuxTree(_ work: TemporaryDirectory) throws -> String {
        let components = TemporaryDirectory("drops-linux-parts")
        let vmlinuz = try RamDiskBootTests().kernel(into: components)
        try FileManager.default.moveItem(atPath: vmlinuz, toPath: work.path + "/vmlinuz")
        let build = try #require(CommandLineTests.executable("drops-build"))
        let child = try ChildProcess([build, "profile", "linux", "--search-path", work.path, "--out", work.path + "/out", "--iso"],
                                     output: work.path + "/build.out", errors: work.path + "/build.err",
                                     environment: ["DROPS_PROFILES_DIR": Repository.profiles])
        #expect(child.wait() == 0, "\((try? String(contentsOfFile: work.path + "/build.err", encoding: .utf8)) ?? "")")
        return work.path + "/out/linux"
    }

    @Test func debianKernelBootsTheRamDiskOverTheNetworkAndFromCD() throws {
        try #require(Programs.find("qemu-system-x86_64") != nil, "install qemu-system-x86 (make deps)")
        try #require(FileManager.default.isExecutableFile(atPath: Busybox.defaultPath), "install busybox-static (make deps)")
        let work = TemporaryDirectory("drops-linux")
        let tree = try linuxTree(work)
        let manifest = try TreeVerifier.loadManifest(directory: tree)
        #expect(manifest.firstStage.inspection.hasPrefix("Linux bzImage, boot protocol 2."), "\(manifest.firstStage.inspection)")
        for chain in ["ipxe", "pxelinux"] {
            let run = try DropsRunTool.run([tree, "--chain", chain, "--json"])
            #expect(run.status == 0, "\(chain): \(run.stderr.suffix(3000))")
            #expect(run.served.contains("bin/vmlinuz") && run.served.contains("bin/ramdisk.img"), "\(chain): \(run.served)")
            let patterns = run.summary["patterns"] as? [[String: Any]] ?? []
            #expect(patterns.count == 2 && patterns.allSatisfy { $0["seconds"] is Double }, "\(chain): \(patterns)")
            // QEMU keeps port 69: said at the start, and the report says nothing was fetched.
            #expect(run.stderr.contains("run-time files (bin/runtime-check.txt) cannot be delivered: the profile's clients ask port 69"), "\(run.stderr.prefix(2000))")
            let files = run.summary["runtimeFiles"] as? [[String: Any]] ?? []
            #expect(files.first?["deliverable"] as? Bool == false && files.first?["fetched"] as? Bool == false, "\(files)")
        }
        let cd = try DropsRunTool.run([tree, "--iso", "--json"])
        #expect(cd.status == 0, "iso: \(cd.stderr.suffix(3000))")
    }

    /// Without root: a profile whose runtime_port is not 69 makes drops-run serve on that
    /// port, which QEMU forwards, so the RAM disk's run-time step gets its file from us.
    @Test func runtimePortBringsRuntimeFilesToOurServerWithoutRoot() throws {
        try #require(Programs.find("qemu-system-x86_64") != nil, "install qemu-system-x86 (make deps)")
        let work = TemporaryDirectory("drops-linux-port")
        let components = TemporaryDirectory("drops-linux-parts")
        let vmlinuz = try RamDiskBootTests().kernel(into: components)
        try FileManager.default.moveItem(atPath: vmlinuz, toPath: work.path + "/vmlinuz")
        let port = Int.random(in: 20_000...29_999)
        let build = try #require(CommandLineTests.executable("drops-build"))
        let child = try ChildProcess([build, "profile", "linux", "--search-path", work.path, "--out", work.path + "/out", "--set", "runtime_port=\(port)"],
                                     errors: work.path + "/build.err", environment: ["DROPS_PROFILES_DIR": Repository.profiles])
        #expect(child.wait() == 0, "\((try? String(contentsOfFile: work.path + "/build.err", encoding: .utf8)) ?? "")")
        let run = try DropsRunTool.run([work.path + "/out/linux", "--json", "--no-milestones", "--expect", "DROPS-ROOTFS runtime 1 of 1 files fetched and verified"])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(run.stderr.contains("over TFTP on 127.0.0.1:\(port)"), "\(run.stderr.prefix(1000))")
        #expect(run.stderr.contains("run-time files (bin/runtime-check.txt) can be delivered"))
        #expect(run.served.contains("bin/runtime-check.txt"), "\(run.served)")
    }
}

/// A profile's `ramdisk = { … }` module is built by drops-build from rootfs/, recorded in the
/// manifest with the BusyBox version, and refused with file:line when it is wrong.
@Suite struct ProfileRamDiskTests {
    func profile(_ work: TemporaryDirectory, ramdisk: String) -> ProfileLoader {
        work.write("parts/vmlinuz", SyntheticBinary.bzImage())
        work.write("root/init", text: "#!/bin/sh\n")
        work.write("root/devices.txt", text: "/dev/console c 600 0 0 5 1\n")
        work.write("profiles/p.toml", text: """
            api = "linux"
            arch = "amd64"
            search_path = ["../parts"]
            [loader]
            name = "vmlinuz"
            role = "linux"
            [[module]]
            name = "ramdisk.img"
            role = "ramdisk"
            ramdisk = \(ramdisk)
            """)
        return ProfileLoader(directory: work.path + "/profiles")
    }

    @Test func builtFromRootfsAndRecorded() throws {
        let work = TemporaryDirectory("drops-prd")
        let loaded = try profile(work, ramdisk: #"{ rootfs = "../root", compression = "zstd", busybox = "none" }"#).load("p")
        let result = try ImageBuilder().build(try Planner.plan(loaded, options: PlanOptions()), outputRoot: work.path + "/out")
        let module = try #require(result.manifest.modules.first)
        #expect(module.source == "RAM disk (cpio, zstd) from \(work.path)/root, no BusyBox")
        let items = try ArchiveListing.read(result.directory + "/bin/ramdisk.img")
        #expect(items.map(\.path) == ["dev", "dev/console", "init"])
        #expect(!FileManager.default.fileExists(atPath: result.directory + "/.ramdisk.img.ramdisk"))
    }

    @Test func wrongSettingsNameTheKey() throws {
        let work = TemporaryDirectory("drops-prd")
        for (text, words) in [(#"{ format = "squashfs" }"#, "'squashfs' is not one of: cpio, ext2"),
                              (#"{ size = "16M" }"#, "size is for format = \"ext2\""),
                              (#"{ colour = "blue" }"#, "'module.0.ramdisk.colour': is not understood"),
                              (#"{ format = "ext2", size = "lots" }"#, "'lots' is not a size")] {
            do {
                _ = try profile(work, ramdisk: text).load("p")
                Issue.record("accepted \(text)")
            } catch {
                #expect("\(error)".contains("p.toml:"), "\(error)")
                #expect("\(error)".contains(words), "\(error)")
            }
        }
    }
}

/// `busybox = "auto"` (the default) takes the BusyBox of the profile's architecture.
@Suite struct BusyboxArchitectureTests {
    @Test func ia32ProfilesGetI386Busybox() throws {
        let i386 = Repository.root + "/build/busybox-i386/busybox"
        try #require(FileManager.default.isExecutableFile(atPath: i386), "run `make busybox-i386`")
        try #require(FileManager.default.isExecutableFile(atPath: Busybox.defaultPath), "install busybox-static (make deps)")
        for (arch, machine) in [("ia32", UInt8(3)), ("amd64", UInt8(62))] {
            let work = TemporaryDirectory("drops-bbarch")
            work.write("parts/first", SyntheticBinary.multibootELF())
            work.write("profiles/p.toml", text: """
                api = "multiboot"
                arch = "\(arch)"
                search_path = ["../parts"]
                [loader]
                name = "first"
                role = "multiboot"
                [[module]]
                name = "ramdisk.img"
                role = "ramdisk"
                ramdisk = { rootfs = "\(Repository.root)/rootfs" }
                """)
            let plan = try Planner.plan(try ProfileLoader(directory: work.path + "/profiles").load("p"), options: PlanOptions())
            let result = try ImageBuilder().build(plan, outputRoot: work.path + "/out")
            let binary = try #require(try ArchiveListing.read(result.directory + "/bin/ramdisk.img").first { $0.path == "bin/busybox" })
            #expect(binary.data[18] == machine, "\(arch): e_machine \(binary.data[18])")
            #expect(result.manifest.modules[0].source.contains(arch == "ia32" ? " i386 (" : " amd64 ("), "\(result.manifest.modules[0].source)")
        }
    }
}
