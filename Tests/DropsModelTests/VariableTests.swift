import Testing

@testable import DropsModel

@Suite struct VariableTests {
    let scope = VariableScope(["server_ip": "10.0.2.2", "user": "jork", "prefix": "/tftpboot/${user}", "a": "${b}", "b": "${a}"])

    @Test func expandsNamesAndNestedReferences() throws {
        #expect(try scope.expand("--server=${server_ip}").get() == "--server=10.0.2.2")
        #expect(try scope.expand("${prefix}/bin").get() == "/tftpboot/jork/bin")
        #expect(try scope.expand("no variables").get() == "no variables")
        #expect(try scope.expand("cost $$5 and ${user}$$").get() == "cost $5 and jork$")
        #expect(try scope.expand("unterminated ${user").get() == "unterminated ${user")
    }

    @Test func unknownVariableIsNamed() {
        #expect(scope.expand("x ${nothing} y") == .failure(UnresolvedVariable(name: "nothing", cycle: [])))
    }

    @Test func selfReferenceIsACycleNotARecursion() {
        guard case let .failure(error) = scope.expand("${a}") else {
            Issue.record("a cycle must fail")
            return
        }
        #expect(error.cycle == ["a", "b", "a"])
    }
}
