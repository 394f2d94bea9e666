import DropsModel
import DropsQEMU
import DropsTFTP
import Foundation

/// Turns a finished run into the result a person, a script (`--json`) or a CI system
/// (`--tap`) reads, and into the exit status.
struct RunReport {
    let options: RunOptions
    let manifest: Manifest
    let outcome: BootOutcome
    let patterns: [ExpectedPattern]
    let session: any BootServing
    let timeout: Double?

    struct Verdict {
        var code: Int32
        var message: String
        /// Serial lines worth showing with a failure.
        var showTail = false
    }

    /// The probe's report and its check against the manifest, when a probe booted.
    func probeCheck() -> (report: ProbeReport, check: ProbeCheck)? {
        let probe = ProbeReport.parse(outcome.transcript)
        guard probe.started else { return nil }
        return (probe, ProbeCheck(manifest: manifest, report: probe, form: session.chain == .qemu || session.chain == .grub ? .name : .path))
    }

    func verdict(_ probe: (report: ProbeReport, check: ProbeCheck)?) -> Verdict {
        let check = probe?.check
        let matched = outcome.matchTimes.count
        let seconds = String(format: "%.1f", outcome.seconds)
        let waitingFor = matched < patterns.count ? "pattern \(matched + 1) of \(patterns.count), \(patterns[matched].description)" : "QEMU to end"
        // A failure line decides the run, whatever came after it before QEMU was stopped.
        func failed(_ verdict: String, _ pattern: String, _ line: String) -> Verdict {
            Verdict(code: RunExit.failed, message: "\(verdict): the console showed \"\(line)\" (failure pattern \(pattern)) while waiting for \(waitingFor)", showTail: true)
        }
        if case let .failed(verdict, pattern, line) = outcome.ending { return failed(verdict, pattern, line) }
        // The lab failed, not the system: said as such, with its own exit status.
        if let failure = session.infrastructureFailure {
            return Verdict(code: failure.exitCode, message: "infrastructure failure (\(failure.kind.rawValue)): \(failure.message)", showTail: outcome.guestSpoke)
        }
        // After a reboot the console holds two boots' probe lines: the reboot is the verdict,
        // not the mix of both reports.
        let rebooted = if case .rebooted = outcome.ending { true } else { false }
        if !rebooted, let check, check.ok, matched == patterns.count {
            let end = outcome.matchTimes.last.map { String(format: "%.1f", $0) } ?? seconds
            return Verdict(code: 0, message: "verified \(check.rows.count) modules against \(Manifest.fileName); the probe ended \(end) s after QEMU started")
        }
        if !rebooted, let probe, let check, !check.ok, probe.report.isComplete || outcome.ending == .finished {
            let problems = check.problems + check.rows.filter { !$0.ok }.map { "module \($0.index) \($0.name): \($0.problems.joined(separator: ", "))" }
            return Verdict(code: RunExit.mismatch, message: "the booted modules do not match \(Manifest.fileName): " + problems.joined(separator: "; "))
        }
        switch outcome.ending {
        case .finished:
            return Verdict(code: 0, message: "all \(patterns.count) patterns seen in \(seconds) s")
        case .timedOut:
            return Verdict(code: RunExit.timeout, message: "timed out after \(Int(timeout ?? 0)) s waiting for \(waitingFor)" + seenTooEarly(matched), showTail: true)
        case let .patternTimedOut(index):
            let budget = patterns[index].budget
            return Verdict(code: RunExit.timeout, message: "\(patterns[index].description) (pattern \(index + 1) of \(patterns.count)) did not come within its \(Int(budget)) s" + seenTooEarly(index), showTail: true)
        case let .rebooted(line):
            return Verdict(code: RunExit.rebooted, message: "the guest rebooted: its first pattern came again (\"\(line)\") while waiting for \(waitingFor)", showTail: true)
        case let .failed(verdict, pattern, line):
            return failed(verdict, pattern, line)
        case let .stopped(reason):
            let code = reason.hasPrefix(KVMSupport.rebootReasonPrefix) ? RunExit.rebooted : RunExit.mismatch
            return Verdict(code: code, message: reason, showTail: code == RunExit.rebooted)
        case let .exited(status):
            if patterns.isEmpty && (status == 0 || status % 2 == 1) {
                return Verdict(code: 0, message: "QEMU ended with status \(status) after \(seconds) s")
            }
            if status == 0 {
                return Verdict(code: RunExit.rebooted, message: "the guest reset or powered off (QEMU runs with -no-reboot) while waiting for \(waitingFor)", showTail: true)
            }
            let said = outcome.diagnostics.trimmingCharacters(in: .whitespacesAndNewlines)
            return Verdict(code: RunExit.qemuEnded, message: "QEMU ended with status \(status) while waiting for \(waitingFor)"
                           + (said.isEmpty ? "" : "; QEMU said: \(said)") + seenTooEarly(matched), showTail: true)
        }
    }

    /// Patterns match in order: when pattern `index` was on the console before the one ahead
    /// of it matched, say so, since waiting longer cannot help.
    func seenTooEarly(_ index: Int) -> String {
        guard index < patterns.count, let watcher = try? SerialWatcher(patterns: [patterns[index]]) else { return "" }
        // One entry per line the watcher saw, empty ones too, so the times line up.
        let lines = outcome.transcript.split(separator: "\n", omittingEmptySubsequences: false)
        for (number, line) in lines.enumerated() {
            _ = watcher.feed(Array((line + "\n").utf8), at: 0)
            guard watcher.isComplete else { continue }
            let before = index == 0 ? "" : ", before pattern \(index) (\(patterns[index - 1].description)) matched"
            let when = number < outcome.lineTimes.count ? String(format: " at %.1f s", outcome.lineTimes[number]) : ""
            return "; it was on the console already (serial line \(number + 1)\(when)\(before)): patterns are matched in order, "
                + "so drop or reorder the --expect patterns, or pass --no-milestones to match only yours"
        }
        return ""
    }

    /// The report in the form asked for, the JUnit file written, and the exit status.
    func result() throws -> RunResult {
        let probe = probeCheck()
        let check = probe?.check
        let verdict = verdict(probe)
        if let path = options.junit {
            let text = JUnitReport(report: self, check: check, verdict: verdict).xml
            do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
                throw RunFailure("cannot write the JUnit report \(path): \(error.localizedDescription); check that its folder exists and is writable")
            }
        }
        var output: [String] = []
        if options.tap {
            output.append(tap(check: check, verdict: verdict))
        } else if options.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            output.append(String(decoding: try encoder.encode(RunSummary(report: self, check: check, verdict: verdict)), as: UTF8.self))
        } else if let check {
            output.append(check.table())
        }
        if verdict.code == 0 {
            if !options.tap && !options.json { output.append(verdict.message) }
            return RunResult(output: output.isEmpty ? nil : output.joined(separator: "\n"), exitCode: 0)
        }
        var message = verdict.message
        if verdict.showTail {
            let tail = outcome.transcript.split(whereSeparator: \.isNewline).suffix(40)
            message += tail.isEmpty ? "; the guest wrote nothing to its serial console" : "; last serial lines:\n" + tail.joined(separator: "\n")
        }
        return RunResult(output: output.isEmpty ? nil : output.joined(separator: "\n"), exitCode: verdict.code, failure: message)
    }

    /// TAP version 13: one test per pattern, then one per probe module.
    func tap(check: ProbeCheck?, verdict: Verdict) -> String {
        var lines = ["TAP version 13"]
        var number = 0
        for (index, pattern) in patterns.enumerated() {
            number += 1
            if index < outcome.matchTimes.count {
                lines.append("ok \(number) - \(pattern.description) at \(String(format: "%.1f", outcome.matchTimes[index])) s")
            } else {
                lines.append("not ok \(number) - \(pattern.description) not seen")
            }
        }
        for row in check?.rows ?? [] {
            number += 1
            lines.append("\(row.ok ? "ok" : "not ok") \(number) - module \(row.index) \(row.name)" + (row.ok ? "" : ": " + row.problems.joined(separator: ", ")))
        }
        if number == 0 {
            number = 1
            lines.append("\(verdict.code == 0 ? "ok" : "not ok") 1 - boot")
        }
        lines.append("1..\(number)")
        lines += verdict.message.split(separator: "\n").map { "# " + $0 }
        return lines.joined(separator: "\n")
    }
}

/// `--json`: the run as one object.
struct RunSummary: Encodable {
    struct Pattern: Encodable {
        var pattern: String
        var kind: String
        var seconds: Double?
    }
    struct Row: Encodable {
        var index: Int
        var name: String
        var ok: Bool
        var size: Int
        var sha256: String
        var cmdline: String
        var problems: [String]
    }
    struct Served: Encodable {
        var file: String
        var bytes: Int
        var seconds: Double
        var outcome: String
        /// tftp or http.
        var via: String
    }
    var ok: Bool
    var exitCode: Int32
    var message: String
    var profile: String
    var chain: String
    var tftp: String
    var seconds: Double
    var patterns: [Pattern]
    var modules: [Row]
    var problems: [String]
    var configuration: Configuration?
    var served: [Served]
    var network: String
    var runtimeFiles: [RuntimeFile]
    /// The lab PC booted (--host), and the kind of infrastructure failure that decided the run.
    var host: String?
    var infrastructure: String?
    /// bios or uefi: the guest's, or what the hosts file says of the lab PC (absent when it says nothing).
    var firmware: String?

    /// A file the booted system fetches itself: whether this run could deliver it, and
    /// whether our server did.
    struct RuntimeFile: Encodable {
        var path: String
        var deliverable: Bool
        var reason: String
        var fetched: Bool
    }

    struct Configuration: Encodable {
        var source: String
        var seen: String
        var expected: String
        var ok: Bool
    }

    init(report: RunReport, check: ProbeCheck?, verdict: RunReport.Verdict) {
        ok = verdict.code == 0
        exitCode = verdict.code
        message = verdict.message
        profile = report.manifest.profile.name
        chain = report.session.chain.rawValue
        tftp = report.session.chain == .qemu ? "none" : report.options.tftp.rawValue
        host = report.options.host
        infrastructure = report.session.infrastructureFailure?.kind.rawValue
        firmware = report.session.firmware
        seconds = report.outcome.seconds
        patterns = report.patterns.enumerated().map { index, pattern in
            Pattern(pattern: pattern.source, kind: pattern.kind == .text ? "text" : "regex",
                    seconds: index < report.outcome.matchTimes.count ? report.outcome.matchTimes[index] : nil)
        }
        modules = (check?.rows ?? []).map {
            Row(index: $0.index, name: $0.name, ok: $0.ok, size: $0.reported?.size ?? -1,
                sha256: $0.reported?.sha256 ?? "", cmdline: $0.reported?.cmdline ?? "", problems: $0.problems)
        }
        problems = check?.problems ?? []
        configuration = check?.configuration.map { Configuration(source: $0.source, seen: $0.seen, expected: $0.expected, ok: $0.ok) }
        served = report.session.served.map { Served(file: $0.file, bytes: $0.bytes, seconds: $0.seconds, outcome: $0.outcome, via: $0.direction == "http" ? "http" : "tftp") }
        network = report.options.network.rawValue
        let delivery = RuntimeDelivery.assess(report.manifest, network: report.options.runtimeNetwork(port: report.session.port))
        let fetched = Set(report.session.served.filter { $0.outcome == "ok" }.map { report.session.normalized($0.file) })
        runtimeFiles = report.manifest.runtimeFiles.map {
            RuntimeFile(path: $0.path, deliverable: delivery?.deliverable ?? false, reason: delivery?.reason ?? "", fetched: fetched.contains($0.path))
        }
    }
}
