import DropsModel

/// A QEMU command line that boots a tree's first stage and boot modules with QEMU's own
/// Multiboot loader. It runs in the tree's bin/ folder so every image's command line starts
/// with its plain name (QEMU puts the file name as given in front of the arguments).
public struct QEMUCommand: Sendable, Equatable {
    public var executable: String
    public var arguments: [String]
    /// The folder QEMU must run in.
    public var workingDirectory: String
    /// Words that start QEMU somewhere else, such as `ip netns exec NAME` for a private lab
    /// network; empty: QEMU runs here.
    public var launchPrefix: [String] = []

    public init(executable: String, arguments: [String], workingDirectory: String) {
        self.executable = executable
        self.arguments = arguments
        self.workingDirectory = workingDirectory
    }

    /// The I/O port of QEMU's isa-debug-exit device the probe writes to.
    public static let debugExitPort = "0xf4"
    /// QEMU's exit status when the probe writes 0x10 to the debug-exit port: (0x10 << 1) | 1.
    public static let probeExitStatus: Int32 = 33

    public static func multiboot(manifest: Manifest, treeDirectory: String, machine: MachineOptions = MachineOptions()) -> QEMUCommand {
        if manifest.firstStage.role == .linux {
            // The Linux boot protocol: QEMU loads one initrd, the first module.
            var arguments = machine.arguments(for: manifest) + [
                "-kernel", String(manifest.firstStage.path.dropFirst("bin/".count)),
                "-append", String(manifest.firstStage.cmdline.dropFirst(manifest.firstStage.name.count).drop(while: { $0 == " " })),
            ]
            if let initrd = manifest.modules.first { arguments += ["-initrd", escapeOptionValue(String(initrd.path.dropFirst("bin/".count)))] }
            return QEMUCommand(executable: executable(manifest), arguments: arguments + machine.extraArguments, workingDirectory: treeDirectory + "/bin")
        }
        let initrd = manifest.modules.map { module in
            escapeOptionValue(String(module.path.dropFirst("bin/".count)) + (module.cmdline.dropFirst(module.name.count)))
        }.joined(separator: ",")
        let firstStageArgs = String(manifest.firstStage.cmdline.dropFirst(manifest.firstStage.name.count).drop(while: { $0 == " " }))
        var arguments = machine.arguments(for: manifest) + [
            "-kernel", String(manifest.firstStage.path.dropFirst("bin/".count)),
            "-append", firstStageArgs,
        ]
        if !initrd.isEmpty { arguments += ["-initrd", initrd] }
        return QEMUCommand(executable: executable(manifest), arguments: arguments + machine.extraArguments,
                           workingDirectory: treeDirectory + "/bin")
    }

    /// A QEMU command line whose PXE firmware (QEMU's iPXE ROM) fetches `entry` from a TFTP
    /// server on the host's `port`: user networking hands the guest the boot file as a URI
    /// on 10.0.2.2, which QEMU forwards to the host's loopback (but not for port 69).
    public static func network(manifest: Manifest, entry: String, port: Int, machine: MachineOptions = MachineOptions()) -> QEMUCommand {
        let arguments = machine.arguments(for: manifest) + [
            "-netdev", "user,id=n0,bootfile=tftp://10.0.2.2:\(port)/\(entry)",
            "-device", machine.nicDevice,
            "-boot", "n",
        ]
        return QEMUCommand(executable: executable(manifest), arguments: arguments + machine.extraArguments, workingDirectory: "/")
    }

    /// Boots from the network behind an existing tap device (a lab bridge), whose own DHCP,
    /// PXE and TFTP servers serve the guest.
    public static func tapNetwork(manifest: Manifest, device: String, machine: MachineOptions = MachineOptions()) -> QEMUCommand {
        let arguments = machine.arguments(for: manifest) + [
            "-netdev", "tap,id=n0,ifname=\(escapeOptionValue(device)),script=no,downscript=no",
            "-device", machine.nicDevice,
            "-boot", "n",
        ]
        let program = machine.uefi == nil ? executable(manifest) : "qemu-system-x86_64"
        return QEMUCommand(executable: program, arguments: arguments + machine.extraArguments, workingDirectory: "/")
    }

    /// Boots a CD image from QEMU's CD drive.
    public static func cdrom(manifest: Manifest, image: String, machine: MachineOptions = MachineOptions()) -> QEMUCommand {
        let arguments = machine.arguments(for: manifest) + ["-drive", "file=\(escapeOptionValue(image)),media=cdrom,readonly=on", "-boot", "d"]
        return QEMUCommand(executable: executable(manifest), arguments: arguments + machine.extraArguments, workingDirectory: "/")
    }

    /// The same boot with QEMU's own built-in TFTP server serving `treeDirectory` instead of
    /// ours (for comparison: `drops-run --tftp qemu`).
    public static func builtinNetwork(manifest: Manifest, entry: String, treeDirectory: String,
                                      machine: MachineOptions = MachineOptions()) -> QEMUCommand {
        let arguments = machine.arguments(for: manifest) + [
            "-netdev", "user,id=n0,tftp=\(escapeOptionValue(treeDirectory)),bootfile=\(entry)",
            "-device", machine.nicDevice,
            "-boot", "n",
        ]
        return QEMUCommand(executable: executable(manifest), arguments: arguments + machine.extraArguments, workingDirectory: "/")
    }

    static func executable(_ manifest: Manifest) -> String {
        manifest.profile.arch == .ia32 ? "qemu-system-i386" : "qemu-system-x86_64"
    }

    /// QEMU places modules past the end of RAM without complaint (they read back as zeros),
    /// so give the guest twice the modules' size plus room for the kernel.
    public static func recommendedMemory(_ manifest: Manifest) -> Int {
        let total = ([manifest.firstStage] + manifest.modules).reduce(0) { $0 + $1.size }
        let mib = (2 * total) / (1 << 20) + 64
        return max(128, ((mib + 63) / 64) * 64)
    }

    /// Commas separate QEMU option items; a literal comma is written twice.
    static func escapeOptionValue(_ text: String) -> String {
        text.replacingOccurrences(of: ",", with: ",,")
    }

    /// The command with KVM turned on or off.
    public func withKVM(_ on: Bool) -> QEMUCommand {
        var copy = self
        copy.arguments.removeAll { $0 == "-enable-kvm" }
        if let index = copy.arguments.firstIndex(of: "-accel") {
            copy.arguments.removeSubrange(index...min(index + 1, copy.arguments.count - 1))
        }
        copy.arguments.insert(contentsOf: ["-accel", on ? "kvm" : "tcg"], at: 0)
        return copy
    }

    /// The command as a shell line, for logs and `--dry-run`.
    public var shellLine: String {
        (launchPrefix + [executable] + arguments).map { word in
            word.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,".contains($0) }) ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}

/// The virtual machine around the boot: the same for every chain.
public struct MachineOptions: Sendable, Equatable {
    /// Guest memory; nil picks `QEMUCommand.recommendedMemory`.
    public var memoryMiB: Int?
    public var cpus = 1
    public var nic = "e1000"
    /// True: KVM, false: TCG (software).
    public var kvm = false
    /// More QEMU arguments, appended as given (`--qemu-arg`).
    public var extraArguments: [String] = []
    /// The network card's MAC address; nil lets QEMU choose.
    public var mac: String?
    /// UEFI firmware (OVMF): its code image and a writable copy of its variable store.
    public var uefi: (code: String, variables: String)?

    public static func == (lhs: MachineOptions, rhs: MachineOptions) -> Bool {
        lhs.memoryMiB == rhs.memoryMiB && lhs.cpus == rhs.cpus && lhs.nic == rhs.nic && lhs.kvm == rhs.kvm
            && lhs.extraArguments == rhs.extraArguments && lhs.mac == rhs.mac && lhs.uefi?.code == rhs.uefi?.code
            && lhs.uefi?.variables == rhs.uefi?.variables
    }

    /// Where Debian's ovmf package puts the firmware.
    public static let ovmfCode = "/usr/share/OVMF/OVMF_CODE.fd"
    public static let ovmfVariables = "/usr/share/OVMF/OVMF_VARS.fd"

    var nicDevice: String { "\(nic),netdev=n0" + (mac.map { ",mac=\($0)" } ?? "") }

    public init(memoryMiB: Int? = nil, cpus: Int = 1, nic: String = "e1000", kvm: Bool = false, extraArguments: [String] = []) {
        self.memoryMiB = memoryMiB
        self.cpus = cpus
        self.nic = nic
        self.kvm = kvm
        self.extraArguments = extraArguments
    }

    /// The network card models QEMU's PXE ROMs cover (`--nic`), with the model QEMU calls them by.
    public static let nicModels: [String: String] = [
        "e1000": "e1000", "rtl8139": "rtl8139", "pcnet": "pcnet", "ne2k_pci": "ne2k_pci",
        "virtio": "virtio-net-pci", "virtio-net-pci": "virtio-net-pci",
    ]

    func arguments(for manifest: Manifest) -> [String] {
        var arguments = [
            "-accel", kvm ? "kvm" : "tcg",
            "-display", "none", "-serial", "stdio", "-monitor", "none",
            // A guest reset ends QEMU with status 0 instead of booting again unseen.
            "-no-reboot",
            "-m", String(memoryMiB ?? QEMUCommand.recommendedMemory(manifest)),
            "-device", "isa-debug-exit,iobase=\(QEMUCommand.debugExitPort),iosize=0x04",
        ]
        if cpus > 1 { arguments += ["-smp", String(cpus)] }
        if let uefi {
            arguments += ["-drive", "if=pflash,format=raw,readonly=on,file=\(QEMUCommand.escapeOptionValue(uefi.code))",
                          "-drive", "if=pflash,format=raw,file=\(QEMUCommand.escapeOptionValue(uefi.variables))"]
        }
        return arguments
    }
}
