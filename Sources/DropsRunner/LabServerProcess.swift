import DropsPXE
import DropsProcess
import DropsQEMU
import DropsTFTP
import Foundation
import NIOConcurrencyHelpers

/// drops-serve pxe started for one run, exactly as a lab runs it: inside the run's private
/// lab network in full-DHCP mode (--network private), or on the lab interface as proxyDHCP
/// for one PC (--host with --interface). Its JSON log is read back for the run's progress
/// and report.
final class LabServerProcess: Sendable {
    let network: PrivateLabNetwork?
    let root: String
    private let process: Process
    private let scratch: String
    private let state = NIOLockedValueBox(LogState())

    struct LogState {
        var lines: [String] = []
        var partial = Data()
        var ready = false
        var ended = false
        var onTransfer: (@Sendable (TransferRecord) -> Void)?
        var onExchange: (@Sendable (PXEExchange) -> Void)?
    }

    /// In the private network: full DHCP on its bridge, every client booting `profile`.
    convenience init(network: PrivateLabNetwork, executable: String, root: String, profile: String, chain: String, verbose: Bool) throws {
        try self.init(network: network, executable: executable, root: root, verbose: verbose, arguments: { scratch in
            ["--interface", PrivateLabNetwork.bridge, "--default-profile", profile, "--chain", chain,
             "--dhcp-range", PrivateLabNetwork.dhcpRange, "--lease-file", scratch + "/leases"]
        })
    }

    /// On a lab interface: proxyDHCP for the one machine `mac`, which boots `profile`; the
    /// site's DHCP server keeps handing out addresses, other machines get no answer.
    convenience init(interface: String, mac: String, name: String, executable: String, root: String, profile: String,
                     chain: String, verbose: Bool) throws {
        try self.init(network: nil, executable: executable, root: root, verbose: verbose, arguments: { scratch in
            let hosts = """
                unknown = "refuse"
                [[host]]
                mac = "\(mac)"
                name = "\(name)"
                profile = "\(profile)"
                chain = "\(chain)"

                """
            try? hosts.write(toFile: scratch + "/hosts.toml", atomically: true, encoding: .utf8)
            return ["--interface", interface, "--hosts", scratch + "/hosts.toml"]
        })
    }

    /// Starts drops-serve serving `root` (the folder holding the tree as `profile/`) and
    /// waits until it serves. Throws with what drops-serve said when it cannot start.
    private init(network: PrivateLabNetwork?, executable: String, root: String, verbose: Bool,
                 arguments: (String) -> [String]) throws {
        self.network = network
        self.root = root
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drops-run-lab-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        let process = Process()
        let prefix = network?.launchPrefix ?? []
        process.executableURL = URL(fileURLWithPath: prefix.first ?? executable)
        process.arguments = Array(prefix.dropFirst()) + (prefix.isEmpty ? [] : [executable])
            + ["pxe", "--root", root] + arguments(scratch) + ["--log-format", "json", "--grace", "2", "--no-control"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = verbose ? FileHandle.standardError : FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        self.process = process
        let state = state
        errors.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            let (records, exchanges, transfer, exchange) = state.withLockedValue { value -> ([TransferRecord], [PXEExchange], (@Sendable (TransferRecord) -> Void)?, (@Sendable (PXEExchange) -> Void)?) in
                if data.isEmpty { value.ended = true; return ([], [], nil, nil) }
                value.partial.append(data)
                var records: [TransferRecord] = []
                var exchanges: [PXEExchange] = []
                while let newline = value.partial.firstIndex(of: 0x0A) {
                    let line = String(decoding: value.partial[value.partial.startIndex..<newline], as: UTF8.self)
                    value.partial.removeSubrange(value.partial.startIndex...newline)
                    // The last lines only: they say why drops-serve did not start.
                    value.lines.append(line)
                    if value.lines.count > 20 { value.lines.removeFirst() }
                    if line.contains("serving profiles") { value.ready = true }
                    // Failed transfers come as warnings: "warning: {…}".
                    let bytes = Data((line.firstIndex(of: "{").map { String(line[$0...]) } ?? line).utf8)
                    if let record = try? JSONDecoder().decode(TransferRecord.self, from: bytes) {
                        records.append(record)
                    } else if let exchange = try? JSONDecoder().decode(PXEExchange.self, from: bytes) {
                        exchanges.append(exchange)
                    }
                }
                return (records, exchanges, value.onTransfer, value.onExchange)
            }
            if data.isEmpty { handle.readabilityHandler = nil }
            for record in records { transfer?(record) }
            for item in exchanges { exchange?(item) }
        }
        do { try process.run() } catch {
            try? FileManager.default.removeItem(atPath: scratch)
            throw RunFailure("cannot start \(executable): \(error.localizedDescription)")
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let (ready, ended) = state.withLockedValue { ($0.ready, $0.ended) }
            if ready { return }
            if ended || !process.isRunning { break }
            usleep(50_000)
        }
        let said = state.withLockedValue { $0.lines.suffix(10).joined(separator: "\n") }
        stop()
        throw RunFailure("drops-serve pxe did not start" + (network == nil ? "" : " in the private network") + (said.isEmpty ? "" : ": \(said)"))
    }

    func observe(transfers: @escaping @Sendable (TransferRecord) -> Void, exchanges: @escaping @Sendable (PXEExchange) -> Void) {
        state.withLockedValue {
            $0.onTransfer = transfers
            $0.onExchange = exchanges
        }
    }

    /// SIGTERM: drops-serve lets running transfers finish (for --grace) and logs them, so
    /// the report sees every transfer. Waits for it to end, then for its log's last line.
    func stop() {
        Programs.stop(process, grace: 5)
        let deadline = Date().addingTimeInterval(1)
        while !state.withLockedValue({ $0.ended }) && Date() < deadline { usleep(10_000) }
        try? FileManager.default.removeItem(atPath: scratch)
    }
}
