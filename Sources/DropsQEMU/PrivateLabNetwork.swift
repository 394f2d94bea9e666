import DropsProcess
import Foundation

/// A lab network made for one run and removed after it: a network namespace holding a
/// bridge (the lab LAN, with the server's address) and a tap device on it for the guest.
/// Inside it the firmware, the boot loader and a run-time client reach a server on port 69
/// of the bridge exactly as on a real lab network. Needs root; touches nothing outside
/// the namespace, and deleting the namespace removes the bridge and the tap with it.
public final class PrivateLabNetwork: Sendable {
    /// Every run's namespace is named this plus the process ID, so a later run can tell a
    /// leftover (its process is gone, after SIGKILL) from a namespace in use.
    public static let namePrefix = "drops-run-"
    public static let bridge = "br0"
    public static let tap = "tap0"
    public static let serverAddress = "10.0.77.1"
    public static let prefixLength = 24
    /// The addresses drops-serve pxe hands out on the private network.
    public static let dhcpRange = "10.0.77.100-10.0.77.199"

    public let namespace: String

    /// Makes the namespace, the bridge with the server's address and the tap device.
    public init(processID: Int32 = getpid()) throws(QEMUError) {
        namespace = Self.namePrefix + String(processID)
        if Self.existingNamespaces().contains(namespace) { try? Self.ip(["netns", "delete", namespace]) }
        do {
            try Self.ip(["netns", "add", namespace])
            try Self.ip(["-n", namespace, "link", "set", "lo", "up"])
            try Self.ip(["-n", namespace, "link", "add", Self.bridge, "type", "bridge"])
            try Self.ip(["-n", namespace, "addr", "add", "\(Self.serverAddress)/\(Self.prefixLength)", "dev", Self.bridge])
            try Self.ip(["-n", namespace, "link", "set", Self.bridge, "up"])
            try Self.ip(["-n", namespace, "tuntap", "add", Self.tap, "mode", "tap"])
            try Self.ip(["-n", namespace, "link", "set", Self.tap, "master", Self.bridge, "up"])
        } catch {
            try? Self.ip(["netns", "delete", namespace])
            throw error
        }
    }

    /// Removes the namespace (and with it the bridge and the tap).
    public func remove() {
        try? Self.ip(["netns", "delete", namespace])
    }

    /// The words that run a program inside the namespace.
    public var launchPrefix: [String] { [Self.ipExecutable ?? "ip", "netns", "exec", namespace] }

    /// Deletes namespaces of earlier runs whose process no longer exists (a run killed with
    /// SIGKILL cannot clean up); returns their names.
    @discardableResult
    public static func removeLeftovers() -> [String] {
        var removed: [String] = []
        for name in existingNamespaces() where name.hasPrefix(namePrefix) {
            guard let pid = Int32(name.dropFirst(namePrefix.count)), pid != getpid() else { continue }
            // kill(pid, 0) fails with ESRCH only when no such process exists.
            if kill(pid, 0) != 0 && errno == ESRCH, (try? ip(["netns", "delete", name])) != nil {
                removed.append(name)
            }
        }
        return removed
    }

    /// Why this machine cannot make a private network, or nil when it can.
    public static func unavailableReason() -> String? {
        if geteuid() != 0 {
            return "it makes a network namespace, a bridge and a tap device, which needs root"
        }
        if ipExecutable == nil { return "the ip command (Debian package iproute2) is not installed" }
        if !FileManager.default.fileExists(atPath: "/dev/net/tun") { return "/dev/net/tun is missing (no tap devices on this machine)" }
        return nil
    }

    static var ipExecutable: String? {
        Programs.find("ip")
    }

    static func existingNamespaces() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        return names.sorted()
    }

    /// Runs `ip` with `arguments`; throws with what it said when it fails.
    static func ip(_ arguments: [String]) throws(QEMUError) {
        guard let executable = ipExecutable else { throw .notInstalled("ip") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch { throw .launchFailed("ip", reason: error.localizedDescription) }
        let said = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: said, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw .launchFailed("ip " + arguments.joined(separator: " "), reason: text.isEmpty ? "exit status \(process.terminationStatus)" : text)
        }
    }
}
