import DropsModel
import DropsTestSupport
import Foundation

/// The same selftest tree booted by drops-run on each kind of target, timed from drops-run's
/// start to its verdict (its exit): a QEMU guest on QEMU's user network, a QEMU guest on a
/// private lab network, and a lab PC (a QEMU guest behind OpenIPMI's ipmi_sim as its BMC, in
/// a namespace lab with dnsmasq as the site's DHCP server) whose console comes through
/// ser2net or through the BMC's Serial-over-LAN. Needs root; each run is checked (exit 0,
/// every module verified), and a failed run is reported as such, never as a time.
func labBootBench(tree: String, runs: Int, work: String) {
    guard geteuid() == 0, SimulatedLabPC.available else {
        say("lab: skipped (needs root, iproute2, dnsmasq-base, openipmi, ipmitool and ser2net: make deps, as root)")
        return
    }
    guard let data = FileManager.default.contents(atPath: tree + "/" + Manifest.fileName), let manifest = try? Manifest.decode(data) else {
        say("lab: skipped, no readable \(tree)/manifest.json")
        return
    }
    let tool = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drops-run").path
    let treePath = URL(fileURLWithPath: tree).standardizedFileURL.path
    let holds = work + "/holds"
    try? FileManager.default.createDirectory(atPath: holds, withIntermediateDirectories: true)

    /// Seconds from start to exit of one drops-run, or nil when the run failed.
    func timed(_ command: [String]) -> Double? {
        let output = work + "/lab-run.json"
        let start = Date()
        guard let process = try? ChildProcess(command, output: output, errors: work + "/lab-run.err",
                                              environment: ["DROPS_KVM": "off", "DROPS_HOLDS_DIR": holds]) else { return nil }
        let status = process.wait()
        let seconds = Date().timeIntervalSince(start)
        guard status == 0, let data = FileManager.default.contents(atPath: output),
              let summary = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let modules = summary["modules"] as? [[String: Any]], !modules.isEmpty,
              modules.allSatisfy({ $0["ok"] as? Bool == true }) else { return nil }
        return seconds
    }

    /// `prepare` gives the command, and the lab it needs kept alive while it runs.
    func row(_ name: String, _ prepare: () throws -> (arguments: [String], lab: AnyObject?)) {
        var times: [Double] = []
        var failed = 0
        for _ in 0..<runs {
            guard let (arguments, lab) = try? prepare(), let seconds = withExtendedLifetime(lab, { timed(arguments) }) else { failed += 1; continue }
            times.append(seconds)
        }
        let cell = failed == 0 ? String(format: "%.1f s", median(times)!) : "FAILED (\(failed) of \(runs) runs)"
        say("| \(name) | \(cell) |")
    }

    say("")
    say("Booting \(tree) (ipxe chain, TCG) on each target, seconds from drops-run's start to its verdict, every module verified (median of \(runs)):")
    say("")
    say("| target | drops-run to verdict |")
    say("|---|---|")
    row("QEMU guest, QEMU's user network") { ([tool, treePath, "--json", "-q"], nil) }
    row("QEMU guest, --network private (drops-serve pxe, full DHCP)") { ([tool, treePath, "--network", "private", "--json", "-q"], nil) }
    for serialOverLAN in [false, true] {
        // A fresh lab for each run, as each test makes its own.
        row(serialOverLAN ? "lab PC (--host): IPMI power, Serial-over-LAN console" : "lab PC (--host): IPMI power, ser2net console") {
            let lab = try SimulatedLabPC(manifest: manifest, serialOverLAN: serialOverLAN)
            return (["/usr/sbin/ip", "netns", "exec", lab.lab.lab, tool, treePath, "--host", "lab-pc1", "--hosts", lab.hostsFile,
                     "--interface", "br0", "--json", "-q"], lab)
        }
    }
}
