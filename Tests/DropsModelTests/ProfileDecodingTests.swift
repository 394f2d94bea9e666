import DropsTestSupport
import Foundation
import Testing

@testable import DropsModel

@Suite struct ProfileDecodingTests {
    @Test(arguments: ["v2", "x0", "x2", "l4env", "l4re", "selftest", "linux"])
    func everyShippedProfileLoads(name: String) throws {
        let profile = try ProfileLoader(directory: Repository.profiles).load(name)
        #expect(profile.name == name)
        #expect(!profile.description.isEmpty)
        #expect(!profile.milestones.isEmpty)
        #expect(!profile.modules.isEmpty)
        #expect(profile.sources.count == 1)
    }

    @Test func shippedProfilesHaveTheirAPI() throws {
        let loader = ProfileLoader(directory: Repository.profiles)
        #expect(try loader.load("v2").api == .v2)
        #expect(try loader.load("x0").api == .x0)
        #expect(try loader.load("x2").api == .x2)
        #expect(try loader.load("l4env").api == .l4env)
        #expect(try loader.load("l4re").api == .l4re)
        #expect(try loader.load("x2").loader.role == .kickstart)
        #expect(try loader.load("v2").loader.args == "-sigma0")
    }

    @Test func decodesEveryModuleField() throws {
        let text = """
            description = "d"
            api = "l4env"
            [loader]
            name = "bootstrap"
            role = "bootstrap"
            args = "-serial"
            [[module]]
            name = "fiasco"
            role = "kernel"
            file = "fiasco-ia32"
            args = "-nokdb"
            optional = true
            inspect = "data"
            delivery = "runtime"
            modaddr = "0x02000000"
            """
        let file = try ProfileDecoder.decode(text: text, path: "/p/t.toml")
        let module = try #require(file.modules.first)
        #expect(module.name == "fiasco")
        #expect(module.role == .kernel)
        #expect(module.file == "fiasco-ia32")
        #expect(module.args == "-nokdb")
        #expect(module.optional == true)
        #expect(module.inspect == .data)
        #expect(module.delivery == "runtime")
        #expect(module.modaddr == "0x02000000")
        #expect(module.location.line == 7)
        #expect(file.loader?.args == "-serial")
    }

    @Test func syntaxErrorGivesFileLineAndColumn() {
        let text = "api = \"v2\"\n[loader]\nname = \"rmgr\"\nrole = = \"rmgr\"\n"
        #expect {
            try ProfileDecoder.decode(text: text, path: "/p/broken.toml")
        } throws: { error in
            guard case let .syntax(location, _) = error as? ModelError else { return false }
            return location.file == "/p/broken.toml" && location.line == 4 && location.column > 1
                && (error as! ModelError).description.hasPrefix("/p/broken.toml:4:")
        }
    }

    @Test func wrongTypeNamesKeyAndLine() {
        let text = "api = \"v2\"\n\n[[module]]\nname = \"fiasco\"\nrole = \"kernel\"\nargs = 42\n"
        #expect {
            try ProfileDecoder.decode(text: text, path: "t.toml")
        } throws: { error in
            guard case let .invalidValue(location, key, _) = error as? ModelError else { return false }
            return location.line == 6 && key == "module.0.args"
        }
    }

    @Test func unknownEnumValueListsTheAllowedOnes() {
        let text = "api = \"v3\"\n"
        #expect {
            try ProfileDecoder.decode(text: text, path: "t.toml")
        } throws: { error in
            let message = "\(error)"
            return message.contains("t.toml:1:1") && message.contains("'v3'") && message.contains("l4env")
        }
    }

    @Test func unknownKeyIsAnErrorNotIgnored() {
        let text = "api = \"v2\"\n[[module]]\nname = \"fiasco\"\nrole = \"kernel\"\narg = \"-nokdb\"\n"
        #expect {
            try ProfileDecoder.decode(text: text, path: "t.toml")
        } throws: { error in
            guard case let .unknownKey(location, key, known) = error as? ModelError else { return false }
            return location.line == 5 && key == "module.0.arg" && known.contains("args")
        }
    }

    @Test func moduleNamesMustBePlain() {
        for bad in ["../etc/passwd", "a b", "", ".."] {
            let text = "api = \"v2\"\n[[module]]\nname = \"\(bad)\"\nrole = \"kernel\"\n"
            #expect(throws: ModelError.self) { try ProfileDecoder.decode(text: text, path: "t.toml") }
        }
    }

    @Test func badModaddrIsRefused() {
        let text = "api = \"v2\"\n[[module]]\nname = \"x\"\nrole = \"kernel\"\nmodaddr = \"somewhere\"\n"
        #expect {
            try ProfileDecoder.decode(text: text, path: "t.toml")
        } throws: { error in "\(error)".contains("t.toml:5:1") && "\(error)".contains("hex") }
    }

    @Test func milestonesTakeStringsAndTables() throws {
        let text = "milestones = [\"A\", { pattern = \"B\", timeout = 5 }, { pattern = \"C\", timeout = 2.5 }]\n"
        let file = try ProfileDecoder.decode(text: text, path: "t.toml")
        #expect(file.milestones == [Milestone(pattern: "A"), Milestone(pattern: "B", timeout: 5), Milestone(pattern: "C", timeout: 2.5)])
    }

    @Test func searchPathIsRelativeToTheProfile() throws {
        let file = try ProfileDecoder.decode(text: "search_path = [\"../bin\", \"/abs\"]\n", path: "/home/u/profiles/p.toml")
        #expect(file.searchPath == ["/home/u/bin", "/abs"])
    }

    @Test func unknownProfileListsTheKnownOnes() {
        #expect {
            try ProfileLoader(directory: Repository.profiles).load("nosuch")
        } throws: { error in
            guard case let .unknownProfile(name, _, known) = error as? ModelError else { return false }
            return name == "nosuch" && known.contains("l4env") && known.contains("selftest")
                && "\(error)".contains("known profiles: l4env, l4re, linux, selftest, v2, x0, x2")
        }
    }
}

@Suite struct TOMLKeyLocatorTests {
    @Test func locatesKeysInTablesAndArraysOfTables() {
        let text = """
            api = "v2"
            [variables]
              user = "jork"
            [[module]]
            name = "a"
            [[module]]
            name = "b"
            args = "x"
            """
        let locator = TOMLKeyLocator(file: "f", text: text)
        #expect(locator.location("api").line == 1)
        #expect(locator.location("variables.user") == SourceLocation(file: "f", line: 3, column: 3))
        #expect(locator.location("module.1").line == 6)
        #expect(locator.location("module.1.args").line == 8)
        // Unknown keys fall back to their table.
        #expect(locator.location("module.1.nothing").line == 6)
        #expect(locator.location("nothing").line == 1)
    }
}

@Suite struct ArgumentTextTests {
    @Test func argsMustBeOneLine() {
        for bad in ["a\\nb", "tab\\there", "bell\\u0007"] {
            let text = "api = \"v2\"\n[[module]]\nname = \"x\"\nrole = \"kernel\"\nargs = \"\(bad)\"\n"
            #expect {
                try ProfileDecoder.decode(text: text, path: "t.toml")
            } throws: { error in "\(error)".contains("t.toml:5:1") && "\(error)".contains("one line") }
        }
    }
}
