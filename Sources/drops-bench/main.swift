import DropsTestSupport
import Foundation

// drops-bench: measures drops-serve beside tftpd-hpa and dnsmasq in the same run, with the
// same clients (curl, atftp) and files, on 127.0.0.1, and prints one table. `make bench`
// runs it on a release build. Every fetched file is compared with the original; a transfer
// that does not arrive intact is reported as such, never as a speed.

/// Prints a line at once, so progress shows even when the output is a pipe.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let arguments = CommandLine.arguments.dropFirst()
let knownOptions = ["--quick", "--no-tftp", "--no-boot", "--no-lab", "--no-ramdisk", "--rounds"]
if arguments.contains("--help") || arguments.contains("-h") {
    say("""
        usage: drops-bench [--quick] [--rounds N] [--no-tftp] [--no-boot] [--no-lab] [--no-ramdisk]
          Measures drops-serve beside tftpd-hpa and dnsmasq (TFTP throughput with curl and atftp,
          1 ms of added round-trip time, 1/50/200 concurrent clients, peak memory), netboots of the
          selftest image (drops-serve beside QEMU's built-in TFTP), drops-run's time to a verdict on
          each target (QEMU guest, private lab network, a lab PC behind a simulated BMC; root) and
          the RAM disk build beside cpio/gzip; prints one table per part.
          --quick       smaller files and fewer clients (a smoke run, not figures to quote)
          --rounds N    rounds per TFTP scenario, each cell the median (default 3, 1 with --quick)
          --no-tftp     skip the TFTP servers
          --no-boot     skip the QEMU netboot
          --no-lab      skip the boots on each target (they need root)
          --no-ramdisk  skip the RAM disk build
        """)
    exit(0)
}
/// `--rounds N`, checked before anything runs.
var roundsOption: Int?
let roundsIndex = arguments.firstIndex(of: "--rounds")
if let index = roundsIndex {
    guard index + 1 < arguments.endIndex, let value = Int(arguments[index + 1]), (1...50).contains(value) else {
        FileHandle.standardError.write(Data("drops-bench: --rounds needs a number from 1 to 50, as in --rounds 5\n".utf8))
        exit(2)
    }
    roundsOption = value
}
let roundsValue = roundsIndex.map { $0 + 1 }
if let unknown = arguments.indices.first(where: { !knownOptions.contains(arguments[$0]) && $0 != roundsValue }).map({ arguments[$0] }) {
    FileHandle.standardError.write(Data("drops-bench: unknown option '\(unknown)'; see drops-bench --help\n".utf8))
    exit(2)
}
let quick = arguments.contains("--quick")
let bigSize = (quick ? 16 : 64) << 20
let concurrentSize = (quick ? 2 : 8) << 20
let rttSize = (quick ? 2 : 8) << 20
let concurrencyLevels = quick ? [1, 10] : [1, 50, 200]

let work = TemporaryDirectory("drops-bench")
let root = work.path + "/root"
let downloads = work.path + "/downloads"
try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
try FileManager.default.createDirectory(atPath: downloads, withIntermediateDirectories: true)

/// Deterministic bytes so every run serves the same files.
func makeFile(_ name: String, size: Int, seed: UInt64) -> String {
    var generator = SplitMix64(seed: seed)
    let path = root + "/" + name
    _ = FileManager.default.createFile(atPath: path, contents: Data(generator.bytes(size)))
    return path
}

let bigFile = makeFile("big.bin", size: bigSize, seed: 1)
let concurrentFile = makeFile("concurrent.bin", size: concurrentSize, seed: 2)
let rttFile = makeFile("rtt.bin", size: rttSize, seed: 3)
let originals = [
    "big.bin": try Data(contentsOf: URL(fileURLWithPath: bigFile)),
    "concurrent.bin": try Data(contentsOf: URL(fileURLWithPath: concurrentFile)),
    "rtt.bin": try Data(contentsOf: URL(fileURLWithPath: rttFile)),
]

func which(_ name: String) -> String? {
    for folder in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") {
        return "\(folder)/\(name)"
    }
    return nil
}

/// A server under test, started as its own process so its memory can be read from /proc.
struct Server {
    var name: String
    var port: Int
    var process: ChildProcess

    /// Peak resident memory (VmHWM) in KiB.
    var peakKiB: Int {
        guard let status = try? String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
        }
        return -1
    }

    func stop() {
        process.stop()
    }
}

func start(_ name: String, _ executable: String, _ args: [String], port: Int) -> Server? {
    let process: ChildProcess
    do { process = try ChildProcess([executable] + args) } catch {
        say("! cannot start \(name): \(error)")
        return nil
    }
    Thread.sleep(forTimeInterval: 0.5)
    guard process.isRunning else {
        say("! \(name) exited at once (is port \(port) free?)")
        return nil
    }
    return Server(name: name, port: port, process: process)
}

func dropsServe() -> String {
    let own = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drops-serve").path
    return FileManager.default.isExecutableFile(atPath: own) ? own : (which("drops-serve") ?? own)
}

var servers: [Server] = []
// --no-tftp leaves the TFTP servers out (the boot and RAM disk parts still run).
let tftpBench = !arguments.contains("--no-tftp")
if tftpBench, let drops = start("drops-serve", dropsServe(), ["tftp", "--root", root, "--address", "127.0.0.1", "--port", "16969",
                                                    "--max-windowsize", "64", "--timeout", "1"], port: 16969) {
    servers.append(drops)
}
if tftpBench, let tftpd = which("in.tftpd"), let server = start("tftpd-hpa", tftpd, ["--foreground", "--address", "127.0.0.1:16970",
                                                                          "--secure", "--user", "root", "--blocksize", "65464", root], port: 16970) {
    servers.append(server)
} else if tftpBench, which("in.tftpd") == nil { say("! tftpd-hpa not installed (Debian package tftpd-hpa): left out") }
// dnsmasq's TFTP server always listens on port 69.
if tftpBench, let dnsmasq = which("dnsmasq"), let server = start("dnsmasq", dnsmasq, [
    "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--enable-tftp", "--tftp-root=\(root)",
    "--listen-address=127.0.0.1", "--bind-interfaces", "--tftp-max=400", "--user=root", "--pid-file=\(work.path)/dnsmasq.pid",
], port: 69) {
    servers.append(server)
} else if tftpBench, which("dnsmasq") == nil { say("! dnsmasq not installed (Debian package dnsmasq-base): left out") }

// Interrupted (Ctrl-C, timeout): stop the servers too, never leave them running.
let startedServers = servers
var signalSources: [DispatchSourceSignal] = []
for signalNumber in [SIGINT, SIGTERM] {
    signal(signalNumber, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
    source.setEventHandler {
        for server in startedServers { kill(server.process.pid, SIGTERM) }
        exit(130)
    }
    source.resume()
    signalSources.append(source)
}

/// Runs a client command; returns seconds and whether the download equals the original.
func fetch(_ command: [String], output: String, original: String) -> (seconds: Double, intact: Bool) {
    try? FileManager.default.removeItem(atPath: output)
    let start = Date()
    let status = (try? ChildProcess(command))?.wait() ?? -1
    let seconds = Date().timeIntervalSince(start)
    let data = FileManager.default.contents(atPath: output)
    return (seconds, status == 0 && data == originals[original])
}

func curl(_ port: Int, file: String, blksize: Int, output: String) -> [String] {
    ["/usr/bin/curl", "-s", "--max-time", "300", "--tftp-blksize", String(blksize), "-o", output, "tftp://127.0.0.1:\(port)/\(file)"]
}

func atftp(_ port: Int, file: String, blksize: Int, window: Int, output: String) -> [String] {
    var command = ["/usr/bin/atftp", "--get", "-r", file, "-l", output, "--option", "blksize \(blksize)"]
    if window > 1 { command += ["--option", "windowsize \(window)"] }
    return command + ["127.0.0.1", String(port)]
}

/// One round of a scenario on one server: MB/s, or nil when a file arrived damaged or not at all.
typealias Round = (rate: Double?, note: String)

func rate(_ bytes: Int, _ result: (seconds: Double, intact: Bool)) -> Round {
    (result.intact ? Double(bytes) / result.seconds / 1e6 : nil, "")
}

/// Rounds per TFTP scenario. Loopback figures on a shared 2-core machine vary by several
/// per cent from run to run, so each cell is the median of its rounds, and the servers take
/// turns within a round so that a slow moment of the machine does not hit only one of them.
let tftpRounds = roundsOption ?? (quick ? 1 : 3)

var rows: [(String, [String])] = []
@MainActor func record(_ scenario: String, _ cells: [String]) {
    guard !servers.isEmpty else { return }
    rows.append((scenario, cells))
    say("\(scenario): " + zip(servers.map(\.name), cells).map { "\($0) \($1)" }.joined(separator: ", "))
}

@MainActor func measure(_ scenario: String, _ round: (Server) -> Round) {
    var results = Array(repeating: [Round](), count: servers.count)
    for _ in 0..<tftpRounds {
        for (index, server) in servers.enumerated() { results[index].append(round(server)) }
    }
    record(scenario, results.map { rounds in
        let rates = rounds.compactMap(\.rate)
        let note = rounds.first { $0.rate == nil }?.note ?? rounds.last?.note ?? ""
        guard rates.count == rounds.count, let middle = median(rates) else {
            return "FAILED in \(rounds.count - rates.count) of \(rounds.count) rounds" + (note.isEmpty ? "" : " (\(note))")
        }
        return String(format: "%.1f MB/s", middle) + (note.isEmpty ? "" : " (\(note))")
    })
}

// 1. Block sizes, one client (curl), the big file.
for blksize in [512, 1468, 65464] {
    measure("curl blksize \(blksize), \(bigSize >> 20) MiB") { server in
        rate(bigSize, fetch(curl(server.port, file: "big.bin", blksize: blksize, output: downloads + "/b"), output: downloads + "/b", original: "big.bin"))
    }
}

// 2. Window sizes (atftp), blksize 1468 as on an Ethernet LAN.
if which("atftp") != nil {
    for window in [1, 16, 64] {
        measure("atftp windowsize \(window), blksize 1468, \(bigSize >> 20) MiB") { server in
            rate(bigSize, fetch(atftp(server.port, file: "big.bin", blksize: 1468, window: window, output: downloads + "/w"),
                                output: downloads + "/w", original: "big.bin"))
        }
    }
}

// 3. 1 ms round-trip time through the relay (0.5 ms each way): where windowsize matters.
if which("atftp") != nil {
    for window in [1, 16, 64] {
        measure("1 ms RTT, atftp windowsize \(window), \(rttSize >> 20) MiB") { server in
            let relay = try? LossyRelay(target: server.port, delayMicroseconds: 500, seed: 7)
            defer { relay?.stop() }
            guard let relay else { return (nil, "no relay") }
            return rate(rttSize, fetch(atftp(relay.port, file: "rtt.bin", blksize: 1468, window: window, output: downloads + "/r"),
                                       output: downloads + "/r", original: "rtt.bin"))
        }
    }
}

// 4. Concurrent clients, each fetching its own copy of the 8 MiB file.
for clients in concurrencyLevels {
    measure("\(clients) concurrent curl, \(concurrentSize >> 20) MiB each") { server in
        let start = Date()
        var processes: [(ChildProcess?, String)] = []
        for index in 0..<clients {
            let output = "\(downloads)/c\(index)"
            try? FileManager.default.removeItem(atPath: output)
            processes.append((try? ChildProcess(curl(server.port, file: "concurrent.bin", blksize: 1468, output: output)), output))
        }
        var intact = 0
        for (process, output) in processes {
            if process?.wait() == 0, FileManager.default.contents(atPath: output) == originals["concurrent.bin"] { intact += 1 }
            try? FileManager.default.removeItem(atPath: output)
        }
        let seconds = Date().timeIntervalSince(start)
        return (intact == clients ? Double(clients * concurrentSize) / seconds / 1e6 : nil, "\(intact)/\(clients) intact")
    }
}

record("server peak memory (VmHWM)", servers.map { String(format: "%.1f MiB", Double($0.peakKiB) / 1024) })
for server in servers { server.stop() }

// The table, Markdown.
if !servers.isEmpty {
    say("")
    say("TFTP, loopback, every file compared with the original; each cell is the median of \(tftpRounds) round(s):")
    say("| scenario | " + servers.map(\.name).joined(separator: " | ") + " |")
    say("|---|" + servers.map { _ in "---|" }.joined())
    for (scenario, cells) in rows {
        say("| \(scenario) | " + cells.joined(separator: " | ") + " |")
    }
}

// 5. Booting the selftest image in QEMU (TCG) through each chain: our server beside QEMU's
// built-in TFTP server, seconds from QEMU's start to the probe's `end` line (median).
/// Seconds to the last pattern (the probe's end line), and whether the check passed: GRUB 2
/// delivers every module but rewrites the quotes of one command line, which is timed all the same.
func bootSeconds(_ tree: String, chain: String, tftp: String) -> (seconds: Double, ok: Bool)? {
    let tool = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drops-run").path
    let output = work.path + "/run.json"
    guard let process = try? ChildProcess([tool, tree, "--chain", chain, "--tftp", tftp, "--kvm", "off", "--json", "-q"], output: output) else { return nil }
    let status = process.wait()
    guard let data = FileManager.default.contents(atPath: output),
          let summary = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let patterns = summary["patterns"] as? [[String: Any]],
          let seconds = patterns.last?["seconds"] as? Double else { return nil }
    return (seconds, status == 0)
}

func median(_ values: [Double]) -> Double? {
    values.isEmpty ? nil : values.sorted()[values.count / 2]
}

let selftestTree = "out/selftest"
if arguments.contains("--no-boot") {
    say("boot: skipped (--no-boot)")
} else if !FileManager.default.fileExists(atPath: selftestTree + "/manifest.json") {
    say("boot: skipped, no \(selftestTree) (drops-build profile selftest makes it)")
} else {
    let runs = quick ? 1 : 3
    say("")
    say("Booting \(selftestTree) under TCG, seconds from QEMU's start to the probe's end line (median of \(runs)):")
    say("")
    say("| chain | drops-serve (in drops-run) | QEMU's built-in TFTP |")
    say("|---|---|---|")
    for chain in ["ipxe", "pxelinux", "grub"] {
        var cells: [String] = []
        for tftp in ["drops", "qemu"] {
            guard !(chain == "grub" && tftp == "qemu") else {
                cells.append("n/a (the GRUB image names our port)")
                continue
            }
            let results = (0..<runs).compactMap { _ in bootSeconds(selftestTree, chain: chain, tftp: tftp) }
            let note = results.allSatisfy(\.ok) ? "" : " (the probe ended, the check failed: see drops-run --chain \(chain))"
            cells.append(results.count == runs ? String(format: "%.2f s", median(results.map(\.seconds))!) + note
                                               : "FAILED (\(runs - results.count) of \(runs) runs)")
        }
        say("| \(chain) | " + cells.joined(separator: " | ") + " |")
    }
}

// 5b. drops-run on each target, to its verdict (Sources/drops-bench/LabBoot.swift).
if arguments.contains("--no-lab") {
    say("lab: skipped (--no-lab)")
} else if !FileManager.default.fileExists(atPath: selftestTree + "/manifest.json") {
    say("lab: skipped, no \(selftestTree)")
} else {
    labBootBench(tree: selftestTree, runs: quick ? 1 : 3, work: work.path)
}

// 6. The RAM disk: our builder (libarchive) beside `find | cpio -o -H newc | gzip -9` (and
// `| xz`) on the same folder: rootfs/, BusyBox with its applet links and the probe's
// binaries, in the same run. Time is the median of three builds; sizes in bytes.
func ramDiskBench() {
    let stage = work.path + "/rootfs-stage"
    let busybox = "/bin/busybox"
    guard FileManager.default.fileExists(atPath: "rootfs/init"), FileManager.default.isExecutableFile(atPath: busybox),
          FileManager.default.isExecutableFile(atPath: "/usr/bin/cpio") else {
        say("ramdisk: skipped (needs rootfs/, busybox-static and cpio: make deps)")
        return
    }
    let setup = "rm -rf \(stage) && cp -a rootfs \(stage) && rm -f \(stage)/devices.txt && mkdir -p \(stage)/bin \(stage)/probe"
        + " && cp \(busybox) \(stage)/bin/busybox"
        + " && for a in $(\(busybox) --list-full); do mkdir -p \(stage)/$(dirname $a); [ -e \(stage)/$a ] || ln -s /bin/busybox \(stage)/$a; done"
        + " && cp \(probeBuildFolder)/* \(stage)/probe/ 2>/dev/null; true"
    guard (try? ChildProcess(["/bin/sh", "-c", setup]))?.wait() == 0 else {
        say("ramdisk: skipped (cannot stage the tree)")
        return
    }
    let tool = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("drops-build").path
    func timed(_ command: String, output: String) -> (seconds: Double, size: Int)? {
        var times: [Double] = []
        for _ in 0..<(quick ? 1 : 3) {
            let start = Date()
            guard (try? ChildProcess(["/bin/sh", "-c", command]))?.wait() == 0 else { return nil }
            times.append(Date().timeIntervalSince(start))
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return (median(times)!, size)
    }
    say("")
    say("RAM disk from the same folder (rootfs/, BusyBox and its links, the probe's binaries), median of \(quick ? 1 : 3):")
    say("")
    say("| compression | drops-build ramdisk | find \\| cpio -o -H newc \\| compressor | size ours / theirs |")
    say("|---|---|---|---|")
    // The same settings on both sides: gzip -9 without a time stamp; xz as the kernel reads
    // it (CRC32, 1 MiB dictionary), which is what drops-build ramdisk runs.
    let pipelines: [(String, String)] = [("gzip", "gzip -9 -n"), ("xz", "xz --format=xz --check=crc32 --lzma2=preset=6,dict=1MiB --threads=1 -c")]
    for (name, compressor) in pipelines {
        let ours = work.path + "/ours.\(name)", theirs = work.path + "/theirs.\(name)"
        let a = timed("\(tool) ramdisk --rootfs \(stage) --busybox none --compression \(name) -o \(ours) -q", output: ours)
        let b = timed("cd \(stage) && find . | LC_ALL=C sort | cpio -o -H newc --quiet | \(compressor) > \(theirs)", output: theirs)
        func cell(_ value: (seconds: Double, size: Int)?) -> String {
            value.map { String(format: "%.2f s, %d bytes", $0.seconds, $0.size) } ?? "FAILED"
        }
        let ratio = (a != nil && b != nil && b!.size > 0) ? String(format: "%+.1f %%", (Double(a!.size) / Double(b!.size) - 1) * 100) : "-"
        say("| \(name) | \(cell(a)) | \(cell(b)) | \(ratio) |")
    }
}

let probeBuildFolder = "build/probe"
if arguments.contains("--no-ramdisk") {
    say("ramdisk: skipped (--no-ramdisk)")
} else {
    ramDiskBench()
}
