import DropsTestSupport
import Foundation
import Testing

/// --junit and --tap as CI systems read them: the JUnit XML valid against a schema of the
/// elements Jenkins and GitLab take, the TAP accepted by Perl's prove.
@Suite(.serialized) struct ReportFormatTests {
    /// The JUnit elements and attributes CI systems read, as a schema of our own.
    static let schema = """
        <?xml version="1.0" encoding="UTF-8"?>
        <xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
          <xs:complexType name="problem">
            <xs:attribute name="type" type="xs:string" use="required"/>
            <xs:attribute name="message" type="xs:string" use="required"/>
          </xs:complexType>
          <xs:element name="testsuites">
            <xs:complexType>
              <xs:sequence>
                <xs:element name="testsuite" maxOccurs="unbounded">
                  <xs:complexType>
                    <xs:sequence>
                      <xs:element name="properties" minOccurs="0">
                        <xs:complexType>
                          <xs:sequence>
                            <xs:element name="property" maxOccurs="unbounded">
                              <xs:complexType>
                                <xs:attribute name="name" type="xs:string" use="required"/>
                                <xs:attribute name="value" type="xs:string" use="required"/>
                              </xs:complexType>
                            </xs:element>
                          </xs:sequence>
                        </xs:complexType>
                      </xs:element>
                      <xs:element name="testcase" maxOccurs="unbounded">
                        <xs:complexType>
                          <xs:choice minOccurs="0">
                            <xs:element name="failure" type="problem"/>
                            <xs:element name="error" type="problem"/>
                          </xs:choice>
                          <xs:attribute name="classname" type="xs:string" use="required"/>
                          <xs:attribute name="name" type="xs:string" use="required"/>
                          <xs:attribute name="time" type="xs:decimal" use="required"/>
                        </xs:complexType>
                      </xs:element>
                      <xs:element name="system-out" type="xs:string" minOccurs="0"/>
                    </xs:sequence>
                    <xs:attribute name="name" type="xs:string" use="required"/>
                    <xs:attribute name="tests" type="xs:nonNegativeInteger" use="required"/>
                    <xs:attribute name="failures" type="xs:nonNegativeInteger" use="required"/>
                    <xs:attribute name="errors" type="xs:nonNegativeInteger" use="required"/>
                    <xs:attribute name="skipped" type="xs:nonNegativeInteger"/>
                    <xs:attribute name="time" type="xs:decimal" use="required"/>
                    <xs:attribute name="timestamp" type="xs:dateTime"/>
                  </xs:complexType>
                </xs:element>
              </xs:sequence>
              <xs:attribute name="name" type="xs:string"/>
              <xs:attribute name="tests" type="xs:nonNegativeInteger"/>
              <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
              <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
              <xs:attribute name="time" type="xs:decimal"/>
            </xs:complexType>
          </xs:element>
        </xs:schema>
        """

    static var toolsAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/xmllint") && FileManager.default.isExecutableFile(atPath: "/usr/bin/prove")
    }

    func validate(_ junit: String, in work: TemporaryDirectory) throws -> ChildProcess.Result {
        work.write("junit.xsd", text: Self.schema)
        return try ChildProcess.run(["/usr/bin/xmllint", "--noout", "--schema", work.path + "/junit.xsd", junit])
    }

    @Test(.enabled(if: ReportFormatTests.toolsAvailable, "needs libxml2-utils and perl (make deps)"))
    func aPassingRunIsValidJUnitAndTAP() throws {
        let work = TemporaryDirectory("drops-reports")
        let build = try #require(CommandLineTests.executable("drops-build"))
        _ = try ChildProcess.run([build, "profile", "selftest", "--out", work.path + "/out"], environment: ["DROPS_PROFILES_DIR": Repository.profiles])
        let run = try DropsRunTool.run([work.path + "/out/selftest", "--chain", "qemu", "--tap", "--junit", work.path + "/junit.xml"])
        #expect(run.status == 0, "\(run.stderr.suffix(2000))")
        let check = try validate(work.path + "/junit.xml", in: work)
        #expect(check.status == 0, "\(check.stderr)")
        let junit = (try? String(contentsOfFile: work.path + "/junit.xml", encoding: .utf8)) ?? ""
        #expect(junit.contains(#"failures="0" errors="0""#) && junit.contains(#"name="module 14 ramdisk.img""#), "\(junit.prefix(1500))")
        work.write("selftest.tap", text: run.stdout)
        let prove = try ChildProcess.run(["/usr/bin/prove", "--exec", "/bin/cat", work.path + "/selftest.tap"])
        #expect(prove.status == 0 && prove.stdout.contains("Result: PASS"), "\(prove.stdout) \(prove.stderr)")
    }

    /// A failed run: its failure in both formats; prove says FAIL.
    @Test(.enabled(if: ReportFormatTests.toolsAvailable, "needs libxml2-utils and perl (make deps)"))
    func aFailingRunIsAFailureInBoth() throws {
        let work = TemporaryDirectory("drops-reports")
        let build = try #require(CommandLineTests.executable("drops-build"))
        _ = try ChildProcess.run([build, "profile", "selftest", "--out", work.path + "/out"], environment: ["DROPS_PROFILES_DIR": Repository.profiles])
        let run = try DropsRunTool.run([work.path + "/out/selftest", "--chain", "qemu", "--tap", "--junit", work.path + "/junit.xml",
                                        "--fail-on", "DROPS-PROBE boot|<&\"never\">"])
        #expect(run.status != 0)
        let check = try validate(work.path + "/junit.xml", in: work)
        #expect(check.status == 0, "\(check.stderr)")
        let junit = (try? String(contentsOfFile: work.path + "/junit.xml", encoding: .utf8)) ?? ""
        #expect(junit.contains("<failure type=\"exit-"), "\(junit.prefix(2000))")
        work.write("selftest.tap", text: run.stdout)
        let prove = try ChildProcess.run(["/usr/bin/prove", "--exec", "/bin/cat", work.path + "/selftest.tap"])
        #expect(prove.status != 0 && prove.stdout.contains("Result: FAIL"), "\(prove.stdout)")
    }
}

/// drops-run --host refuses a hosts file it cannot use before anything is switched: one error
/// each, naming the file and line, exit status 2.
@Suite struct LabHostsInputTests {
    @Test func badHostsEntriesAreUsageErrors() throws {
        let work = TemporaryDirectory("drops-hosts-input")
        let build = try #require(CommandLineTests.executable("drops-build"))
        _ = try ChildProcess.run([build, "profile", "selftest", "--out", work.path + "/out"], environment: ["DROPS_PROFILES_DIR": Repository.profiles])
        work.write("open.ipmi", text: "secret\n")
        chmod(work.path + "/open.ipmi", 0o644)
        let header = "[[host]]\nmac = \"52:54:00:12:34:56\"\nname = \"pc\"\nprofile = \"selftest\"\n"
        let cases: [(String, [String], String)] = [
            ("unknown.toml", [], "unknown.toml:5:1: unknown key 'host.0.relay'"),
            ("nopower.toml", [], "nopower.toml:5:1: 'host.0.power': has no way to switch the machine on"),
            ("console.toml", [], "console.toml:5:1: 'host.0.console': 'serial0' is not a console"),
            ("readable.toml", [], "can be read by others (mode 644); a password file must be the owner's only: chmod 600"),
            ("fine.toml", ["--host", "pc7"], "fine.toml: no host pc7; the file has pc"),
        ]
        work.write("unknown.toml", text: header + "relay = 3\n")
        work.write("nopower.toml", text: header + "power = {}\n")
        work.write("console.toml", text: header + "console = \"serial0\"\n")
        work.write("readable.toml", text: header + "power = { ipmi = { host = \"127.0.0.1\", user = \"u\", password_file = \"open.ipmi\" } }\nconsole = \"tcp://127.0.0.1:9\"\n")
        work.write("fine.toml", text: header + "console = \"tcp://127.0.0.1:9\"\n")
        for (file, extra, expected) in cases {
            let arguments = [work.path + "/out/selftest", "--hosts", work.path + "/" + file, "--interface", "lo"] + (extra.isEmpty ? ["--host", "pc"] : extra)
            let run = try DropsRunTool.run(arguments)
            #expect(run.status == 2, "\(file): \(run.stderr)")
            #expect(run.stderr.contains(expected), "\(file): \(run.stderr)")
        }
    }
}
