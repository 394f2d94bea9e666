import Foundation

/// Finding the programs drops starts (QEMU, ipmitool, drops-serve, power hooks) and
/// stopping them: one place, so every caller looks in the same folders and ends a child
/// the same way.
public enum Programs {
    /// Where programs are looked for after PATH: a service's PATH often lacks the sbin
    /// folders, where ip, dnsmasq and ipmi tools live.
    public static let systemFolders = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// The path of `name` on PATH, then in the system folders; a name with a `/` is taken
    /// as it is when it is executable. nil when there is none.
    public static func find(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for folder in path + systemFolders where !folder.isEmpty {
            let candidate = folder + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// A program of ours (drops-serve, drops-build) beside the running executable, so a
    /// build tree's tools use each other; else from PATH.
    public static func sibling(_ name: String) -> String? {
        let own = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent(name).path
        return FileManager.default.isExecutableFile(atPath: own) ? own : find(name)
    }

    /// Ends `process`: SIGTERM, up to `grace` seconds to go, then SIGKILL (a child that
    /// inherited SIGTERM blocked never ends otherwise); waits until it is gone.
    public static func stop(_ process: Process, grace: Double) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
