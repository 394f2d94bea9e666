import DropsTestSupport
import Foundation
import Testing

/// `drops-serve pxe` refuses bad input before it serves anything: one line that names the
/// input, exit status 1. These need neither root nor a lab network (they fail before binding).
@Suite struct PXECommandTests {
    func refusal(_ arguments: [String], files: [String: String] = [:]) throws -> (status: Int32, errors: String) {
        let serve = try #require(CommandLineTests.executable("drops-serve"), "build the tools first (make build)")
        let work = TemporaryDirectory("drops-pxe-cmd")
        let build = try #require(CommandLineTests.executable("drops-build"))
        let built = try ChildProcess([build, "profile", "selftest", "--out", work.path + "/out"], environment: ["DROPS_PROFILES_DIR": Repository.profiles])
        try #require(built.wait() == 0, "drops-build profile selftest failed (make probe)")
        for (name, text) in files { work.write(name, text: text) }
        let errors = work.path + "/errors"
        let child = try ChildProcess([serve, "pxe", "--root", work.path + "/out"] + arguments.map { $0.replacingOccurrences(of: "WORK", with: work.path) },
                                     errors: errors)
        return (child.wait(), (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")
    }

    @Test func unknownInterfaceIsNamed() throws {
        let (status, errors) = try refusal(["--interface", "nosuch0", "--default-profile", "selftest"])
        #expect(status == 1)
        #expect(errors.hasPrefix("drops-serve: error: no network interface 'nosuch0' on this machine (it has: lo"), "\(errors)")
    }

    @Test func hostsFileErrorsCarryFileAndLine() throws {
        let (status, errors) = try refusal(["--interface", "lo", "--hosts", "WORK/hosts.toml"], files: ["hosts.toml": """
            default_profile = "selftest"
            [[host]]
            mac = "52:54:00:zz:00:01"
            profile = "selftest"
            """])
        #expect(status == 1)
        #expect(errors.contains("hosts.toml:3:1: 'host.0.mac': '52:54:00:zz:00:01' is not a MAC address"), "\(errors)")
    }

    @Test func profileWithoutImageIsNamedWithWhatExists() throws {
        let (status, errors) = try refusal(["--interface", "lo", "--hosts", "WORK/hosts.toml"], files: ["hosts.toml": """
            default_profile = "selftest"

            [[host]]
            mac = "52:54:00:77:00:01"
            name = "pc9"
            profile = "l4env"
            """])
        #expect(status == 1)
        #expect(errors.contains("hosts.toml:3:1: host pc9: profile 'l4env' has no image in"), "\(errors)")
        #expect(errors.contains("(built there: selftest); build it with drops-build profile l4env"), "\(errors)")
    }

    @Test func defaultProfileMustExistAndRangeMustFit() throws {
        let missing = try refusal(["--interface", "lo", "--default-profile", "x2"])
        #expect(missing.status == 1 && missing.errors.contains("--default-profile: profile 'x2' has no image"), "\(missing.errors)")
        let range = try refusal(["--interface", "lo", "--default-profile", "selftest", "--dhcp-range", "10.9.0.10-10.9.0.20"])
        #expect(range.status == 1 && range.errors.contains("--dhcp-range 10.9.0.10-10.9.0.20 is not inside lo's network 127.0.0.0/255.0.0.0"),
                "\(range.errors)")
        let bad = try refusal(["--interface", "lo", "--default-profile", "selftest", "--dhcp-range", "10.9.0.20"])
        #expect(bad.status == 1 && bad.errors.contains("--dhcp-range '10.9.0.20' is not FIRST-LAST"), "\(bad.errors)")
    }
}
