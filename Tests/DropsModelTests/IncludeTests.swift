import DropsTestSupport
import Foundation
import Testing

@testable import DropsModel

@Suite struct IncludeTests {
    let folder = TemporaryDirectory("drops-include")

    func write(_ name: String, _ text: String) {
        folder.write("\(name).toml", text: text)
    }

    @Test func userProfileAddsAServerAfterAnother() throws {
        write("mine", """
            include = "l4env"
            description = "mine"
            [[module]]
            name = "myserver"
            role = "server"
            args = "--verbose"
            after = "l4io"
            """)
        // The shipped l4env profile is included by path from the temporary folder.
        try FileManager.default.copyItem(atPath: Repository.profiles + "/l4env.toml", toPath: folder.path + "/l4env.toml")
        let profile = try ProfileLoader(directory: folder.path).load("mine")
        let names = profile.modules.map(\.name)
        let l4io = try #require(names.firstIndex(of: "l4io"))
        #expect(names[l4io + 1] == "myserver")
        #expect(profile.description == "mine")
        #expect(profile.api == .l4env)
        #expect(profile.sources.count == 2)
        #expect(profile.milestones.first?.pattern == "L4 Bootstrapper")
    }

    @Test func overrideChangesFieldsAndKeepsTheRest() throws {
        write("base", """
            api = "v2"
            [variables]
            a = "1"
            b = "2"
            [loader]
            name = "rmgr"
            role = "rmgr"
            args = "-sigma0"
            [[module]]
            name = "fiasco"
            role = "kernel"
            args = "-nokdb"
            [[module]]
            name = "sigma0"
            role = "sigma0"
            [[module]]
            name = "extra"
            role = "server"
            """)
        write("child", """
            include = "base"
            remove = ["extra"]
            [variables]
            b = "3"
            [[module]]
            name = "fiasco"
            args = "-nokdb -serial_esc"
            [[module]]
            name = "first"
            role = "server"
            before = "fiasco"
            """)
        let profile = try ProfileLoader(directory: folder.path).load("child")
        #expect(profile.modules.map(\.name) == ["first", "fiasco", "sigma0"])
        #expect(profile.modules[1].role == .kernel)
        #expect(profile.modules[1].args == "-nokdb -serial_esc")
        #expect(profile.variables["a"]?.value == "1")
        #expect(profile.variables["b"]?.value == "3")
        #expect(profile.loader.args == "-sigma0")
    }

    @Test func includeLoopIsReported() {
        write("a", "include = \"b\"\n")
        write("b", "include = \"a\"\n")
        #expect {
            try ProfileLoader(directory: folder.path).load("a")
        } throws: { error in
            guard case let .includeCycle(chain) = error as? ModelError else { return false }
            return chain.count == 3
        }
    }

    @Test func anchorsMustNameModules() {
        write("base", "api = \"v2\"\n[loader]\nname = \"rmgr\"\nrole = \"rmgr\"\n")
        write("child", "include = \"base\"\n[[module]]\nname = \"x\"\nrole = \"server\"\nafter = \"nosuch\"\n")
        #expect {
            try ProfileLoader(directory: folder.path).load("child")
        } throws: { error in "\(error)".contains("nosuch") && "\(error)".contains("child.toml:2") }
    }

    @Test func duplicateModuleNamesAreRefused() {
        write("dup", """
            api = "v2"
            [loader]
            name = "rmgr"
            role = "rmgr"
            [[module]]
            name = "fiasco"
            role = "kernel"
            [[module]]
            name = "fiasco"
            role = "sigma0"
            """)
        #expect {
            try ProfileLoader(directory: folder.path).load("dup")
        } throws: { error in
            guard case let .duplicateModule(location, name) = error as? ModelError else { return false }
            return name == "fiasco" && location.line == 8
        }
    }

    @Test func aModuleCannotShareTheFirstStageName() {
        write("dup", "api = \"v2\"\n[loader]\nname = \"rmgr\"\nrole = \"rmgr\"\n[[module]]\nname = \"rmgr\"\nrole = \"kernel\"\n")
        #expect(throws: ModelError.self) { try ProfileLoader(directory: folder.path).load("dup") }
    }

    @Test func missingRoleAndMissingLoaderAreExplained() {
        write("norole", "api = \"v2\"\n[loader]\nname = \"rmgr\"\nrole = \"rmgr\"\n[[module]]\nname = \"fiasco\"\n")
        #expect { try ProfileLoader(directory: folder.path).load("norole") } throws: { "\($0)".contains("has no role") }
        write("noloader", "api = \"v2\"\n")
        #expect { try ProfileLoader(directory: folder.path).load("noloader") } throws: { "\($0)".contains("[loader]") }
    }
}
