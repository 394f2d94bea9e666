import DropsImage
import DropsModel
import DropsQEMU
import DropsTFTP
import DropsTestSupport
import Foundation
import NIOPosix
import Testing

/// The selftest image booted the way a PC boots it: QEMU's PXE ROM fetches lpxelinux.0 from
/// our own TFTP server, PXELINUX's mboot.c32 loads every module from it, and the probe's
/// report is compared with the manifest.
@Suite(.serialized) struct NetworkBootTests {
    @Test func pxelinuxChainDeliversEveryModuleThroughOurServer() throws {
        try #require(SelftestBootTests.ready, "run `make probe` and install qemu-system-x86 first")
        let out = TemporaryDirectory("drops-net")
        let plan = try Planner.plan(try ProfileLoader(directory: Repository.profiles).load("selftest"), options: PlanOptions())
        let result = try ImageBuilder().build(plan, outputRoot: out.path)
        let pxelinux = try #require(result.manifest.bootPaths.first { $0.name == "pxelinux" })
        try #require(pxelinux.usable, "PXELINUX files missing: \(pxelinux.reason)")

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = TFTPServerConfiguration(root: result.directory)
        configuration.host = "127.0.0.1"
        configuration.port = 0
        let server = try TFTPServer(configuration: configuration, group: group)
        defer {
            server.shutdown(grace: .seconds(1))
            try? group.syncShutdownGracefully()
        }
        let port = try #require(try server.start().port)
        let command = QEMUCommand.network(manifest: result.manifest, entry: pxelinux.entry, port: port)
        let outcome = try QEMURunner().run(command, timeout: 120, isDone: { $0.contains("DROPS-PROBE end") })
        let report = ProbeReport.parse(outcome.transcript)
        let check = ProbeCheck(manifest: result.manifest, report: report, form: .path)
        #expect(check.ok, "\(check.table())\n\(outcome.transcript.suffix(2000))")
        #expect(report.loaderName?.hasPrefix("PXELINUX") == true)
        // Every module really came from our server, not from QEMU's built-in TFTP.
        let served = Set(server.finishedTransfers.filter { $0.outcome == "ok" }.map(\.file))
        for module in result.manifest.modules {
            #expect(served.contains(module.path), "\(module.path) was not fetched from drops-serve")
        }
        #expect(served.contains("lpxelinux.0"))
        #expect(served.contains("mboot.c32"))
    }
}

@Suite struct CommandLineFormTests {
    @Test func pathFormComparesTheFirstWordByItsLastComponent() throws {
        let first = Manifest.Module(name: "probe", role: .bootstrap, delivery: .boot, path: "bin/probe", size: 1, sha256: "aa",
                                    cmdline: "probe -serial", source: "", inspection: "", modaddr: nil)
        let module = Manifest.Module(name: "sigma0", role: .sigma0, delivery: .boot, path: "bin/sigma0", size: 2, sha256: "bb",
                                     cmdline: "sigma0 -v a/b", source: "", inspection: "", modaddr: nil)
        let manifest = Manifest(format: 1, tool: "", profile: .init(name: "t", description: "", api: .l4env, arch: .ia32, sha256: ""),
                                variables: [:], firstStage: first, modules: [module], runtimeFiles: [], bootPaths: [],
                                milestones: [], files: [])
        let transcript = """
            DROPS-PROBE hello version=1
            DROPS-PROBE boot magic=0x2badb002 flags=0x0000026d cmdline="bin/probe -serial"
            DROPS-PROBE module 0 start=0x00106000 size=2 sha256=bb cmdline="bin/sigma0 -v a/b"
            DROPS-PROBE end modules=1
            """
        #expect(ProbeCheck(manifest: manifest, report: ProbeReport.parse(transcript), form: .path).ok)
        // The exact form does not accept the path, and the path form does not accept another name.
        #expect(!ProbeCheck(manifest: manifest, report: ProbeReport.parse(transcript), form: .name).ok)
        let renamed = transcript.replacingOccurrences(of: "bin/sigma0 -v", with: "bin/sigma1 -v")
        #expect(!ProbeCheck(manifest: manifest, report: ProbeReport.parse(renamed), form: .path).ok)
    }

    @Test func networkCommandPointsTheFirmwareAtOurPort() {
        let first = Manifest.Module(name: "probe", role: .bootstrap, delivery: .boot, path: "bin/probe", size: 1, sha256: "",
                                    cmdline: "probe", source: "", inspection: "", modaddr: nil)
        let manifest = Manifest(format: 1, tool: "", profile: .init(name: "t", description: "", api: .l4env, arch: .ia32, sha256: ""),
                                variables: [:], firstStage: first, modules: [], runtimeFiles: [], bootPaths: [], milestones: [], files: [])
        let command = QEMUCommand.network(manifest: manifest, entry: "lpxelinux.0", port: 40123, nic: "rtl8139")
        #expect(command.arguments.contains("user,id=n0,bootfile=tftp://10.0.2.2:40123/lpxelinux.0"))
        #expect(command.arguments.contains("rtl8139,netdev=n0"))
        #expect(command.arguments.suffix(2) == ["-boot", "n"])
        #expect(!command.arguments.contains("-kernel"))
    }
}
