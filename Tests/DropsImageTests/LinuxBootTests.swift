import DropsImage
import DropsModel
import DropsTestSupport
import Foundation
import Testing

/// The Linux boot protocol: every renderer writes kernel-and-initrd entries, and the
/// inspector knows a bzImage by its setup header.
@Suite struct LinuxBootTests {
    func plan(_ work: TemporaryDirectory) throws -> BuildPlan {
        work.write("parts/vmlinuz", SyntheticBinary.bzImage())
        work.write("parts/ramdisk.cpio.gz", [0x1F, 0x8B, 0x08, 0x00])
        return try writtenPlan("""
            api = "linux"
            arch = "amd64"
            [loader]
            name = "vmlinuz"
            role = "linux"
            args = "console=ttyS0 quiet"
            [[module]]
            name = "ramdisk.img"
            role = "ramdisk"
            file = "ramdisk.cpio.gz"
            """, name: "lx", in: work, options: PlanOptions(searchPath: [work.path + "/parts"]))
    }

    @Test func everyMenuBootsKernelAndInitrd() throws {
        let work = TemporaryDirectory("drops-linux")
        let menu = BootMenu(plan: try plan(work))
        #expect(menu.linux)
        let ipxe = IPXEScript.render(menu)
        #expect(ipxe.contains("iseq ${platform} efi && goto efi ||\nkernel bin/vmlinuz console=ttyS0 quiet || goto failed\ninitrd bin/ramdisk.img || goto failed\nboot"))
        // UEFI kernels load their initrds through the EFI stub, by name.
        #expect(ipxe.contains(":efi\nkernel bin/vmlinuz initrd=ramdisk.img console=ttyS0 quiet || goto failed\ninitrd bin/ramdisk.img || goto failed\nboot"))
        let pxelinux = PXELinuxConfig.render(menu)
        #expect(pxelinux.contains("  KERNEL bin/vmlinuz\n  INITRD bin/ramdisk.img\n  APPEND console=ttyS0 quiet\n"))
        #expect(!pxelinux.contains("mboot.c32"))
        let grub = Grub2Config.render(menu)
        #expect(grub.contains("  linux /lx/bin/vmlinuz console=ttyS0 quiet\n  initrd /lx/bin/ramdisk.img\n"))
        #expect(!grub.contains("multiboot"))
        let legacy = GrubLegacyMenu.render(menu)
        #expect(legacy.contains("kernel (nd)/lx/bin/vmlinuz console=ttyS0 quiet\ninitrd (nd)/lx/bin/ramdisk.img"))
    }

    @Test func bzImageIsRecognisedAndOtherFilesAreNot() throws {
        let report = try ComponentInspector.inspect(SyntheticBinary.bzImage(), component: "vmlinuz", path: "/x", inspection: .bzimage, arch: .amd64)
        #expect(report.summary == "Linux bzImage, boot protocol 2.15, 6.1.0-test")
        let elf = SyntheticBinary.elf(elfClass: 2, machine: 62), old = SyntheticBinary.bzImage(version: 0x0104)
        #expect(imageError { () throws(ImageError) in try ComponentInspector.inspect(elf, component: "vmlinuz", path: "/x", inspection: .bzimage, arch: .amd64) }?
            .description.contains("not a Linux kernel image") == true)
        #expect(imageError { () throws(ImageError) in try ComponentInspector.inspect(old, component: "vmlinuz", path: "/x", inspection: .bzimage, arch: .amd64) }?
            .description.contains("older than 2.00") == true)
    }

    @Test func linuxProfilesTakeNoL4Servers() throws {
        let work = TemporaryDirectory("drops-linux")
        work.write("parts/vmlinuz", SyntheticBinary.bzImage())
        work.write("parts/sigma0", SyntheticBinary.elf(elfClass: 2, machine: 62))
        #expect(throws: (any Error).self) {
            try writtenPlan("""
                api = "linux"
                arch = "amd64"
                [loader]
                name = "vmlinuz"
                role = "linux"
                [[module]]
                name = "sigma0"
                role = "sigma0"
                """, name: "bad", in: work, options: PlanOptions(searchPath: [work.path + "/parts"]))
        }
    }
}
