import DropsHTTP
import DropsModel
import DropsQEMU
import DropsTFTP
import Foundation
import NIOConcurrencyHelpers

/// What QEMU guests and lab PCs share in how a run reads its server and its console.
enum ServedFiles {
    /// A requested name as a path in the tree: menus ask for `/PROFILE/bin/NAME`, relative
    /// boot files for `PROFILE/boot.ipxe`, the in-process server for `bin/NAME`.
    static func treePath(_ name: String, profile: String) -> String {
        var path = Substring(name)
        while path.hasPrefix("/") { path = path.dropFirst() }
        let prefix = profile + "/"
        if path.hasPrefix(prefix) { path = path.dropFirst(prefix.count) }
        return String(path)
    }

    /// True when the manifest promises `path`: a request for it that fails means the tree
    /// lacks it, and the boot cannot succeed.
    static func isListed(_ path: String, in manifest: Manifest) -> Bool {
        manifest.files.contains { $0.path == path } || manifest.modules.contains { $0.path == path }
    }

    static func size(_ bytes: Int) -> String {
        bytes >= 1 << 20 ? String(format: "%.1f MiB", Double(bytes) / 1_048_576)
            : bytes >= 1024 ? String(format: "%.1f KiB", Double(bytes) / 1024) : "\(bytes) bytes"
    }

    /// The folder a lab server serves the tree from (ROOT, holding the tree as ROOT/PROFILE),
    /// or an error naming `purpose` when the tree's folder is named otherwise.
    static func servedRoot(treeDirectory: String, manifest: Manifest, purpose: String) throws -> String {
        let folder = URL(fileURLWithPath: treeDirectory)
        guard folder.lastPathComponent == manifest.profile.name else {
            throw RunFailure("\(purpose) serves the tree as a lab server does, as ROOT/\(manifest.profile.name)/, but it is in \(treeDirectory); "
                                 + "build it into a folder named \(manifest.profile.name) (drops-build profile \(manifest.profile.name) --out DIR)")
        }
        return folder.deletingLastPathComponent().path
    }
}

/// The files a boot's server delivered, judged as they come, the same for a QEMU guest and
/// a lab PC: a file the manifest lists but the tree lacks ends the run at once, and the
/// chain's first file fetched a second time means the target started over.
final class Deliveries: Sendable {
    let manifest: Manifest
    let progress: Progress
    /// "the guest", or the lab PC's name.
    let subject: String
    /// The chain's first file, relative to the tree.
    let entry: String?
    private let state = NIOLockedValueBox(State())

    struct State {
        var served: [TransferRecord] = []
        var control: RunControl?
        /// The chain's first file has been delivered once in this attempt.
        var entryDelivered = false
    }

    init(manifest: Manifest, progress: Progress, subject: String, entry: String?) {
        self.manifest = manifest
        self.progress = progress
        self.subject = subject
        self.entry = entry
    }

    /// A new attempt begins: what came before is forgotten, `control` ends this one.
    func begin(_ control: RunControl) {
        state.withLockedValue { $0 = State(control: control) }
    }

    var served: [TransferRecord] { state.withLockedValue { $0.served } }

    func normalized(_ name: String) -> String { ServedFiles.treePath(name, profile: manifest.profile.name) }

    /// Called for each transfer the server ended.
    func take(_ record: TransferRecord) {
        let name = normalized(record.file)
        let (first, control, again) = state.withLockedValue { value -> (Bool, RunControl?, Bool) in
            let first = value.served.isEmpty
            let isEntry = record.outcome == "ok" && name == entry
            let again = isEntry && value.entryDelivered
            if isEntry { value.entryDelivered = true }
            value.served.append(record)
            return (first, value.control, again)
        }
        if first { progress.say("the firmware of \(subject) has its DHCP lease and asks our server for \(record.file)") }
        if record.outcome == "ok" {
            progress.served(name, record)
        } else if ServedFiles.isListed(name, in: manifest) {
            // A file the manifest promises but the tree lacks: the boot cannot succeed.
            control?.stop("\(subject) asked for \(name), which the manifest lists but the tree does not have (\(record.outcome))")
        }
        if again {
            control?.stop("\(KVMSupport.rebootReasonPrefix) \(name) a second time: \(subject) started over")
        }
    }
}

extension Progress {
    /// The line for a delivered file.
    func served(_ path: String, _ record: TransferRecord) {
        say("served \(path) (\(ServedFiles.size(record.bytes)) in \(String(format: "%.2f", record.seconds)) s)")
    }

    /// Console events as progress lines (`subject` is the guest or the machine), lines to `onLine`.
    func consoleEvents(patterns: [ExpectedPattern], failures: [FailurePattern], subject: String,
                       onLine: @escaping @Sendable (String) -> Void) -> @Sendable (SerialEvent) -> Void {
        { [self] event in
            switch event {
            case let .line(line):
                onLine(line)
            case let .matched(index, elapsed):
                say("matched \(index + 1)/\(patterns.count) \(patterns[index].description) at \(String(format: "%.1f", elapsed)) s")
            case let .rebooted(line):
                say("the first pattern came again (\(line)): the \(subject) rebooted")
            case let .failed(index, _):
                say("failure pattern \(failures[index].shown) matched: \(failures[index].verdict)")
            }
        }
    }
}

/// A tree's `http_base`: where it fetches its kernel and modules over HTTP.
enum HTTPBase {
    static let variable = "http_base"

    /// The tree's http_base, or nil when it boots over TFTP alone.
    static func of(_ manifest: Manifest) -> String? {
        guard let base = manifest.variables[variable], !base.isEmpty else { return nil }
        return base
    }

    /// The host port drops-run --http listens on under QEMU's user network: the port of an
    /// http_base at 10.0.2.2 (QEMU's name for the host); nil when the tree names no such base.
    static func userNetworkPort(_ manifest: Manifest) -> Int? {
        guard let base = of(manifest), let url = URL(string: base), url.host == "10.0.2.2" else { return nil }
        return url.port ?? 80
    }
}

extension HTTPRequestRecord {
    /// An HTTP request as the run's list of delivered files holds it.
    var asTransfer: TransferRecord {
        // The file name as the server read it (decoded, without a query); the target as it
        // came when it does not decode.
        let name = (try? HTTPRequestPath.name(fromTarget: path)) ?? path
        return TransferRecord(client: client, direction: "http", file: name, options: "", bytes: bytes, seconds: seconds,
                              outcome: status < 400 ? "ok" : "HTTP \(status): \(reason)", retransmissions: 0)
    }
}
