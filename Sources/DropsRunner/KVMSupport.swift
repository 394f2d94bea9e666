import DropsModel
import DropsProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// When to use KVM (`--kvm`): `auto` tries it and falls back to TCG when it fails.
public enum KVMMode: String, Sendable, CaseIterable {
    case auto, on, off
}

/// Decides whether a run under KVM failed because of KVM, and remembers machines where it
/// did, so `auto` does not pay for the failed attempt every time.
public enum KVMSupport {
    /// True when /dev/kvm can be opened for reading and writing.
    public static func deviceUsable(path: String = "/dev/kvm") -> Bool {
        let descriptor = open(path, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        close(descriptor)
        return true
    }

    /// Why a run under KVM should be tried again under TCG, or nil when its result stands.
    /// Only a run that ended before the guest wrote anything to its console counts: once the
    /// guest spoke, its failure is the guest's, and a fallback would hide it.
    public static func retryReason(_ outcome: BootOutcome) -> String? {
        guard !outcome.guestSpoke else { return nil }
        let said = outcome.diagnostics.split(whereSeparator: \.isNewline).last { $0.lowercased().contains("kvm") }
        switch outcome.ending {
        case let .exited(status) where status != 0:
            return "QEMU failed under KVM (status \(status)\(said.map { ": \($0)" } ?? ""))"
        case .exited:
            return "the guest reset under KVM before it wrote anything"
        case .rebooted:
            return "the guest rebooted under KVM before it wrote anything"
        case let .stopped(reason) where reason.hasPrefix(rebootReasonPrefix):
            return "the firmware started over under KVM"
        default:
            return nil
        }
    }

    /// How `drops-run` words a stop because the firmware fetched its boot file again.
    public static let rebootReasonPrefix = "the firmware fetched"

    /// The file that remembers where KVM failed: `$XDG_CACHE_HOME/drops/kvm-failures`
    /// (`~/.cache/…` without it). One line per QEMU binary, kernel release and chain.
    public static func memoryFile(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let cache = environment["XDG_CACHE_HOME"], !cache.isEmpty { return cache + "/drops/kvm-failures" }
        return (environment["HOME"] ?? NSTemporaryDirectory()) + "/.cache/drops/kvm-failures"
    }

    /// What a remembered failure is tied to: a new QEMU or kernel tries KVM again.
    public static func memoryKey(executable: String, chain: String) -> String {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let path = Programs.find(executable) ?? executable
        let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(path)@\(Int(modified)) kernel=\(release) chain=\(chain)"
    }

    public static func failedBefore(key: String, file: String = memoryFile()) -> Bool {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { $0.hasPrefix(key + " ") || $0 == key }
    }

    /// Records a failure; a cache that cannot be written only costs the next run a retry.
    public static func rememberFailure(key: String, reason: String, file: String = memoryFile()) {
        try? FileManager.default.createDirectory(atPath: parentDirectory(of: file), withIntermediateDirectories: true)
        let line = key + " # " + reason.replacingOccurrences(of: "\n", with: " ") + "\n"
        let old = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        try? (old + line).write(toFile: file, atomically: true, encoding: .utf8)
    }
}
