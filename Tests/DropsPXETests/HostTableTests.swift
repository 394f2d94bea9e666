import DropsModel
import Testing

@Suite struct HostTableTests {
    @Test func readsHostsAndDefaults() throws {
        let text = """
            # lab hosts
            default_profile = "selftest"
            unknown = "boot"

            [[host]]
            mac = "52:54:00:AA:00:01"
            name = "pc1"
            profile = "l4env"

            [[host]]
            mac = "52-54-00-aa-00-02"
            profile = "linux"
            chain = "pxelinux"
            """
        let table = try HostTable.decode(text: text, path: "hosts.toml")
        #expect(table.defaultProfile == "selftest")
        #expect(table.unknown == .boot)
        #expect(table.hosts.map(\.mac) == ["52:54:00:aa:00:01", "52:54:00:aa:00:02"])
        #expect(table.host(mac: "52:54:00:aa:00:01")?.name == "pc1")
        #expect(table.host(mac: "52-54-00-AA-00-02")?.chain == "pxelinux")
        #expect(table.host(mac: "52:54:00:aa:00:02")?.name == "52:54:00:aa:00:02")
        #expect(table.host(mac: "52:54:00:aa:00:03") == nil)
        #expect(table.hosts[0].location.line == 5)
    }

    @Test(arguments: [
        ("[[host]]\nmac = \"52:54:00:12:34\"\nprofile = \"a\"\n", "hosts.toml:2:1: 'host.0.mac': '52:54:00:12:34' is not a MAC address"),
        ("[[host]]\nmac = \"52:54:00:12:34:56\"\n", "hosts.toml:1:1: 'host.0': has no 'profile'"),
        ("[[host]]\nprofile = \"a\"\n", "hosts.toml:1:1: 'host.0': has no 'mac'"),
        ("unknown = \"maybe\"\n", "hosts.toml:1:1: 'unknown'"),
        ("[[host]]\nmac = \"52:54:00:12:34:56\"\nprofile = \"a\"\nchain = \"lilo\"\n", "hosts.toml:4:1: 'host.0.chain': 'lilo' is not a boot chain"),
        ("[[host]]\nmac = \"52:54:00:12:34:56\"\nprofile = \"a\"\nram = 4\n", "hosts.toml:4:1: unknown key 'host.0.ram'"),
        ("[[host]]\nmac = \"52:54:00:12:34:56\"\nprofile = \"a\"\n[[host]]\nmac = \"52:54:00:12:34:56\"\nprofile = \"b\"\n",
         "hosts.toml:4:1: 'host.1.mac': 52:54:00:12:34:56 is listed twice (also at line 1)"),
        ("[[host]\n", "hosts.toml:1:"),
    ])
    func errorsNameFileAndLine(text: String, expected: String) {
        do {
            _ = try HostTable.decode(text: text, path: "hosts.toml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }
}
