import DropsTestSupport
import Foundation
import Testing

@testable import DropsModel

/// The API and first-stage order rules, each broken on purpose.
@Suite struct RuleTests {
    let folder = TemporaryDirectory("drops-rules")

    func plan(_ text: String) throws -> BuildPlan {
        let components = Repository.fakeComponents(in: folder)
        folder.write("profiles/p.toml", text: text)
        let profile = try ProfileLoader(directory: folder.path + "/profiles").load("p")
        return try Planner.plan(profile, options: PlanOptions(searchPath: [components]))
    }

    func modules(_ list: [(String, String, String)]) -> String {
        list.map { "[[module]]\nname = \"\($0.0)\"\nrole = \"\($0.1)\"\nargs = \"\($0.2)\"\n" }.joined()
    }

    func expectViolation(_ text: String, mentioning words: [String], sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(sourceLocation: sourceLocation) {
            try plan(text)
        } throws: { error in
            guard case let .ruleViolation(_, message) = error as? ModelError else { return false }
            return words.allSatisfy { message.contains($0) }
        }
    }

    let v2Base = "api = \"v2\"\n[loader]\nname = \"rmgr\"\nrole = \"rmgr\"\nargs = \"-sigma0\"\n"

    @Test func validV2Passes() throws {
        let p = try plan(v2Base + modules([("fiasco", "kernel", ""), ("sigma0", "sigma0", ""), ("vmlinuz", "l4linux", "")]))
        #expect(p.bootModules.count == 3)
    }

    @Test func rmgrNeedsKernelThenSigma0() {
        expectViolation(v2Base + modules([("sigma0", "sigma0", ""), ("fiasco", "kernel", "")]), mentioning: ["module 0", "kernel", "sigma0"])
    }

    @Test func rmgrWithoutSigma0OptionOnlyNeedsTheKernelFirst() throws {
        let text = "api = \"multiboot\"\n[loader]\nname = \"rmgr\"\nrole = \"rmgr\"\n" + modules([("fiasco", "kernel", ""), ("names", "server", "")])
        #expect(try plan(text).modules.count == 2)
    }

    @Test func x2RefusesRMGR() {
        expectViolation("api = \"x2\"\n[loader]\nname = \"rmgr\"\nrole = \"rmgr\"\nargs = \"-sigma0\"\n"
                        + modules([("fiasco", "kernel", ""), ("sigma0", "sigma0", "")]), mentioning: ["kickstart", "rmgr"])
    }

    @Test func x2RefusesAnRMGRModuleToo() {
        expectViolation("api = \"x2\"\n[loader]\nname = \"kickstart\"\nrole = \"kickstart\"\n"
                        + modules([("fiasco", "kernel", ""), ("sigma0", "sigma0", ""), ("vmlinuz", "l4linux", ""), ("rmgr", "rmgr", "")]),
                        mentioning: ["rmgr", "cannot be a module"])
    }

    @Test func l4envNeedsNamesDmPhysAndSimpleTS() {
        let base = "api = \"l4env\"\n[loader]\nname = \"bootstrap\"\nrole = \"bootstrap\"\n"
        expectViolation(base + modules([("fiasco", "kernel", ""), ("sigma0", "sigma0", ""), ("roottask", "roottask", ""), ("names", "names", ""), ("dm_phys", "dm_phys", "")]),
                        mentioning: ["simple_ts"])
    }

    @Test func bootstrapNeedsTheRootTaskThird() {
        let base = "api = \"l4env\"\n[loader]\nname = \"bootstrap\"\nrole = \"bootstrap\"\n"
        expectViolation(base + modules([("fiasco", "kernel", ""), ("sigma0", "sigma0", ""), ("names", "names", ""), ("roottask", "roottask", ""),
                                        ("dm_phys", "dm_phys", ""), ("simple_ts", "simple_ts", "")]),
                        mentioning: ["module 2", "names", "reorder"])
    }

    @Test func rootTaskConsumingOptionsNeedTheirModules() throws {
        let base = "api = \"l4env\"\n[loader]\nname = \"bootstrap\"\nrole = \"bootstrap\"\n"
        let servers: [(String, String, String)] = [("names", "names", ""), ("dm_phys", "dm_phys", ""), ("simple_ts", "simple_ts", "")]
        let good = base + modules([("fiasco", "kernel", ""), ("sigma0", "sigma0", ""), ("roottask", "roottask", "-symbols -configfile"),
                                   ("x86-legacy.devs", "symbols", ""), ("ramdisk.img", "config", "")] + servers)
        #expect(try plan(good).modules.count == 8)
        let bad = base + modules([("fiasco", "kernel", ""), ("sigma0", "sigma0", ""), ("roottask", "roottask", "-configfile")] + servers)
        expectViolation(bad, mentioning: ["-configfile", "module (3)", "names"])
    }

    @Test func l4envRefusesAMD64() {
        expectViolation("api = \"l4env\"\narch = \"amd64\"\n[loader]\nname = \"bootstrap\"\nrole = \"bootstrap\"\n", mentioning: ["amd64", "ia32"])
    }

    @Test func runtimeDeliveryIsNotABootModule() throws {
        let p = try plan(v2Base + modules([("fiasco", "kernel", ""), ("sigma0", "sigma0", "")])
                         + "[[module]]\nname = \"vmlinuz\"\nrole = \"l4linux\"\ndelivery = \"runtime\"\n")
        #expect(p.bootModules.map(\.name) == ["fiasco", "sigma0"])
        #expect(p.runtimeModules.map(\.name) == ["vmlinuz"])
    }

    @Test func unknownDeliveryIsRefused() {
        #expect(throws: ModelError.self) {
            try plan(v2Base + "[[module]]\nname = \"fiasco\"\nrole = \"kernel\"\ndelivery = \"sometimes\"\n")
        }
    }
}
