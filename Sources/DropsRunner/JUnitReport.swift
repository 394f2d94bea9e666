import DropsQEMU
import Foundation

/// `--junit FILE`: the run as JUnit XML, the format CI systems (Jenkins, GitLab, GitHub
/// Actions reporters) read. One test case per pattern and per probe module, plus one for the
/// boot itself; a test failure is a <failure>, an infrastructure failure an <error>, so the
/// two never look alike.
struct JUnitReport {
    let report: RunReport
    let check: ProbeCheck?
    let verdict: RunReport.Verdict

    struct Case {
        var name: String
        var seconds: Double
        var failure: (type: String, message: String)?
        var error: (type: String, message: String)?
    }

    var cases: [Case] {
        var cases: [Case] = []
        let times = report.outcome.matchTimes
        for (index, pattern) in report.patterns.enumerated() {
            if index < times.count {
                let since = index == 0 ? 0 : times[index - 1]
                cases.append(Case(name: "pattern \(index + 1): \(pattern.description)", seconds: max(0, times[index] - since)))
            } else {
                cases.append(Case(name: "pattern \(index + 1): \(pattern.description)", seconds: 0,
                                  failure: ("not-seen", "not seen: \(verdict.message)")))
            }
        }
        for row in check?.rows ?? [] {
            cases.append(Case(name: "module \(row.index) \(row.name)", seconds: 0,
                              failure: row.ok ? nil : ("mismatch", row.problems.joined(separator: ", "))))
        }
        var boot = Case(name: "boot", seconds: report.outcome.seconds)
        if let failure = report.session.infrastructureFailure {
            boot.error = ("infrastructure.\(failure.kind.rawValue)", failure.message)
        } else if verdict.code != 0 {
            boot.failure = ("exit-\(verdict.code)", verdict.message)
        }
        cases.append(boot)
        return cases
    }

    var xml: String {
        let cases = cases
        let failures = cases.filter { $0.failure != nil }.count
        let errors = cases.filter { $0.error != nil }.count
        let time = String(format: "%.3f", report.outcome.seconds)
        let suite = "\(report.manifest.profile.name) on \(report.options.host ?? "QEMU") (\(report.session.chain.rawValue))"
        var lines = [#"<?xml version="1.0" encoding="UTF-8"?>"#,
                     #"<testsuites name="drops-run" tests="\#(cases.count)" failures="\#(failures)" errors="\#(errors)" time="\#(time)">"#,
                     #"  <testsuite name="\#(Self.escape(suite))" tests="\#(cases.count)" failures="\#(failures)" errors="\#(errors)" skipped="0" time="\#(time)" timestamp="\#(Self.timestamp())">"#,
                     "    <properties>",
                     #"      <property name="profile" value="\#(Self.escape(report.manifest.profile.name))"/>"#,
                     #"      <property name="chain" value="\#(report.session.chain.rawValue)"/>"#,
                     #"      <property name="exitCode" value="\#(verdict.code)"/>"#,
                     "    </properties>"]
        for item in cases {
            let head = #"    <testcase classname="drops.\#(Self.escape(report.manifest.profile.name))" name="\#(Self.escape(item.name))" time="\#(String(format: "%.3f", item.seconds))""#
            if let failure = item.failure {
                lines.append(head + ">")
                lines.append(#"      <failure type="\#(failure.type)" message="\#(Self.escape(failure.message))"/>"#)
                lines.append("    </testcase>")
            } else if let error = item.error {
                lines.append(head + ">")
                lines.append(#"      <error type="\#(error.type)" message="\#(Self.escape(error.message))"/>"#)
                lines.append("    </testcase>")
            } else {
                lines.append(head + "/>")
            }
        }
        lines.append("    <system-out>\(Self.escape(report.outcome.transcript))</system-out>")
        lines.append("  </testsuite>")
        lines.append("</testsuites>")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Text as XML character data: the five specials escaped, and the control characters a
    /// serial console carries (escape sequences, NUL) dropped, since XML 1.0 cannot hold them.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || (0xD800...0xDFFF).contains(scalar.value) || scalar.value == 0xFFFE || scalar.value == 0xFFFF { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return String(formatter.string(from: Date()).dropLast())
    }
}
