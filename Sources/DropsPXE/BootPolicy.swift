import DropsModel

/// The boot chains a BIOS PC can take into a DROPS image.
public enum BootChain: String, Sendable, CaseIterable {
    /// undionly.kpxe, then the profile's boot.ipxe.
    case ipxe
    /// The tree's lpxelinux.0, pxelinux.cfg/default and mboot.c32.
    case pxelinux
    /// A GRUB 2 PXE image made for the tree, then its grub/grub.cfg.
    case grub
}

/// What the server knows about one profile folder of the served root.
public struct ServedProfile: Sendable, Equatable {
    public var name: String
    /// The image boots a Linux kernel (boot.ipxe uses `kernel`/`initrd`), which iPXE can do on
    /// UEFI too; multiboot chains need GRUB there.
    public var isLinux: Bool
    /// Root-relative names of the boot programs made for this tree at start, if any.
    public var grubBIOS: String?
    public var grubEFI: String?

    public init(name: String, isLinux: Bool, grubBIOS: String? = nil, grubEFI: String? = nil) {
        self.name = name
        self.isLinux = isLinux
        self.grubBIOS = grubBIOS
        self.grubEFI = grubEFI
    }
}

/// Boot programs from Debian packages, served under root-level names.
public struct FirmwarePrograms: Sendable, Equatable {
    /// `undionly.kpxe` (Debian package ipxe) for BIOS PXE ROMs.
    public var undionly: String?
    /// `ipxe.efi` (Debian package ipxe) for x86-64 UEFI.
    public var ipxeEFI: String?

    public init(undionly: String? = nil, ipxeEFI: String? = nil) {
        self.undionly = undionly
        self.ipxeEFI = ipxeEFI
    }
}

/// A machine pointed at a profile for a while (by a drops-run through the control socket),
/// before the hosts file and the defaults.
public struct BootOverride: Sendable, Equatable {
    public var profile: String
    public var chain: BootChain?

    public init(profile: String, chain: BootChain? = nil) {
        self.profile = profile
        self.chain = chain
    }
}

/// Which machine boots what, from what: the hosts file, the command line's defaults and
/// what the served root holds.
public struct BootPolicy: Sendable {
    public var hosts: HostTable
    public var defaultProfile: String?
    public var chain: BootChain
    public var profiles: [String: ServedProfile]
    public var firmware: FirmwarePrograms
    /// By normalized MAC address: what a run asked this machine to boot.
    public var overrides: [String: BootOverride] = [:]

    public init(hosts: HostTable, defaultProfile: String?, chain: BootChain, profiles: [String: ServedProfile], firmware: FirmwarePrograms) {
        self.hosts = hosts
        self.defaultProfile = defaultProfile
        self.chain = chain
        self.profiles = profiles
        self.firmware = firmware
    }

    /// The boot file for a client, or why it gets none.
    public func choose(for client: PXEClient) -> Result<BootChoice, BootRefusal> {
        let host = hosts.host(mac: client.mac.description)
        let override = HostTable.normalizedMAC(client.mac.description).flatMap { overrides[$0] }
        guard let profileName = override?.profile ?? host?.profile ?? defaultProfile ?? hosts.defaultProfile,
              override != nil || host != nil || hosts.unknown == .boot else {
            return .failure(BootRefusal(reason: "unknown machine, not in the hosts file (unknown = \"refuse\" or no default profile)"))
        }
        let hostName = host?.name ?? "-"
        guard let profile = profiles[profileName] else {
            return .failure(BootRefusal(reason: "profile \(profileName) has no image in the served root"))
        }
        let chain = override?.chain ?? host?.chain.flatMap(BootChain.init(rawValue:)) ?? chain
        func choice(_ file: String, _ how: String) -> Result<BootChoice, BootRefusal> {
            .success(BootChoice(hostName: hostName, profile: profileName, file: file, how: how))
        }
        switch client.architecture {
        case .x86BIOS:
            switch chain {
            case .ipxe:
                if client.isIPXE { return choice("\(profileName)/boot.ipxe", "iPXE script") }
                guard let undionly = firmware.undionly else {
                    return .failure(BootRefusal(reason: "no undionly.kpxe to serve (install Debian's ipxe package) or choose --chain pxelinux"))
                }
                return choice(undionly, "iPXE for a BIOS PXE ROM, then \(profileName)/boot.ipxe")
            case .pxelinux:
                return choice("\(profileName)/lpxelinux.0", "PXELINUX")
            case .grub:
                guard let grub = profile.grubBIOS else {
                    return .failure(BootRefusal(reason: "no GRUB 2 PXE image for \(profileName) (install grub-pc-bin) or choose another chain"))
                }
                return choice(grub, "GRUB 2 (i386-pc)")
            }
        case .efiX64, .efiX64HTTP:
            if profile.isLinux {
                if client.isIPXE { return choice("\(profileName)/boot.ipxe", "iPXE script") }
                if let ipxe = firmware.ipxeEFI { return choice(ipxe, "iPXE for UEFI, then \(profileName)/boot.ipxe") }
            }
            guard let grub = profile.grubEFI else {
                return .failure(BootRefusal(reason: profile.isLinux
                    ? "no UEFI boot program for \(profileName): install Debian's ipxe or grub-efi-amd64-bin"
                    : "\(profileName) is a multiboot chain, which UEFI boots only through GRUB 2: install grub-efi-amd64-bin"))
            }
            return choice(grub, "GRUB 2 (x86_64-efi)")
        case .efiIA32, .other:
            return .failure(BootRefusal(reason: "no boot program for \(client.architecture)"))
        }
    }
}

/// A decision to boot a machine.
public struct BootChoice: Sendable, Equatable {
    public var hostName: String
    public var profile: String
    /// Root-relative TFTP name.
    public var file: String
    /// What the file is, for the log.
    public var how: String
}

/// Why a PXE client gets no answer.
public struct BootRefusal: Error, Sendable, Equatable {
    public var reason: String
}
