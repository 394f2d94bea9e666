import DropsModel

/// A QEMU command line that boots a tree's first stage and boot modules with QEMU's own
/// Multiboot loader. It runs in the tree's bin/ folder so every image's command line starts
/// with its plain name (QEMU puts the file name as given in front of the arguments).
public struct QEMUCommand: Sendable, Equatable {
    public var executable: String
    public var arguments: [String]
    /// The folder QEMU must run in.
    public var workingDirectory: String

    /// The I/O port of QEMU's isa-debug-exit device the probe writes to.
    public static let debugExitPort = "0xf4"
    /// QEMU's exit status when the probe writes 0x10 to the debug-exit port: (0x10 << 1) | 1.
    public static let probeExitStatus: Int32 = 33

    public static func multiboot(manifest: Manifest, treeDirectory: String, memoryMiB: Int? = nil) -> QEMUCommand {
        let executable = manifest.profile.arch == .ia32 ? "qemu-system-i386" : "qemu-system-x86_64"
        let initrd = manifest.modules.map { module in
            escapeOptionValue(String(module.path.dropFirst("bin/".count)) + (module.cmdline.dropFirst(module.name.count)))
        }.joined(separator: ",")
        let firstStageArgs = String(manifest.firstStage.cmdline.dropFirst(manifest.firstStage.name.count).drop(while: { $0 == " " }))
        var arguments = [
            "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-m", String(memoryMiB ?? recommendedMemory(manifest)),
            "-device", "isa-debug-exit,iobase=\(debugExitPort),iosize=0x04",
            "-kernel", String(manifest.firstStage.path.dropFirst("bin/".count)),
            "-append", firstStageArgs,
        ]
        if !initrd.isEmpty { arguments += ["-initrd", initrd] }
        return QEMUCommand(executable: executable, arguments: arguments, workingDirectory: treeDirectory + "/bin")
    }

    /// A QEMU command line whose PXE firmware (QEMU's iPXE ROM) fetches `entry` from a TFTP
    /// server on the host's `port`: user networking hands the guest the boot file as a URI
    /// on 10.0.2.2, which QEMU forwards to the host's loopback (but not for port 69).
    public static func network(manifest: Manifest, entry: String, port: Int, nic: String = "e1000", memoryMiB: Int? = nil) -> QEMUCommand {
        let executable = manifest.profile.arch == .ia32 ? "qemu-system-i386" : "qemu-system-x86_64"
        let arguments = [
            "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-m", String(memoryMiB ?? recommendedMemory(manifest)),
            "-device", "isa-debug-exit,iobase=\(debugExitPort),iosize=0x04",
            "-netdev", "user,id=n0,bootfile=tftp://10.0.2.2:\(port)/\(entry)",
            "-device", "\(nic),netdev=n0",
            "-boot", "n",
        ]
        return QEMUCommand(executable: executable, arguments: arguments, workingDirectory: "/")
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

    /// The command as a shell line, for logs and `--dry-run`.
    public var shellLine: String {
        ([executable] + arguments).map { word in
            word.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,".contains($0) }) ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}
