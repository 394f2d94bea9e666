import DropsModel

/// One row of the verified module table.
public struct ProbeCheckRow: Sendable, Equatable {
    public var index: Int
    public var name: String
    public var expected: Manifest.Module
    public var reported: ProbeReport.Module?
    public var problems: [String]
    public var ok: Bool { problems.isEmpty }
}

/// How a boot path writes the first word of each command line.
public enum CommandLineForm: Sendable {
    /// `name args`, as QEMU's loader (run in bin/) and GRUB 2 pass it.
    case name
    /// `PATH args` with the image's path as the first word (PXELINUX's mboot.c32 passes
    /// `bin/NAME args`): the word is compared by its last component.
    case path

    func normalized(_ commandLine: String) -> String {
        guard self == .path else { return commandLine }
        let space = commandLine.firstIndex(of: " ") ?? commandLine.endIndex
        let first = commandLine[..<space]
        let name = first.split(separator: "/").last.map(String.init) ?? String(first)
        return name + commandLine[space...]
    }
}

/// What the root task would parse, worked out from the probe's report the way roottask and
/// RMGR do it: the options on the owner's command line, the module `-configfile` takes
/// (counted from the first module the options take, in their order), that file's text after
/// its header, then the configuration on the command line.
public struct ConfigurationView: Sendable, Equatable {
    /// The owner's name and where its configuration came from, for people.
    public var source: String
    /// The configuration it would parse, blanks collapsed.
    public var seen: String
    /// The configuration the profile wrote.
    public var expected: String
    public var problems: [String]
    public var ok: Bool { problems.isEmpty }

    init(_ configuration: RootTaskConfiguration, report: ProbeReport, form: CommandLineForm) {
        expected = configuration.text
        var problems: [String] = []
        let reported = configuration.ownerModule.map { index in report.modules.first { $0.index == index }?.cmdline } ?? report.cmdline
        let line = form.normalized(reported ?? "")
        let args = line.firstIndex(of: " ").map { String(line[line.index(after: $0)...]) } ?? ""
        let (options, onCommandLine) = RootTaskConfiguration.split(args)
        var parts: [String] = []
        var sources: [String] = []
        if let position = RootTaskConfiguration.moduleTakingOptions(options).firstIndex(of: "-configfile") {
            let index = configuration.firstOptionModule + position
            if let text = report.texts[index] {
                if let inFile = RootTaskConfiguration.configuration(inFile: text, header: configuration.header) {
                    if !inFile.isEmpty { parts.append(inFile) }
                    sources.append("module \(index) (-configfile)")
                } else {
                    problems.append("module \(index), which -configfile takes, does not start with \(configuration.header)")
                }
            } else {
                problems.append("module \(index), which -configfile takes, is not a configuration file (the probe saw no #! text in it)")
            }
        }
        if !onCommandLine.isEmpty {
            parts.append(onCommandLine)
            sources.append("the command line")
        }
        seen = parts.joined(separator: " ")
        let from = sources.isEmpty ? "nowhere" : sources.joined(separator: " and ")
        source = "\(configuration.owner) from \(from)"
        if reported == nil {
            problems.append("the probe did not report \(configuration.owner)'s command line")
        } else if seen != expected {
            var problem = "\(configuration.owner) would parse \"\(seen)\" (from \(from)), the profile says \"\(expected)\""
            if seen == ProbeCheck.grub2Rewritten(expected) {
                problem += ": GRUB 2 put a backslash before each quote; config_delivery = \"auto\" or \"module\" delivers the configuration as a file"
            }
            problems.append(problem)
        }
        self.problems = problems
    }
}

/// Compares what the probe received with what the manifest promised: every module's size,
/// SHA-256 and command line, the first stage's command line, and what the root task would
/// parse as its configuration.
public struct ProbeCheck: Sendable {
    public var rows: [ProbeCheckRow]
    public var problems: [String]
    /// The root task's configuration as the probe's report shows it, when the tree has one.
    public var configuration: ConfigurationView?

    public var ok: Bool { problems.isEmpty && rows.allSatisfy(\.ok) }

    public init(manifest: Manifest, report: ProbeReport, form: CommandLineForm = .name) {
        var problems: [String] = []
        if !report.isComplete {
            problems.append("the probe did not finish its report (no DROPS-PROBE end line)")
        }
        if let error = report.error { problems.append("probe: \(error)") }
        if report.magic != 0x2BAD_B002 {
            problems.append("boot magic is \(report.magic.map { "0x" + String($0, radix: 16) } ?? "missing"), expected 0x2badb002")
        }
        if form.normalized(report.cmdline ?? "") != manifest.firstStage.cmdline {
            problems.append("first stage command line is \"\(report.cmdline ?? "")\", manifest says \"\(manifest.firstStage.cmdline)\"")
        }
        if let count = report.endCount, count != manifest.modules.count {
            problems.append("the probe received \(count) modules, manifest lists \(manifest.modules.count)")
        }
        var rows: [ProbeCheckRow] = []
        for (index, expected) in manifest.modules.enumerated() {
            let reported = report.modules.first { $0.index == index }
            var rowProblems: [String] = []
            if let reported {
                if reported.size != expected.size { rowProblems.append("size \(reported.size) != \(expected.size)") }
                if reported.sha256 != expected.sha256 { rowProblems.append("sha256 differs") }
                if form.normalized(reported.cmdline) != expected.cmdline {
                    if form.normalized(reported.cmdline) == Self.grub2Rewritten(expected.cmdline) {
                        rowProblems.append("cmdline \"\(reported.cmdline)\" != \"\(expected.cmdline)\": GRUB 2 put a backslash before each quote "
                                           + "and backslash (it rewrites command lines as Linux wants them); PXELINUX and iPXE pass them as written")
                    } else {
                        rowProblems.append("cmdline \"\(reported.cmdline)\" != \"\(expected.cmdline)\"")
                    }
                }
            } else {
                rowProblems.append("not reported by the probe")
            }
            rows.append(ProbeCheckRow(index: index, name: expected.name, expected: expected, reported: reported, problems: rowProblems))
        }
        if let expected = manifest.rootTaskConfiguration {
            let view = ConfigurationView(expected, report: report, form: form)
            problems += view.problems.map { "configuration: \($0)" }
            configuration = view
        }
        self.rows = rows
        self.problems = problems
    }

    /// A command line as GRUB 2's multiboot loader passes it on: it splits the line into
    /// words, then joins them again with a backslash before each `\`, `'` and `"`.
    public static func grub2Rewritten(_ cmdline: String) -> String {
        cmdline.split(separator: " ").map { word in
            word.map { "\\'\"".contains($0) ? "\\\($0)" : String($0) }.joined()
        }.joined(separator: " ")
    }

    /// A fixed-width table for people.
    public func table() -> String {
        var lines = [pad("#", 3) + pad("module", 14) + pad("role", 10) + pad("size", 10) + pad("sha256", 18) + "result  command line"]
        for row in rows {
            let result = row.ok ? "ok" : "FAIL"
            lines.append(pad(String(row.index), 3) + pad(row.name, 14) + pad(row.expected.role.rawValue, 10)
                         + pad(String(row.expected.size), 10) + pad(String(row.expected.sha256.prefix(16)), 18)
                         + pad(result, 8) + row.expected.cmdline)
            for problem in row.problems { lines.append("     ! \(problem)") }
        }
        if let configuration, configuration.ok {
            lines.append("configuration: \(configuration.source): \(configuration.seen)  ok")
        }
        for problem in problems { lines.append("! \(problem)") }
        return lines.joined(separator: "\n")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
