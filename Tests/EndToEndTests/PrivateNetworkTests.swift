import DropsImage
import DropsQEMU
import DropsTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `drops-run --network private`: the guest on a lab network made for the run, with
/// drops-serve pxe in full-DHCP mode on port 69, so the firmware, the boot loader and a
/// run-time client reach our server exactly as on a lab network; all of it removed afterwards.
@Suite(.serialized, .enabled(if: LabNetwork.available, "needs root and iproute2 (make deps; CI runs as root)"))
struct PrivateNetworkTests {
    /// Namespaces drops-run made (drops-run-PID) that still exist.
    static func runNamespaces() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix(PrivateLabNetwork.namePrefix) }
    }

    /// Processes whose command line holds `text` (a drops-serve or QEMU left behind).
    static func processes(containing text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int($0) != nil }.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains(text) && !line.contains("swift-testing") && !line.contains("xctest") ? "\(pid): \(line)" : nil
        }
    }

    /// Processes whose parent is `pid`.
    static func children(of pid: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { child in
            guard let text = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = text.lastIndex(of: ")") else { return false }
            // Fields after the command's closing parenthesis: state, then the parent's PID.
            let fields = text[text.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
    }

    /// The linux RAM disk's run-time step asks DHCP (BusyBox udhcpc) for an address, fetches
    /// runtime.sha256 and the file it lists from the next server with BusyBox tftp, and
    /// prints the SHA-256 match; our server's log shows the transfer.
    @Test func linuxRamDiskFetchesItsRuntimeFileFromOurServer() throws {
        let root = try LabBootTests.trees.get()
        let before = Self.runNamespaces()
        let run = try DropsRunTool.run([root + "/linux", "--network", "private", "--json", "--no-milestones",
                                        "--expect", "DROPS-ROOTFS runtime bin/runtime-check.txt from 10\\.0\\.77\\.1: sha256 [0-9a-f]{64} matches the manifest",
                                        "--expect", "DROPS-ROOTFS runtime 1 of 1 files fetched and verified", "--timeout", "240"])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(run.stderr.contains("run-time files (bin/runtime-check.txt) can be delivered"), "\(run.stderr.prefix(2000))")
        #expect(run.stderr.contains("DHCPDISCOVER: offer 10.0.77."), "drops-serve's DHCP answers reach the progress: \(run.stderr.prefix(3000))")
        #expect(run.served.isSuperset(of: ["boot.ipxe", "bin/vmlinuz", "bin/ramdisk.img", "runtime.sha256", "bin/runtime-check.txt"]), "\(run.served)")
        let files = run.summary["runtimeFiles"] as? [[String: Any]] ?? []
        #expect(files.count == 1 && files.first?["fetched"] as? Bool == true && files.first?["deliverable"] as? Bool == true, "\(files)")
        #expect(run.summary["network"] as? String == "private")
        #expect(Self.runNamespaces() == before, "the run's namespace is removed")
        #expect(Self.processes(containing: "--root \(root) --default-profile linux").isEmpty)
    }

    /// The probe through GRUB 2: drops-serve makes the GRUB image and hands it out with an
    /// address; every module and the roottask configuration verified.
    @Test func selftestBootsThroughGrubOnThePrivateNetwork() throws {
        let root = try LabBootTests.trees.get()
        let run = try DropsRunTool.run([root + "/selftest", "--network", "private", "--chain", "grub", "--json"])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(run.verifiedModules == 15, "\(run.failedModules)")
        #expect(run.served.contains("bin/roottask.cfg"), "\(run.served)")
    }

    /// SIGINT ends the run with status 130 and removes the namespace, drops-serve and QEMU;
    /// a namespace a killed run left behind is removed by the next run.
    @Test func interruptedRunLeavesNothingBehind() throws {
        let root = try LabBootTests.trees.get()
        let tool = try #require(CommandLineTests.executable("drops-run"))
        // A namespace whose process is gone, as a run killed with SIGKILL leaves it.
        let gone = try ChildProcess(["/bin/true"])
        _ = gone.wait()
        let leftover = PrivateLabNetwork.namePrefix + String(gone.pid)
        let work = TemporaryDirectory("drops-private")
        let made = try ChildProcess(["/usr/sbin/ip", "netns", "add", leftover], errors: work.path + "/ip.err")
        try #require(made.wait() == 0, "\((try? String(contentsOfFile: work.path + "/ip.err", encoding: .utf8)) ?? "")")

        let errors = work.path + "/run.err"
        let child = try ChildProcess([tool, root + "/selftest", "--network", "private", "--expect", "this never comes", "--timeout", "200"],
                                     output: work.path + "/run.out", errors: errors, environment: ["DROPS_KVM": "off"])
        let own = PrivateLabNetwork.namePrefix + String(child.pid)
        var started = false
        for _ in 0..<600 where !started {
            usleep(100_000)
            started = ((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "").contains("served ")
        }
        let log = { (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "" }
        #expect(started, "the guest never fetched a file: \(log())")
        #expect(Self.runNamespaces().contains(own))
        #expect(!Self.runNamespaces().contains(leftover), "the leftover namespace is removed at start")
        #expect(log().contains("removed the network namespace \(leftover)"))
        let helpers = Self.children(of: child.pid)
        #expect(helpers.count >= 2, "drops-serve and QEMU run under drops-run: \(helpers)")
        kill(child.pid, SIGINT)
        let status = child.wait(seconds: 30)
        #expect(status == 130, "\(log().suffix(2000))")
        #expect(log().contains("interrupted by SIGINT"))
        #expect(!Self.runNamespaces().contains(own), "the run's namespace is removed")
        #expect(Self.processes(containing: "--root \(root) --default-profile selftest").isEmpty)
        #expect(helpers.allSatisfy { kill($0, 0) != 0 }, "drops-serve and QEMU are gone")
        if Self.runNamespaces().contains(leftover) { _ = try? ChildProcess(["/usr/sbin/ip", "netns", "delete", leftover]).wait() }
    }
}

/// The historic L4Env tftp file provider's DHCP and TFTP, replayed by a client that takes
/// answers the way its netboot code does (it ignores one without a next server), against
/// drops-serve pxe as the only DHCP server of a lab network.
@Suite(.enabled(if: LabNetwork.available, "needs root, iproute2 and dnsmasq-base (make deps; CI runs as root)"))
struct LegacyFileProviderTests {
    /// A PC on the lab bridge: its own namespace, joined by a veth pair, no address yet.
    func pc(on lab: LabNetwork) throws -> (LegacyNetbootClient, String) {
        let pc = lab.lab.replacingOccurrences(of: "dlab-", with: "dpc-")
        try lab.run(["ip", "netns", "add", pc])
        try lab.run(["ip", "-n", lab.lab, "link", "add", "pc0", "address", "52:54:00:aa:00:01", "type", "veth", "peer", "name", "pc0-br"])
        try lab.run(["ip", "-n", lab.lab, "link", "set", "pc0", "netns", pc])
        try lab.run(["ip", "-n", lab.lab, "link", "set", "pc0-br", "master", "br0", "up"])
        try lab.run(["ip", "-n", pc, "link", "set", "lo", "up"])
        try lab.run(["ip", "-n", pc, "link", "set", "pc0", "up"])
        return (LegacyNetbootClient(namespace: pc, interface: "pc0", mac: [0x52, 0x54, 0x00, 0xAA, 0x00, 0x01]), pc)
    }

    /// Fetches the linux tree's run-time file as the client does and checks it and the log line.
    func fetchRuntimeFile(_ client: LegacyNetbootClient, lease: LegacyNetbootClient.Lease, lab: LabNetwork, root: String) throws {
        let manifest = try TreeVerifier.loadManifest(directory: root + "/linux")
        let expected = try #require(manifest.runtimeFiles.first)
        let bytes = try client.fetch("/linux/" + expected.path, from: lease.nextServer)
        #expect(FileDigest.sha256(bytes) == expected.sha256)
        #expect(lab.waitFor("read /linux/\(expected.path) client=\(lease.address):2001 options=[blksize=1432 tsize=\(expected.size)]", in: "pxe"), "\(lab.log("pxe"))")
    }

    /// drops-serve pxe as the only DHCP server (full DHCP): siaddr names it.
    @Test func historicClientGetsAnAddressAndItsRuntimeFileFromDropsServe() throws {
        let root = try LabBootTests.trees.get()
        let lab = try LabNetwork(taps: 0, siteDHCP: false)
        let (client, pc) = try pc(on: lab)
        defer { _ = try? lab.run(["ip", "netns", "delete", pc]) }
        try LabBootTests().serve(lab, root: root, hosts: nil, arguments: ["--default-profile", "linux", "--dhcp-range", "10.77.0.150-10.77.0.160",
                                                                          "--lease-file", lab.work.path + "/leases"])
        let lease = try client.lease()
        #expect(lease.nextServer == LabNetwork.serverAddress, "siaddr names drops-serve")
        #expect(lease.discovers == 1, "the first answer was taken")
        #expect(lease.address.hasPrefix("10.77.0.1"), "\(lease.address)")
        try fetchRuntimeFile(client, lease: lease, lab: lab, root: root)
    }

    /// The site's dnsmasq hands out the address and names drops-serve as the next server
    /// (dhcp-boot); drops-serve pxe beside it in proxy mode serves the file.
    @Test func historicClientFetchesFromDropsServeNamedBySiteDHCP() throws {
        let root = try LabBootTests.trees.get()
        let lab = try LabNetwork(taps: 0, siteOptions: ["--dhcp-boot=pxelinux.0,drops,\(LabNetwork.serverAddress)"])
        let (client, pc) = try pc(on: lab)
        defer { _ = try? lab.run(["ip", "netns", "delete", pc]) }
        try LabBootTests().serve(lab, root: root, hosts: nil, arguments: ["--default-profile", "linux"])
        let lease: LegacyNetbootClient.Lease
        do { lease = try client.lease() } catch {
            Issue.record("\(error); the site's DHCP server said: \(lab.log("site-dhcp").suffix(3000))")
            return
        }
        #expect(lease.nextServer == LabNetwork.serverAddress, "dnsmasq's siaddr names drops-serve")
        #expect(lease.address.hasPrefix("10.77.0.1"), "\(lease.address)")
        try fetchRuntimeFile(client, lease: lease, lab: lab, root: root)
    }
}
