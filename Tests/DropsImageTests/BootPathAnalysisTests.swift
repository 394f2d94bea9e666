import DropsImage
import DropsModel
import DropsTestSupport
import Foundation
import Testing

/// Which boot paths the manifest calls usable, from the chain's size and the PXELINUX files.
@Suite struct BootPathAnalysisTests {
    let folder = TemporaryDirectory("drops-bootpaths")

    /// v2 (four modules) or, with `padding`, v2 with that many extra copies of sigma0.
    func menu(padding: Int = 0) throws -> BootMenu {
        var plan = try shippedPlan("v2", components: Repository.fakeComponents(in: folder))
        let sigma0 = try #require(plan.modules.first { $0.name == "sigma0" })
        for index in 0..<padding {
            var copy = sigma0
            copy.name = "extra\(index)"
            plan.modules.append(copy)
        }
        return BootMenu(plan: plan)
    }

    let allSupportFiles = BootLoaderFiles.pxelinux.map(\.treePath)

    func path(_ name: String, in paths: [Manifest.BootPath]) throws -> Manifest.BootPath {
        try #require(paths.first { $0.name == name })
    }

    @Test func everyPathIsListedInOrder() throws {
        let paths = BootPathAnalysis.paths(menu: try menu(), supportFiles: allSupportFiles)
        #expect(paths.map(\.name) == ["qemu-multiboot", "ipxe", "pxelinux", "grub2", "grub-legacy"])
        #expect(paths.map(\.entry) == ["bin/rmgr", "boot.ipxe", "lpxelinux.0", "grub/grub.cfg", "menu.lst"])
        #expect(paths.map(\.usable) == [true, true, true, false, false])
    }

    @Test func smallChainBootsWithIPXEEvenWithoutPXELinux() throws {
        let paths = BootPathAnalysis.paths(menu: try menu(), supportFiles: [])
        let ipxe = try path("ipxe", in: paths)
        #expect(ipxe.usable)
        #expect(ipxe.reason.contains("4 of 8 modules"))
        #expect(try !path("pxelinux", in: paths).usable)
    }

    @Test func largeChainNeedsPXELinux() throws {
        let menu = try menu(padding: 5)
        #expect(menu.modules.count == 9)
        let with = try path("ipxe", in: BootPathAnalysis.paths(menu: menu, supportFiles: allSupportFiles))
        #expect(with.usable)
        #expect(with.reason.contains("9 modules"))
        #expect(with.reason.contains("chains to PXELINUX"))
        let without = try path("ipxe", in: BootPathAnalysis.paths(menu: menu, supportFiles: []))
        #expect(!without.usable)
        #expect(without.reason.contains("9 modules"))
        #expect(without.reason.contains("were not installed"))
    }

    @Test func partialPXELinuxSetIsNotEnough() throws {
        let paths = BootPathAnalysis.paths(menu: try menu(padding: 5), supportFiles: Array(allSupportFiles.dropLast()))
        #expect(try !path("ipxe", in: paths).usable)
        #expect(try !path("pxelinux", in: paths).usable)
    }
}
