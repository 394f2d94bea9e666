import DropsTestSupport
import Foundation
import Testing

@testable import DropsModel

/// roottask's and RMGR's configuration (`task modname "names" …`) as a generated module with
/// `-configfile` when GRUB 2 would change it, and on the command line otherwise.
@Suite struct ConfigDeliveryTests {
    let folder = TemporaryDirectory("drops-config")

    func plan(_ text: String) throws -> BuildPlan {
        let components = Repository.fakeComponents(in: folder)
        folder.write("profiles/p.toml", text: text)
        return try Planner.plan(try ProfileLoader(directory: folder.path + "/profiles").load("p"), options: PlanOptions(searchPath: [components]))
    }

    func bootstrapChain(roottask: String, delivery: String? = nil, extra: String = "") -> String {
        """
        api = "l4env"
        \(delivery.map { "config_delivery = \"\($0)\"" } ?? "")
        [loader]
        name = "bootstrap"
        role = "bootstrap"
        [[module]]
        name = "fiasco"
        role = "kernel"
        [[module]]
        name = "sigma0"
        role = "sigma0"
        [[module]]
        name = "roottask"
        role = "roottask"
        args = '\(roottask)'
        modaddr = "0x02000000"
        \(extra)
        [[module]]
        name = "names"
        role = "names"
        [[module]]
        name = "dm_phys"
        role = "dm_phys"
        [[module]]
        name = "simple_ts"
        role = "simple_ts"
        """
    }

    @Test func quotedConfigurationBecomesAModuleAfterTheFixedSlots() throws {
        let plan = try plan(bootstrapChain(roottask: #"task modname "names" boot_priority 0xA0"#))
        #expect(plan.bootModules.map(\.name) == ["fiasco", "sigma0", "roottask", "roottask.cfg", "names", "dm_phys", "simple_ts"])
        let roottask = try #require(plan.modules.first { $0.name == "roottask" })
        #expect(roottask.commandLine == "roottask -configfile")
        #expect(roottask.modaddr == "0x02000000")
        let file = try #require(plan.modules.first { $0.name == "roottask.cfg" })
        #expect(file.role == .config && file.delivery == .boot && file.args.isEmpty)
        #expect(file.source == .generated("#!roottask\ntask modname \"names\" boot_priority 0xA0\n"))
        let record = try #require(plan.rootTaskConfiguration)
        #expect(record.delivery == "module" && record.module == "bin/roottask.cfg" && record.ownerModule == 2 && record.firstOptionModule == 3)
        #expect(record.text == #"task modname "names" boot_priority 0xA0"#)
    }

    @Test func earlierOptionsKeepTheirModulesAndTheFileFollowsThem() throws {
        let symbols = """
            [[module]]
            name = "roottask.sym"
            role = "symbols"
            content = "symbols"
            """
        let plan = try plan(bootstrapChain(roottask: #"-symbols task modname "names""#, extra: symbols))
        #expect(plan.bootModules.map(\.name).prefix(5) == ["fiasco", "sigma0", "roottask", "roottask.sym", "roottask.cfg"])
        #expect(plan.modules.first { $0.name == "roottask" }?.args == "-symbols -configfile")
    }

    @Test func quoteFreeConfigurationStaysOnTheCommandLine() throws {
        let plan = try plan(bootstrapChain(roottask: "task modname names"))
        #expect(!plan.modules.contains { $0.name == "roottask.cfg" })
        #expect(plan.modules.first { $0.name == "roottask" }?.args == "task modname names")
        #expect(plan.rootTaskConfiguration?.delivery == "cmdline")
    }

    @Test func moduleModeAlwaysWritesTheFileAndCmdlineModeNever() throws {
        let always = try plan(bootstrapChain(roottask: "task modname names", delivery: "module"))
        #expect(always.modules.contains { $0.name == "roottask.cfg" })
        #expect(always.rootTaskConfiguration?.reason.contains("config_delivery = \"module\"") == true)
        let never = try plan(bootstrapChain(roottask: #"task modname "names""#, delivery: "cmdline"))
        #expect(!never.modules.contains { $0.name == "roottask.cfg" })
        #expect(never.modules.first { $0.name == "roottask" }?.args == #"task modname "names""#)
        #expect(never.rootTaskConfiguration?.reason.contains("GRUB 2 puts a backslash") == true)
    }

    @Test func rmgrAsFirstStageGetsAnRmgrFileAfterSigma0() throws {
        let plan = try plan("""
            api = "v2"
            [loader]
            name = "rmgr"
            role = "rmgr"
            args = '-sigma0 task modname "sounddrv" module'
            [[module]]
            name = "fiasco"
            role = "kernel"
            [[module]]
            name = "sigma0"
            role = "sigma0"
            [[module]]
            name = "names"
            role = "names"
            """)
        #expect(plan.firstStage.commandLine == "rmgr -sigma0 -configfile")
        #expect(plan.bootModules.map(\.name) == ["fiasco", "sigma0", "rmgr.cfg", "names"])
        #expect(plan.modules[2].source == .generated("#!rmgr\ntask modname \"sounddrv\" module\n"))
        #expect(plan.rootTaskConfiguration?.ownerModule == nil && plan.rootTaskConfiguration?.firstOptionModule == 2)
    }

    @Test func anOwnConfigFileIsKeptAndModuleModeRefusesToAddASecond() throws {
        let own = """
            [[module]]
            name = "my.cfg"
            role = "config"
            content = "#!roottask\\n"
            """
        let kept = try plan(bootstrapChain(roottask: #"-configfile task modname "names""#, extra: own))
        #expect(kept.modules.filter { $0.role == .config }.map(\.name) == ["my.cfg"])
        #expect(kept.rootTaskConfiguration?.delivery == "cmdline")
        #expect {
            try plan(bootstrapChain(roottask: #"-configfile task modname "names""#, delivery: "module", extra: own))
        } throws: { error in
            "\(error)".contains("already has -configfile") && "\(error)".contains("config_delivery = \"cmdline\"")
        }
    }

    @Test func aModuleThatTakesTheFilesNameIsAnError() throws {
        let clash = """
            [[module]]
            name = "roottask.cfg"
            role = "data"
            content = "x"
            """
        #expect {
            try plan(bootstrapChain(roottask: #"task modname "names""#, extra: clash))
        } throws: { error in
            "\(error)".contains("'roottask.cfg'") && "\(error)".contains("rename it")
        }
    }

    @Test func configurationInAFileIsReadBackAfterItsHeader() {
        #expect(RootTaskConfiguration.configuration(inFile: "#!roottask\ntask  modname \"x\"\n\nallow_cli\n", header: "#!roottask") == "task modname \"x\" allow_cli")
        #expect(RootTaskConfiguration.configuration(inFile: "task modname", header: "#!roottask") == nil)
        #expect(RootTaskConfiguration.configuration(inFile: "#!rmgr\ntask", header: "#!roottask") == nil)
    }
}
