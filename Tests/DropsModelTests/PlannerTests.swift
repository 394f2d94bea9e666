import DropsTestSupport
import Foundation
import Testing

@testable import DropsModel

@Suite struct PlannerTests {
    let folder = TemporaryDirectory("drops-planner")

    func components() -> String { Repository.fakeComponents(in: folder) }

    func load(_ name: String) throws -> Profile {
        try ProfileLoader(directory: Repository.profiles).load(name)
    }

    @Test(arguments: ["v2", "x0", "x2", "l4env", "l4re"])
    func shippedProfilesPlanWithTheirComponents(name: String) throws {
        let plan = try Planner.plan(try load(name), options: PlanOptions(searchPath: [components()]))
        #expect(plan.profileName == name)
        for component in [plan.firstStage] + plan.modules {
            if case .missing = component.source { Issue.record("\(component.name) missing") }
        }
    }

    @Test func commandLinesAreNameThenExpandedArgs() throws {
        let plan = try Planner.plan(try load("l4env"), options: PlanOptions(searchPath: [components()], serverIP: "192.0.2.7"))
        let tftp = try #require(plan.modules.first { $0.name == "tftp" })
        #expect(tftp.commandLine == "tftp --server=192.0.2.7")
        let loader = try #require(plan.modules.first { $0.name == "loader" })
        #expect(loader.commandLine == "loader --fprov=TFTP /l4env/bin/l4linux.cfg")
        #expect(plan.firstStage.commandLine == "bootstrap -serial")
        let sigma0 = try #require(plan.modules.first { $0.name == "sigma0" })
        #expect(sigma0.commandLine == "sigma0")
    }

    @Test func setOverridesProfileVariables() throws {
        let options = PlanOptions(searchPath: [components()], variables: ["ramdisk_delivery": "boot", "tftp_prefix": "/tftpboot/jork"])
        let plan = try Planner.plan(try load("l4env"), options: options)
        let ramdisk = try #require(plan.modules.first { $0.name == "ramdisk.img" })
        #expect(ramdisk.delivery == .boot)
        let loader = try #require(plan.modules.first { $0.name == "loader" })
        #expect(loader.args == "--fprov=TFTP /tftpboot/jork/bin/l4linux.cfg")
        guard case let .generated(text) = try #require(plan.modules.first { $0.name == "l4linux.cfg" }).source else {
            Issue.record("l4linux.cfg must be generated")
            return
        }
        #expect(text.contains("modpath \"/tftpboot/jork/bin\""))
        #expect(text.contains("l4env_rd=/tftpboot/jork/bin/ramdisk.img"))
    }

    @Test func firstMatchInTheSearchPathWins() throws {
        let first = TemporaryDirectory("drops-first")
        let firstFiasco = first.write("fiasco", SyntheticBinary.elf(payload: Array("the first".utf8)))
        let plan = try Planner.plan(try load("v2"), options: PlanOptions(searchPath: [first.path, components()]))
        #expect(plan.modules.first { $0.name == "fiasco" }?.source == .file(firstFiasco))
        #expect(plan.modules.first { $0.name == "sigma0" }?.source == .file(folder.path + "/components/sigma0"))
    }

    @Test func environmentSearchPathComesAfterTheOptions() throws {
        let first = TemporaryDirectory("drops-env")
        let envFiasco = first.write("fiasco", SyntheticBinary.elf())
        let plan = try Planner.plan(try load("v2"), options: PlanOptions(searchPath: [], environmentSearchPath: "\(first.path):\(components())"))
        #expect(plan.modules.first { $0.name == "fiasco" }?.source == .file(envFiasco))
        #expect(plan.searchPath == [first.path, folder.path + "/components"])
    }

    @Test func missingComponentNamesItAndTheFoldersSearched() throws {
        let empty = TemporaryDirectory("drops-empty")
        #expect {
            try Planner.plan(try load("v2"), options: PlanOptions(searchPath: [empty.path]))
        } throws: { error in
            guard case let .missingComponent(module, file, searched) = error as? ModelError else { return false }
            return module == "rmgr" && file == "rmgr" && searched == [empty.path] && "\(error)".contains(empty.path)
        }
    }

    @Test func missingComponentsArePlannedAsMissingForShow() throws {
        let empty = TemporaryDirectory("drops-empty")
        let plan = try Planner.plan(try load("v2"), options: PlanOptions(searchPath: [empty.path], allowMissing: true))
        #expect(plan.firstStage.source == .missing(file: "rmgr"))
        #expect(plan.modules.first { $0.name == "l4linux" }?.source == .missing(file: "vmlinuz"))
    }

    @Test func searchPathThatDoesNotExistIsAnError() throws {
        #expect {
            try Planner.plan(try load("v2"), options: PlanOptions(searchPath: ["/nonexistent/drops"]))
        } throws: { error in
            guard case let .searchPathMissing(path, origin) = error as? ModelError else { return false }
            return path == "/nonexistent/drops" && origin == "--search-path"
        }
    }

    /// A folder of the profile's own search_path that is not there yet (a build output) is
    /// skipped; the error for a component then not found names it, marked.
    @Test func aProfilesOwnMissingFolderIsSkippedAndNamedWhenAComponentIsMissing() throws {
        let profiles = TemporaryDirectory("drops-own")
        profiles.write("p.toml", text: """
            api = "multiboot"
            search_path = ["build/kernel"]
            [loader]
            name = "bootstrap"
            role = "multiboot"
            [[module]]
            name = "fiasco"
            role = "kernel"
            """)
        let profile = try ProfileLoader(directory: profiles.path).load("p")
        let plan = try Planner.plan(profile, options: PlanOptions(searchPath: [components()]))
        #expect(plan.absentSearchFolders == [profiles.path + "/build/kernel"])
        #expect(plan.searchPath == [folder.path + "/components"])
        let empty = TemporaryDirectory("drops-empty")
        #expect {
            try Planner.plan(profile, options: PlanOptions(searchPath: [empty.path]))
        } throws: { error in
            guard case let .missingComponent(_, _, searched) = error as? ModelError else { return false }
            return searched == [empty.path, profiles.path + "/build/kernel (does not exist)"]
        }
    }

    @Test func variableWithNoValueIsNamedWithItsModule() throws {
        let profiles = TemporaryDirectory("drops-vars")
        profiles.write("p.toml", text: """
            api = "multiboot"
            [loader]
            name = "bootstrap"
            role = "multiboot"
            [[module]]
            name = "fiasco"
            role = "kernel"
            args = "-comport ${port}"
            """)
        let profile = try ProfileLoader(directory: profiles.path).load("p")
        #expect {
            try Planner.plan(profile, options: PlanOptions(searchPath: [components()]))
        } throws: { error in
            guard case let .undefinedVariable(location, variable, context) = error as? ModelError else { return false }
            return variable == "port" && location.line == 5 && context.contains("fiasco")
                && "\(error)".contains("--set port=VALUE")
        }
        let plan = try Planner.plan(profile, options: PlanOptions(searchPath: [components()], variables: ["port": "2"]))
        #expect(plan.modules[0].commandLine == "fiasco -comport 2")
    }

    @Test func optionalModulesAreLeftOutWhenMissing() throws {
        let profiles = TemporaryDirectory("drops-opt")
        profiles.write("p.toml", text: """
            api = "multiboot"
            [loader]
            name = "bootstrap"
            role = "multiboot"
            [[module]]
            name = "nosuchfile"
            role = "server"
            optional = true
            [[module]]
            name = "fiasco"
            role = "kernel"
            """)
        let plan = try Planner.plan(try ProfileLoader(directory: profiles.path).load("p"), options: PlanOptions(searchPath: [components()]))
        #expect(plan.omitted == ["nosuchfile"])
        #expect(plan.modules.map(\.name) == ["fiasco"])
    }
}
