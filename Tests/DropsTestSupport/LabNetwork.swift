import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small lab built for one test and torn down after it: a network namespace with a
/// bridge (the lab LAN, 10.77.0.2 for drops-serve), a second namespace for the site's DHCP
/// server (dnsmasq on 10.77.0.1, addresses only, no boot options) joined to the bridge by a
/// veth pair, and tap devices on the bridge for QEMU guests. Nothing outside the two
/// namespaces is touched.
public final class LabNetwork {
    public static let serverAddress = "10.77.0.2"
    public static var available: Bool {
        geteuid() == 0 && ["/usr/sbin/ip", "/bin/ip", "/sbin/ip"].contains { FileManager.default.isExecutableFile(atPath: $0) }
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq")
    }
    private static let counter = LabCounter()

    public let lab: String
    public let site: String
    public let work: TemporaryDirectory
    private var children: [ChildProcess] = []
    public private(set) var taps: [String] = []

    /// `siteOptions` go to the site's dnsmasq as they are (`--dhcp-boot=…` naming a boot server).
    public init(taps count: Int, siteDHCP: Bool = true, siteOptions: [String] = []) throws {
        let id = "\(getpid() % 100_000)-\(Self.counter.next())"
        lab = "dlab-\(id)"
        site = "dsite-\(id)"
        work = TemporaryDirectory("drops-lab")
        try run(["ip", "netns", "add", lab])
        try run(["ip", "netns", "add", site])
        try run(["ip", "-n", lab, "link", "set", "lo", "up"])
        try run(["ip", "-n", site, "link", "set", "lo", "up"])
        try run(["ip", "-n", lab, "link", "add", "br0", "type", "bridge"])
        try run(["ip", "-n", lab, "addr", "add", Self.serverAddress + "/24", "dev", "br0"])
        try run(["ip", "-n", lab, "link", "set", "br0", "up"])
        try run(["ip", "-n", lab, "link", "add", "site0", "type", "veth", "peer", "name", "site0-br"])
        try run(["ip", "-n", lab, "link", "set", "site0", "netns", site])
        try run(["ip", "-n", lab, "link", "set", "site0-br", "master", "br0", "up"])
        try run(["ip", "-n", site, "addr", "add", "10.77.0.1/24", "dev", "site0"])
        try run(["ip", "-n", site, "link", "set", "site0", "up"])
        for index in 0..<count {
            let tap = "tap\(index)"
            try run(["ip", "-n", lab, "tuntap", "add", tap, "mode", "tap"])
            try run(["ip", "-n", lab, "link", "set", tap, "master", "br0", "up"])
            taps.append(tap)
        }
        // The site's DHCP server: addresses only, as a campus server would be.
        guard siteDHCP else { return }
        try start(in: site, ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--interface=site0",
                             "--bind-interfaces", "--dhcp-range=10.77.0.100,10.77.0.199,1h", "--dhcp-leasefile=\(work.path)/site.leases",
                             "--log-dhcp", "--log-facility=-", "--pid-file=\(work.path)/site.pid", "--user=root"] + siteOptions, log: "site-dhcp")
    }

    deinit {
        for child in children.reversed() where child.isRunning {
            child.stop()
            child.wait()
        }
        _ = try? run(["ip", "netns", "delete", lab])
        _ = try? run(["ip", "netns", "delete", site])
    }

    /// Runs a command to the end; throws with its output when it fails.
    @discardableResult
    public func run(_ arguments: [String], in namespace: String? = nil) throws -> String {
        let output = work.path + "/cmd.out"
        let command = (namespace.map { ["/usr/sbin/ip", "netns", "exec", $0] } ?? []) + [Self.resolve(arguments[0])] + arguments.dropFirst()
        let child = try ChildProcess(command, output: output, errors: output)
        let status = child.wait()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw NSError(domain: "LabNetwork", code: Int(status), userInfo: [NSLocalizedDescriptionKey: "\(command.joined(separator: " ")): \(text)"])
        }
        return text
    }

    /// Starts a long-running process in a namespace; its output goes to `log`.out in the work folder.
    @discardableResult
    public func start(in namespace: String, _ arguments: [String], log: String, environment: [String: String] = [:]) throws -> ChildProcess {
        let child = try ChildProcess(["/usr/sbin/ip", "netns", "exec", namespace, Self.resolve(arguments[0])] + arguments.dropFirst(),
                                     output: logPath(log), errors: logPath(log), environment: environment)
        children.append(child)
        return child
    }

    public func logPath(_ name: String) -> String { work.path + "/\(name).out" }

    public func log(_ name: String) -> String { (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? "" }

    /// Waits until a process in the lab namespace listens on UDP `port`.
    public func waitForUDPPort(_ port: Int, seconds: Double = 20) -> Bool {
        poll(seconds: seconds) { (try? run(["ss", "-H", "-l", "-u", "-n", "sport = :\(port)"], in: lab))?.isEmpty == false }
    }

    /// Waits until `text` shows up in a log, or the time is over.
    public func waitFor(_ text: String, in name: String, seconds: Double = 20) -> Bool {
        poll(seconds: seconds) { log(name).contains(text) }
    }

    /// Checks `condition` every 100 ms until it holds (true) or `seconds` have passed (false).
    private func poll(seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            usleep(100_000)
        }
        return false
    }

    /// A program by name in the system folders (tests and the bench run as root, whose PATH may lack sbin).
    public static func resolve(_ program: String) -> String {
        if program.hasPrefix("/") { return program }
        for folder in ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"] where FileManager.default.isExecutableFile(atPath: folder + program) {
            return folder + program
        }
        return program
    }
}

/// Numbers lab networks within one test process.
final class LabCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
