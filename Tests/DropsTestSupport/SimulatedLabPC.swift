import DropsModel
import DropsQEMU
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A lab PC played by a QEMU guest, driven the way a real one is: OpenIPMI's ipmi_sim is its
/// BMC (chassis power starts and stops the guest), its serial port goes through a null-modem
/// cable to ser2net, which exports it on a telnet port, and it netboots from the namespace
/// lab's bridge, where dnsmasq is the site's DHCP server. drops-run knows only the hosts file.
public final class SimulatedLabPC {
    public static var available: Bool {
        LabNetwork.available && ["/usr/bin/ipmi_sim", "/usr/bin/ipmitool", "/usr/sbin/ser2net"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public let lab: LabNetwork
    public let cable: SerialCable
    public let mac = "52:54:00:77:01:01"
    public let bmcPort = 9623
    public let consolePort = 7007
    public let guestMarker: String
    public private(set) var bmc: ChildProcess?
    public private(set) var consoleServer: ChildProcess?

    /// `serialConnected: false`: the PC's serial port leads nowhere (a console on the wrong port).
    /// `serialOverLAN`: the console is the BMC's Serial-over-LAN instead of ser2net.
    /// `firmware`: what the hosts file says of it (default: what it is).
    public init(manifest: Manifest, mac guestMAC: String? = nil, chain: String = "ipxe", uefi: Bool = false, serialConnected: Bool = true,
                serialOverLAN: Bool = false, firmware: String? = nil) throws {
        lab = try LabNetwork(taps: 1)
        cable = try SerialCable()
        let work = lab.work
        // The guest as a PC: its network card on the lab's tap, its serial port the cable's end.
        var machine = MachineOptions()
        machine.mac = guestMAC ?? mac
        if uefi {
            // OVMF's own network stack (no iPXE option ROM), as on a UEFI PC; its own copy of the variables.
            try FileManager.default.copyItem(atPath: MachineOptions.ovmfVariables, toPath: work.path + "/OVMF_VARS.fd")
            machine.uefi = (MachineOptions.ovmfCode, work.path + "/OVMF_VARS.fd")
            machine.memoryMiB = 512
            machine.nic = MachineOptions.nicModels["virtio"] ?? "virtio-net-pci"
            machine.extraArguments = ["-global", "virtio-net-pci.romfile="]
        }
        var command = QEMUCommand.tapNetwork(manifest: manifest, device: "tap0", machine: machine)
        if let serial = command.arguments.firstIndex(of: "stdio") { command.arguments[serial] = serialConnected ? cable.left.device : "null" }
        // The guest is found by a name only it carries (every lab's guest has the same MAC).
        guestMarker = "guest-" + lab.lab
        command.arguments += ["-name", guestMarker]
        let qemu = LabNetwork.resolve(command.executable)
        work.write("pc.sh", text: "#!/bin/sh\nexec \(([qemu] + command.arguments).map { "'\($0)'" }.joined(separator: " ")) > \(work.path)/pc.out 2>&1\n")
        chmod(work.path + "/pc.sh", 0o755)
        IPMISimulatorFiles.write(into: work, name: "labpc", port: bmcPort, startCommand: work.path + "/pc.sh", password: "lab-secret", powerOffSeconds: 2,
                                 solDevice: serialOverLAN ? cable.right.device : nil)
        work.write("bmc.password", text: "lab-secret\n")
        chmod(work.path + "/bmc.password", 0o600)
        try FileManager.default.createDirectory(atPath: work.path + "/bmc-state", withIntermediateDirectories: true)
        work.write("ser2net.yaml", text: """
            connection: &pc
                accepter: telnet,tcp,127.0.0.1,\(consolePort)
                connector: serialdev,\(cable.right.device),115200n81,local
            """)
        work.write("lab-pcs.toml", text: """
            [[host]]
            mac = "\(mac)"
            name = "lab-pc1"
            profile = "selftest"
            chain = "\(chain)"
            firmware = "\(firmware ?? (uefi ? "uefi" : "bios"))"
            power = { ipmi = { host = "127.0.0.1", port = \(bmcPort), user = "lab", password_file = "bmc.password" }, deadline = 15 }
            console = "\(serialOverLAN ? "ipmi-sol" : "tcp://127.0.0.1:\(consolePort)")"
            """)
        try startBMC()
        if !serialOverLAN { try startConsoleServer() }
    }

    public func startBMC() throws {
        bmc = try lab.start(in: lab.lab, ["/usr/bin/ipmi_sim", "-c", lab.work.path + "/lan.conf", "-f", lab.work.path + "/sim.emu", "-n",
                                          "-s", lab.work.path + "/bmc-state"], log: "bmc")
        guard lab.waitForUDPPort(bmcPort) else { throw LabSetupError("ipmi_sim does not listen on UDP port \(bmcPort): \(lab.log("bmc"))") }
    }

    public func stopBMC() { bmc?.stop(SIGKILL) }

    public func startConsoleServer() throws {
        consoleServer = try lab.start(in: lab.lab, ["/usr/sbin/ser2net", "-n", "-c", lab.work.path + "/ser2net.yaml"], log: "ser2net")
        usleep(500_000)
    }

    public func stopConsoleServer() { consoleServer?.stop() }

    public var hostsFile: String { lab.work.path + "/lab-pcs.toml" }

    /// Whether the guest runs (ipmi_sim started it and has not stopped it).
    public var guestRuns: Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.contains { pid in
            Int(pid) != nil && (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map {
                String(decoding: $0, as: UTF8.self).contains(guestMarker) } ?? false)
        }
    }

    deinit {
        stopConsoleServer()
        stopBMC()
        // What ipmi_sim started goes with it.
        _ = try? ChildProcess(["/usr/bin/pkill", "-f", lab.work.path + "/pc.sh"]).wait()
        _ = try? ChildProcess(["/usr/bin/pkill", "-f", guestMarker]).wait()
    }
}

/// A lab that could not be set up (a peer that did not start).
public struct LabSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
