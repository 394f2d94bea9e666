import DropsArchive
import DropsImage
import DropsTestSupport
import Foundation
import Testing

/// Real PCs, simulated: QEMU guests on the tap devices of a lab bridge, dnsmasq as the site's
/// DHCP server handing out addresses only, `drops-serve pxe` beside it answering with boot
/// files. Each guest is booted through `drops-run --tap-device`, which compares what booted
/// with the manifest (probe) or waits for the profile's milestones (linux).
@Suite(.serialized, .enabled(if: LabNetwork.available, "needs root, iproute2 and dnsmasq-base (make deps; CI runs as root)"))
struct LabBootTests {
    /// selftest and linux trees, built once for the suite (the folder lives as long as the process).
    static let treesFolder = TemporaryDirectory("drops-lab-trees")
    static let trees: Result<String, Error> = Result {
        let work = treesFolder
        let components = TemporaryDirectory("drops-lab-parts")
        let vmlinuz = try RamDiskBootTests().kernel(into: components)
        try FileManager.default.createDirectory(atPath: work.path + "/kernel", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: vmlinuz, toPath: work.path + "/kernel/vmlinuz")
        let build = try #require(CommandLineTests.executable("drops-build"), "build the tools first (make build)")
        for profile in ["selftest", "linux"] {
            let searchPath = profile == "linux" ? ["--search-path", work.path + "/kernel"] : []
            let child = try ChildProcess([build, "profile", profile, "--out", work.path + "/out"] + searchPath,
                                         errors: work.path + "/build.err", environment: ["DROPS_PROFILES_DIR": Repository.profiles])
            guard child.wait() == 0 else {
                throw NSError(domain: "LabBootTests", code: 1, userInfo: [NSLocalizedDescriptionKey:
                    "drops-build profile \(profile): \((try? String(contentsOfFile: work.path + "/build.err", encoding: .utf8)) ?? "")"])
            }
        }
        return work.path + "/out"
    }

    @discardableResult
    func serve(_ lab: LabNetwork, root: String, hosts: String?, arguments: [String] = [], log: String = "pxe") throws -> ChildProcess {
        let serve = try #require(CommandLineTests.executable("drops-serve"))
        // Each lab's own control socket: the default one is per interface name, and every lab's is br0.
        var command = [serve, "pxe", "--interface", "br0", "--root", root, "--control", lab.work.path + "/\(log).sock"]
        if let hosts {
            let path = lab.work.path + "/hosts.toml"
            try hosts.write(toFile: path, atomically: true, encoding: .utf8)
            command += ["--hosts", path]
        }
        let child = try lab.start(in: lab.lab, command + arguments, log: log)
        try #require(lab.waitFor("serving profiles", in: log), "drops-serve pxe did not start: \(lab.log(log))")
        return child
    }

    func boot(_ lab: LabNetwork, tree: String, _ arguments: [String]) throws -> DropsRunTool.Result {
        let tool = try #require(CommandLineTests.executable("drops-run"))
        return try DropsRunTool.run(["/usr/sbin/ip", "netns", "exec", lab.lab, tool, tree, "--json"] + arguments, direct: true)
    }

    @Test func biosGuestsBootThroughIPXEAndPXELinux() throws {
        let root = try Self.trees.get()
        let lab = try LabNetwork(taps: 2)
        try serve(lab, root: root, hosts: """
            default_profile = "selftest"
            [[host]]
            mac = "52:54:00:77:00:01"
            name = "ipxe-pc"
            profile = "selftest"
            [[host]]
            mac = "52:54:00:77:00:02"
            name = "pxelinux-pc"
            profile = "selftest"
            chain = "pxelinux"
            """)
        let manifest = try TreeVerifier.loadManifest(directory: root + "/selftest")
        for (tap, mac, chain) in [("tap0", "52:54:00:77:00:01", "ipxe"), ("tap1", "52:54:00:77:00:02", "pxelinux")] {
            let run = try boot(lab, tree: root + "/selftest", ["--tap-device", tap, "--mac", mac, "--chain", chain])
            #expect(run.status == 0, "\(chain): \(run.stderr.suffix(3000))")
            #expect(run.verifiedModules == manifest.modules.count, "\(chain)")
        }
        let log = lab.log("pxe")
        #expect(log.contains("52:54:00:77:00:01 host=ipxe-pc arch=\"x86 BIOS, iPXE\" DHCPDISCOVER port 67: proxy offer selftest/boot.ipxe"), "\(log)")
        #expect(log.contains("52:54:00:77:00:02 host=pxelinux-pc arch=\"x86 BIOS, iPXE\" DHCPDISCOVER port 67: proxy offer selftest/lpxelinux.0"), "\(log)")
        // The addresses came from the site's server, never from ours.
        #expect(lab.log("site-dhcp").contains("DHCPACK(site0) 10.77.0.1"), "\(lab.log("site-dhcp"))")
        #expect(!log.contains("offer 10.77."))
    }

    /// Two machines, two profiles from one server; one of them UEFI firmware without iPXE
    /// (OVMF's own PXE over virtio), which gets ipxe.efi and then, as iPXE, the script.
    @Test func machinesGetTheirOwnProfilesOnBIOSAndUEFI() throws {
        let root = try Self.trees.get()
        try #require(FileManager.default.fileExists(atPath: "/usr/share/OVMF/OVMF_CODE.fd"), "install ovmf (make deps)")
        try #require(FileManager.default.fileExists(atPath: "/usr/lib/ipxe/ipxe.efi"), "install ipxe (make deps)")
        let lab = try LabNetwork(taps: 2)
        try serve(lab, root: root, hosts: """
            unknown = "refuse"
            [[host]]
            mac = "52:54:00:77:00:03"
            name = "uefi-pc"
            profile = "linux"
            [[host]]
            mac = "52:54:00:77:00:04"
            name = "bios-pc"
            profile = "selftest"
            """)
        let bios = try boot(lab, tree: root + "/selftest", ["--tap-device", "tap0", "--mac", "52:54:00:77:00:04"])
        #expect(bios.status == 0, "\(bios.stderr.suffix(3000))")
        let uefi = try boot(lab, tree: root + "/linux", ["--tap-device", "tap1", "--mac", "52:54:00:77:00:03", "--firmware", "uefi",
                                                         "--nic", "virtio", "--qemu-arg=-global", "--qemu-arg=virtio-net-pci.romfile="])
        #expect(uefi.status == 0, "\(uefi.stderr.suffix(3000))")
        let patterns = uefi.summary["patterns"] as? [[String: Any]] ?? []
        #expect(patterns.count == 2 && patterns.allSatisfy { $0["seconds"] is Double }, "\(patterns)")
        let log = lab.log("pxe")
        #expect(log.contains("52:54:00:77:00:03 host=uefi-pc arch=\"x86-64 UEFI\" DHCPDISCOVER port 67: proxy offer ipxe.efi"), "\(log)")
        #expect(log.contains("52:54:00:77:00:03 host=uefi-pc arch=\"x86-64 UEFI, iPXE\" DHCPDISCOVER port 67: proxy offer linux/boot.ipxe"), "\(log)")
        #expect(log.contains("52:54:00:77:00:04 host=bios-pc arch=\"x86 BIOS, iPXE\" DHCPDISCOVER port 67: proxy offer selftest/boot.ipxe"), "\(log)")
        // A transfer's line is written when its last ACK arrives, which may be after the guest printed.
        #expect(lab.waitFor("read linux/bin/vmlinuz", in: "pxe", seconds: 5) && lab.waitFor("read selftest/bin/ramdisk.img", in: "pxe", seconds: 5), "\(lab.log("pxe"))")
    }

    /// UEFI HTTP Boot: OVMF with PXE switched off (fw_cfg) asks as an HTTPClient and gets
    /// iPXE for UEFI as an http:// URI on drops-serve's HTTP listener; iPXE then boots the
    /// linux tree.
    @Test func uefiHTTPBootGetsItsBootProgramOverHTTP() throws {
        let root = try Self.trees.get()
        try #require(FileManager.default.fileExists(atPath: "/usr/share/OVMF/OVMF_CODE.fd"), "install ovmf (make deps)")
        let lab = try LabNetwork(taps: 1)
        try serve(lab, root: root, hosts: "default_profile = \"linux\"\n", arguments: ["--http-port", "8080"])
        let run = try boot(lab, tree: root + "/linux", ["--tap-device", "tap0", "--mac", "52:54:00:77:00:0c", "--firmware", "uefi", "--nic", "virtio",
                                                        "--qemu-arg=-global", "--qemu-arg=virtio-net-pci.romfile=",
                                                        "--qemu-arg=-fw_cfg", "--qemu-arg=name=opt/org.tianocore/IPv4PXESupport,string=n",
                                                        "--qemu-arg=-fw_cfg", "--qemu-arg=name=opt/org.tianocore/IPv6PXESupport,string=n"])
        let log = lab.log("pxe")
        #expect(run.status == 0, "\(run.stderr.suffix(3000))\n\(log.suffix(3000))")
        #expect(log.contains("arch=\"x86-64 UEFI HTTP\" DHCPDISCOVER port 67: proxy offer http://\(LabNetwork.serverAddress):8080/ipxe.efi"), "\(log)")
        #expect(log.contains("http GET /ipxe.efi") && log.contains("status=200"), "\(log)")
    }

    /// GRUB 2 for both firmwares. UEFI cannot load a multiboot chain: a UEFI machine given a
    /// multiboot profile gets a GRUB 2 image for x86_64-efi made at start, which loads the
    /// tree's grub.cfg and the chain and leaves the firmware before the kernel runs. A BIOS
    /// machine whose hosts entry says chain = "grub" gets the i386-pc PXE image.
    @Test func grubBootsMultibootChainsOnUEFIAndBIOS() throws {
        let root = try Self.trees.get()
        try #require(FileManager.default.fileExists(atPath: "/usr/share/OVMF/OVMF_CODE.fd"), "install ovmf (make deps)")
        try #require(GrubNetImage.unavailableReason(for: .efiX64) == nil, "install grub-efi-amd64-bin (make deps)")
        try #require(GrubNetImage.unavailableReason(for: .bios) == nil, "install grub-pc-bin (make deps)")
        let lab = try LabNetwork(taps: 2)
        try serve(lab, root: root, hosts: """
            default_profile = "selftest"
            [[host]]
            mac = "52:54:00:77:00:06"
            name = "grub-pc"
            profile = "selftest"
            chain = "grub"
            """)
        let manifest = try TreeVerifier.loadManifest(directory: root + "/selftest")
        let uefi = try boot(lab, tree: root + "/selftest", ["--tap-device", "tap0", "--mac", "52:54:00:77:00:05", "--firmware", "uefi",
                                                            "--nic", "virtio", "--qemu-arg=-global", "--qemu-arg=virtio-net-pci.romfile="])
        let bios = try boot(lab, tree: root + "/selftest", ["--tap-device", "tap1", "--mac", "52:54:00:77:00:06"])
        // Every module arrives as the manifest says, and roottask's configuration (quotes and
        // all) comes through unchanged as the file -configfile takes.
        for (name, run) in [("UEFI", uefi), ("BIOS", bios)] {
            #expect(run.status == 0, "\(name): \(run.stderr.suffix(3000))")
            #expect(run.verifiedModules == manifest.modules.count, "\(name): \(run.stderr.suffix(3000))")
            NetworkBootTests.expectConfiguration(run, from: "roottask from module 3 (-configfile)")
        }
        let log = lab.log("pxe")
        #expect(log.contains("52:54:00:77:00:05 host=- arch=\"x86-64 UEFI\" DHCPDISCOVER port 67: proxy offer selftest/grub/x86_64-efi/core.efi"), "\(log)")
        #expect(log.contains("52:54:00:77:00:06 host=grub-pc arch=\"x86 BIOS, iPXE\" DHCPDISCOVER port 67: proxy offer selftest/grub/i386-pc/core.0"), "\(log)")
        #expect(lab.waitFor("read /selftest/grub/grub.cfg", in: "pxe", seconds: 5) && lab.waitFor("read /selftest/bin/ramdisk.img", in: "pxe", seconds: 5),
                "\(lab.log("pxe"))")
    }

    /// A plain DHCP client (busybox udhcpc) gets its address from the site server and not a
    /// single datagram from ours. The capture is taken on the bridge, the interface drops-serve
    /// sends from: it holds the client's broadcasts (so the server heard them) and would hold
    /// anything the server sent. (Frames the bridge forwards between its ports, such as the
    /// site server's unicast answers, never reach it.)
    @Test func plainDHCPClientsGetNoAnswer() throws {
        let root = try Self.trees.get()
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/tcpdump"), "install tcpdump (make deps)")
        try #require(FileManager.default.isExecutableFile(atPath: Busybox.defaultPath), "install busybox-static (make deps)")
        let lab = try LabNetwork(taps: 0)
        try lab.run(["ip", "-n", lab.lab, "link", "add", "client0", "type", "veth", "peer", "name", "client0-br"])
        try lab.run(["ip", "-n", lab.lab, "link", "set", "client0-br", "master", "br0", "up"])
        try lab.run(["ip", "-n", lab.lab, "link", "set", "client0", "address", "52:54:00:77:00:09", "up"])
        try serve(lab, root: root, hosts: nil, arguments: ["--default-profile", "selftest"])
        let capture = lab.work.path + "/capture.pcap"
        let tcpdump = try lab.start(in: lab.lab, ["/usr/bin/tcpdump", "-Z", "root", "-i", "br0", "-U", "-w", capture, "udp", "port", "67", "or", "udp", "port", "68"],
                                    log: "tcpdump")
        #expect(lab.waitFor("listening on", in: "tcpdump"))
        let lease = try lab.run([Busybox.defaultPath, "udhcpc", "-i", "client0", "-n", "-q", "-t", "5", "-s", "/bin/true"], in: lab.lab)
        #expect(lease.contains("obtained from 10.77.0.1"), "\(lease)")
        usleep(500_000)
        tcpdump.stop(SIGINT)
        tcpdump.wait()
        let packets = try PacketCapture.udpPackets(path: capture)
        #expect(packets.contains { $0.sourcePort == 68 && $0.destination == "255.255.255.255" }, "the capture saw no client request: \(packets)")
        #expect(!packets.contains { $0.source == LabNetwork.serverAddress }, "drops-serve answered a plain client: \(packets)")
    }

    /// Without a site server, --dhcp-range hands out addresses and keeps them in its lease
    /// file across a restart.
    @Test func fullDHCPLeasesSurviveARestart() throws {
        let root = try Self.trees.get()
        let lab = try LabNetwork(taps: 1, siteDHCP: false)
        let leases = lab.work.path + "/leases"
        let arguments = ["--default-profile", "selftest", "--dhcp-range", "10.77.0.150-10.77.0.160", "--lease-file", leases]
        let first = try serve(lab, root: root, hosts: nil, arguments: arguments, log: "pxe-first")
        let run = try boot(lab, tree: root + "/selftest", ["--tap-device", "tap0", "--mac", "52:54:00:77:00:05"])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(lab.log("pxe-first").contains("52:54:00:77:00:05 host=- arch=\"x86 BIOS, iPXE\" DHCPDISCOVER port 67: offer 10.77.0.150, boot selftest/boot.ipxe"),
                "\(lab.log("pxe-first"))")
        let kept = (try? String(contentsOfFile: leases, encoding: .utf8)) ?? ""
        #expect(kept.contains(" 52:54:00:77:00:05 10.77.0.150\n"), "\(kept)")

        // Stopped and reaped: its ports are free before the second one binds them.
        first.stop()
        try serve(lab, root: root, hosts: nil, arguments: arguments, log: "pxe-second")
        try lab.run(["ip", "-n", lab.lab, "link", "add", "client0", "type", "veth", "peer", "name", "client0-br"])
        try lab.run(["ip", "-n", lab.lab, "link", "set", "client0-br", "master", "br0", "up"])
        try lab.run(["ip", "-n", lab.lab, "link", "set", "client0", "address", "52:54:00:77:00:0a", "up"])
        let lease = try lab.run([Busybox.defaultPath, "udhcpc", "-i", "client0", "-n", "-q", "-t", "5", "-s", "/bin/true"], in: lab.lab)
        // .150 is still the first guest's: the restarted server read it back from the file.
        #expect(lease.contains("lease of 10.77.0.151 obtained from 10.77.0.2"), "\(lease)\n\(lab.log("pxe-second"))")
    }

    /// With --dhcp-range (drops-serve is the lab network's only server), IPv6 router
    /// solicitations get an advertisement of no router, which ends iPXE's wait for one; as
    /// proxyDHCP on a site network it stays silent unless asked. The peer is ndisc6's rdisc6.
    @Test func routerSolicitationsAreAnsweredOnlyOnTheLabsOwnNetwork() throws {
        let root = try Self.trees.get()
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/rdisc6"), "install ndisc6 (make deps)")
        let lab = try LabNetwork(taps: 0, siteDHCP: false)
        try lab.run(["ip", "-n", lab.lab, "link", "add", "client0", "type", "veth", "peer", "name", "client0-br"])
        try lab.run(["ip", "-n", lab.lab, "link", "set", "client0-br", "master", "br0", "up"])
        try lab.run(["ip", "-n", lab.lab, "link", "set", "client0", "address", "52:54:00:77:00:0b", "up"])
        // rdisc6 as a client, once the client's link-local address has passed duplicate detection.
        func solicit() -> String {
            let ready = "for i in $(seq 100); do ip -6 addr show dev client0 scope link | grep -q 'inet6' && "
                + "! ip -6 addr show dev client0 | grep -q tentative && break; sleep 0.1; done; "
            return (try? lab.run(["/bin/sh", "-c", ready + "rdisc6 -1 -r 3 -w 1000 client0 2>&1; echo status=$?"], in: lab.lab)) ?? ""
        }
        let full = try serve(lab, root: root, hosts: nil, arguments: ["--default-profile", "selftest", "--dhcp-range", "10.77.0.150-10.77.0.160",
                                                                       "--lease-file", lab.work.path + "/leases"], log: "pxe-full")
        let answered = solicit()
        #expect(answered.contains("status=0") && answered.contains("Router lifetime") && answered.contains("0 (0x00000000) seconds"), "\(answered)")
        #expect(answered.contains("Stateful address conf.") && !answered.contains("Yes"), "M and O clear: \(answered)")
        #expect(lab.waitFor("router advertisement on br0 for fe80::", in: "pxe-full"), "\(lab.log("pxe-full"))")
        full.stop()
        full.wait()

        try serve(lab, root: root, hosts: nil, arguments: ["--default-profile", "selftest"], log: "pxe-proxy")
        let silent = solicit()
        #expect(silent.contains("status=2") || silent.contains("No response"), "proxyDHCP on a site network sends no advertisement: \(silent)")
        #expect(!lab.log("pxe-proxy").contains("router advertisement"))
    }

    @Test func portInUseIsRefusedBeforeServing() throws {
        let root = try Self.trees.get()
        let lab = try LabNetwork(taps: 0, siteDHCP: false)
        // Another DHCP server on the same machine holds port 67.
        try lab.start(in: lab.lab, ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
                                    "--dhcp-range=10.77.0.100,10.77.0.110,1h", "--dhcp-leasefile=\(lab.work.path)/other.leases",
                                    "--pid-file=\(lab.work.path)/other.pid", "--user=root"], log: "other")
        try #require(lab.waitForUDPPort(67), "dnsmasq did not take port 67: \(lab.log("other"))")
        let serve = try #require(CommandLineTests.executable("drops-serve"))
        let output = lab.work.path + "/refused.out"
        let child = try ChildProcess(["/usr/sbin/ip", "netns", "exec", lab.lab, serve, "pxe", "--interface", "br0", "--root", root,
                                      "--default-profile", "selftest", "--tftp-port", "6969"], output: output, errors: output)
        #expect(child.wait(seconds: 60) == 1, "drops-serve did not refuse the taken port")
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(text.contains("drops-serve: error: cannot listen on UDP port 67 of br0: the port is in use"), "\(text)")
        #expect(!text.contains("serving profiles"))
    }
}

/// Reads UDP datagrams from a pcap file (Ethernet, IPv4), for checks on what went over a bridge.
enum PacketCapture {
    struct Packet: CustomStringConvertible {
        var source: String
        var sourcePort: Int
        var destination: String
        var destinationPort: Int
        var description: String { "\(source):\(sourcePort)>\(destination):\(destinationPort)" }
    }

    static func udpPackets(path: String) throws -> [Packet] {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        guard data.count >= 24 else { return [] }
        func little32(_ at: Int) -> Int { Int(data[at]) | Int(data[at + 1]) << 8 | Int(data[at + 2]) << 16 | Int(data[at + 3]) << 24 }
        var packets: [Packet] = []
        var offset = 24
        while offset + 16 <= data.count {
            let length = little32(offset + 8)
            let start = offset + 16
            offset = start + length
            guard offset <= data.count, length >= 14 + 20 + 8, data[start + 12] == 0x08, data[start + 13] == 0x00 else { continue }
            let ip = start + 14
            let headerLength = Int(data[ip] & 0x0F) * 4
            guard data[ip + 9] == 17 else { continue }
            let udp = ip + headerLength
            func address(_ at: Int) -> String { data[at..<(at + 4)].map(String.init).joined(separator: ".") }
            packets.append(Packet(source: address(ip + 12), sourcePort: Int(data[udp]) << 8 | Int(data[udp + 1]),
                                  destination: address(ip + 16), destinationPort: Int(data[udp + 2]) << 8 | Int(data[udp + 3])))
        }
        return packets
    }
}
