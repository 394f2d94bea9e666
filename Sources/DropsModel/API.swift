/// The L4 interface a profile targets. The differences between APIs live in data
/// (the rule table below and the profiles), so code never branches on an API.
public enum API: String, Sendable, Codable, CaseIterable {
    /// Fiasco with the L4 V2 API and no L4Env.
    case v2
    /// Hazelnut, L4 X.0.
    case x0
    /// Pistachio, L4 X.2.
    case x2
    /// Fiasco V2 with the L4Env servers.
    case l4env
    /// L4Re on Fiasco, the successor of L4Env.
    case l4re
    /// Any Multiboot 1 chain with no L4-specific rules.
    case multiboot
    /// Plain Linux booted with the Linux boot protocol (bzImage and an initrd): the reference
    /// check that a RAM disk mounts, and a known-good system for a lab PC.
    case linux
}

/// CPU architecture of the booted system's binaries.
public enum Architecture: String, Sendable, Codable, CaseIterable {
    case ia32
    case amd64

    /// The ELF `e_machine` value binaries of this architecture carry.
    public var elfMachine: UInt16 { self == .ia32 ? 3 : 62 }
    /// The ELF class (1 = 32-bit, 2 = 64-bit).
    public var elfClass: UInt8 { self == .ia32 ? 1 : 2 }
}

/// What a component does in the boot chain. Order rules and inspection defaults hang off it.
public enum Role: String, Sendable, Codable, CaseIterable {
    // First-stage images: the one the boot loader starts as the Multiboot kernel.
    case bootstrap, rmgr, kickstart
    /// A generic Multiboot image in the first-stage slot (for example the probe kernel).
    case multiboot
    /// A Linux kernel (bzImage) in the first-stage slot, started with the Linux boot protocol.
    case linux
    // Boot modules.
    case kernel, sigma0, roottask, moe, ned, io
    case names, log, dm_phys, simple_ts, l4io, tftp, loader, l4con
    case l4linux, ramdisk, config, symbols, lines
    /// Any other L4 program started by the root task or the loader.
    case server
    /// Any other file that is not a program.
    case data

    /// Roles that may sit in the first-stage slot.
    public static let firstStage: Set<Role> = [.bootstrap, .rmgr, .kickstart, .multiboot, .linux]

    /// How a component in this role is inspected unless the profile says otherwise.
    public var defaultInspection: Inspection {
        switch self {
        case .bootstrap, .rmgr, .kickstart, .multiboot: return .multiboot
        case .linux: return .bzimage
        case .ramdisk, .config, .symbols, .lines, .data: return .data
        default: return .elf
        }
    }
}

/// What the builder checks a component's bytes for.
public enum Inspection: String, Sendable, Codable, CaseIterable {
    /// A Multiboot 1 image: a valid header in the first 8192 bytes, or an ELF32 a loader can load.
    case multiboot
    /// An ELF executable of the profile's architecture.
    case elf
    /// Opaque bytes (RAM disks, configuration files).
    case data
    /// A Linux kernel image for the x86 boot protocol (`HdrS` at 0x202).
    case bzimage
}

/// How a module reaches the target.
public enum Delivery: String, Sendable, Codable, CaseIterable {
    /// Loaded by the boot loader as a Multiboot module.
    case boot
    /// Placed in the tree and fetched by the running system through the TFTP file provider.
    case runtime
}
