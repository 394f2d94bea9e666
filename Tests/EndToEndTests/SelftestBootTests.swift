import DropsImage
import DropsModel
import DropsProcess
import DropsQEMU
import DropsRunner
import DropsTestSupport
import Foundation
import Testing

/// Builds the selftest image from the shipped profile and the probe build (`make probe`),
/// boots it with QEMU's own Multiboot loader under TCG and compares what the probe kernel
/// received with manifest.json: every module's size, SHA-256 and command line.
@Suite(.serialized) struct SelftestBootTests {
    static var ready: Bool {
        FileManager.default.fileExists(atPath: Repository.probeBuild + "/probe")
            && Programs.find("qemu-system-i386") != nil
    }

    func buildSelftest(into out: TemporaryDirectory) throws -> BuildResult {
        let profile = try ProfileLoader(directory: Repository.profiles).load("selftest")
        let plan = try Planner.plan(profile, options: PlanOptions())
        return try ImageBuilder().build(plan, outputRoot: out.path)
    }

    func boot(_ result: BuildResult) throws -> (ProbeCheck, BootOutcome) {
        let command = QEMUCommand.multiboot(manifest: result.manifest, treeDirectory: result.directory)
        let watcher = try SerialWatcher(patterns: result.manifest.milestones.map { ExpectedPattern($0.pattern, budget: $0.timeout) })
        let outcome = try TargetBoot.run(QEMUGuest(command: command), watcher: watcher, timeout: 120)
        return (ProbeCheck(manifest: result.manifest, report: ProbeReport.parse(outcome.transcript)), outcome)
    }

    @Test func selftestProfileIsLargeEnoughToDefeatTheShortPaths() throws {
        try #require(Self.ready, "run `make probe` and install qemu-system-x86 first")
        let out = TemporaryDirectory("drops-e2e")
        let result = try buildSelftest(into: out)
        let menu = BootMenu(plan: try Planner.plan(try ProfileLoader(directory: Repository.profiles).load("selftest"), options: PlanOptions()))
        #expect(result.manifest.modules.count >= 12)
        #expect(menu.commandLineBytes > 512)
        #expect(IPXEMultibootLimits.problem(with: menu) != nil)
        let sizes = result.manifest.modules.map(\.size)
        #expect(sizes.min()! < 100)
        #expect(sizes.max()! > 4 << 20 - 1)
    }

    @Test func everyModuleArrivesAsTheManifestSays() throws {
        try #require(Self.ready, "run `make probe` and install qemu-system-x86 first")
        let out = TemporaryDirectory("drops-e2e")
        let result = try buildSelftest(into: out)
        let (check, outcome) = try boot(result)
        #expect(outcome.ending == .finished || outcome.ending == .exited(QEMUCommand.probeExitStatus), "\(outcome.transcript)")
        #expect(check.ok, "\(check.table())")
        #expect(check.rows.count == result.manifest.modules.count)
        for row in check.rows {
            #expect(row.reported?.sha256 == row.expected.sha256)
            #expect(row.reported?.cmdline == row.expected.cmdline)
        }
    }

    @Test func aModuleChangedAfterTheBuildIsCaught() throws {
        try #require(Self.ready, "run `make probe` and install qemu-system-x86 first")
        let out = TemporaryDirectory("drops-e2e")
        let result = try buildSelftest(into: out)
        // Flip one byte of sigma0 in the tree: same size, different hash.
        let path = result.directory + "/bin/sigma0"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let (check, _) = try boot(result)
        #expect(!check.ok)
        let failed = check.rows.filter { !$0.ok }.map(\.name)
        #expect(failed == ["sigma0"])
        #expect(check.rows.first { $0.name == "sigma0" }?.problems == ["sha256 differs"])
    }
}
