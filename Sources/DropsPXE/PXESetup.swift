import DropsImage
import DropsModel
import Foundation
import Logging

/// Everything `drops-serve pxe` checks and makes before it serves: the interface, the hosts
/// file against the trees in the root, the boot programs, the lease pool. Any problem is an
/// error here, before a single packet is answered.
public struct PXESetup: Sendable {
    public var interface: NetworkInterface
    public var responder: PXEResponder
    /// Root-relative name -> real path, served beside the root (boot programs).
    public var extraFiles: [String: String]
    public var leaseFile: String?
    /// Lines for the log once serving starts.
    public var summary: [String]
    /// A folder of boot images made for this run, removed at the end.
    var scratch: String?

    /// Where Debian's ipxe package puts its boot programs.
    public static let ipxeFolder = "/usr/lib/ipxe"

    public static func prepare(interfaceName: String, root: String, hostsFile: String?, defaultProfile: String?, chain: BootChain,
                               dhcpRange: String?, leaseFile: String?, leaseSeconds: UInt64, tftpPort: Int,
                               router: String? = nil, logger: Logger) throws -> PXESetup {
        let interface = try NetworkInterface.find(interfaceName)
        let hosts = try hostsFile.map { path throws(ModelError) in try HostTable.load(path: path) } ?? HostTable()
        let trees = try servedTrees(root: root)

        // Every profile named anywhere must have a tree.
        let built = trees.keys.sorted()
        func missing(_ profile: String) -> String {
            "profile '\(profile)' has no image in \(root) (built there: \(built.isEmpty ? "none" : built.joined(separator: ", "))); "
                + "build it with drops-build profile \(profile), or name another"
        }
        for host in hosts.hosts where trees[host.profile] == nil {
            throw SetupError("\(host.location): host \(host.name): \(missing(host.profile))")
        }
        var fallback = defaultProfile ?? hosts.defaultProfile
        if let profile = fallback, trees[profile] == nil {
            let origin = defaultProfile != nil ? "--default-profile" : hosts.defaultProfileLocation.map { "\($0): default_profile" } ?? "default_profile"
            throw SetupError("\(origin): \(missing(profile))")
        }
        if fallback == nil, hosts.unknown == .boot {
            guard built.count == 1 else {
                throw SetupError("no profile for machines outside the hosts file: pass --default-profile NAME (built in \(root): "
                    + "\(built.isEmpty ? "none" : built.joined(separator: ", "))), or set unknown = \"refuse\" in the hosts file")
            }
            fallback = built[0]
        }

        var extraFiles: [String: String] = [:]
        var firmware = FirmwarePrograms()
        for (name, keyPath) in [("undionly.kpxe", \FirmwarePrograms.undionly), ("ipxe.efi", \FirmwarePrograms.ipxeEFI)] {
            // Debian links some of them to versioned files; the server opens no links.
            let path = URL(fileURLWithPath: ipxeFolder + "/" + name).resolvingSymlinksInPath().path
            if FileManager.default.fileExists(atPath: path) {
                firmware[keyPath: keyPath] = name
                extraFiles[name] = path
            }
        }
        let chains = Set([chain] + hosts.hosts.compactMap { $0.chain.flatMap(BootChain.init(rawValue:)) })
        if chains.contains(.ipxe), firmware.undionly == nil {
            logger.warning("\(ipxeFolder)/undionly.kpxe is missing (Debian package ipxe): BIOS PXE ROMs other than iPXE cannot take the ipxe chain")
        }

        // GRUB 2 images name the server's address, so they are made per run: for BIOS PCs
        // when a chain asks for GRUB, and for UEFI PCs whenever a tree is a multiboot chain
        // (UEFI boots those only through GRUB), or a Linux tree has no ipxe.efi to go by.
        if chains.contains(.grub), let reason = GrubNetImage.unavailableReason(for: .bios) { throw SetupError("--chain grub: \(reason)") }
        let efiGrubMissing = GrubNetImage.unavailableReason(for: .efiX64)
        var withoutUEFI: [String] = []
        var scratch: String?
        func makeGrub(_ platform: GrubNetImage.Platform, tree: String) throws -> String {
            let folder = try scratch ?? makeScratch()
            scratch = folder
            let relative = "\(tree)/\(platform.entry)"
            let output = folder + "/" + relative
            try FileManager.default.createDirectory(atPath: parentDirectory(of: output), withIntermediateDirectories: true)
            try GrubNetImage.make(platform, server: interface.address.description, port: tftpPort == 69 ? nil : tftpPort, tree: tree, output: output)
            extraFiles[relative] = output
            return relative
        }
        var profiles: [String: ServedProfile] = [:]
        for (name, isLinux) in trees {
            var profile = ServedProfile(name: name, isLinux: isLinux)
            if chains.contains(.grub) { profile.grubBIOS = try makeGrub(.bios, tree: name) }
            if !isLinux || firmware.ipxeEFI == nil {
                if efiGrubMissing == nil { profile.grubEFI = try makeGrub(.efiX64, tree: name) } else { withoutUEFI.append(name) }
            }
            profiles[name] = profile
        }
        if let efiGrubMissing, !withoutUEFI.isEmpty {
            logger.warning("UEFI machines get no answer for \(withoutUEFI.sorted().joined(separator: ", ")): \(efiGrubMissing)")
        }

        var leases: LeasePool?
        var leasePath: String?
        var routerAddress: IPv4?
        if let router {
            guard dhcpRange != nil else { throw SetupError("--router \(router) goes with --dhcp-range: only a full DHCP server names the router") }
            guard let address = IPv4(router), interface.contains(address) else {
                throw SetupError("--router \(router) is not an address on \(interface.name)'s network \(interface.network)/\(interface.netmask); give the lab router's address")
            }
            routerAddress = address
        }
        if let dhcpRange {
            let (first, last) = try parseRange(dhcpRange)
            guard interface.contains(first), interface.contains(last) else {
                throw PXEServerError.rangeOutsideNetwork(dhcpRange, interface: interface.name, network: "\(interface.network)/\(interface.netmask)")
            }
            guard !(first...last).contains(interface.address) else {
                throw SetupError("--dhcp-range \(dhcpRange) includes the server's own address \(interface.address); leave it out of the range")
            }
            let path = leaseFile ?? ProcessInfo.processInfo.environment["STATE_DIRECTORY"].map { $0 + "/dhcp-leases" } ?? "drops-dhcp-leases"
            leases = LeasePool(first: first, last: last, subnetMask: interface.netmask, leaseSeconds: leaseSeconds,
                               leases: try PXEServer.loadLeases(path: path))
            leasePath = path
        }

        let policy = BootPolicy(hosts: hosts, defaultProfile: fallback, chain: chain, profiles: profiles, firmware: firmware)
        var summary = ["serving profiles \(built.joined(separator: ", ")) from \(root); BIOS chain \(chain.rawValue)"
            + "; unknown machines: \(hosts.unknown == .refuse ? "refused" : fallback.map { "boot \($0)" } ?? "refused")"]
        if !hosts.hosts.isEmpty { summary.append("\(hosts.hosts.count) machine(s) in the hosts file") }
        if let leasePath { summary.append("leases kept in \(leasePath)") }
        return PXESetup(interface: interface, responder: PXEResponder(serverAddress: interface.address, policy: policy, leases: leases, router: routerAddress),
                        extraFiles: extraFiles, leaseFile: leasePath, summary: summary, scratch: scratch)
    }

    /// The image trees of the root: folders with a manifest.json, and whether each boots Linux.
    static func servedTrees(root: String) throws -> [String: Bool] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else {
            throw SetupError("the served root \(root) does not exist; build an image first (drops-build profile NAME) or pass --root")
        }
        var trees: [String: Bool] = [:]
        for name in names where !name.hasPrefix(".") {
            let manifestPath = "\(root)/\(name)/manifest.json"
            guard let data = FileManager.default.contents(atPath: manifestPath) else { continue }
            guard let manifest = try? JSONDecoder().decode(Manifest.self, from: data) else {
                throw SetupError("\(manifestPath) cannot be read as a drops manifest; rebuild the tree with drops-build profile \(name)")
            }
            trees[name] = manifest.profile.api == .linux
        }
        return trees
    }

    static func parseRange(_ text: String) throws(PXEServerError) -> (IPv4, IPv4) {
        let parts = text.split(separator: "-")
        guard parts.count == 2, let first = IPv4(String(parts[0])), let last = IPv4(String(parts[1])), first <= last else {
            throw .badRange(text)
        }
        return (first, last)
    }

    static func makeScratch() throws -> String {
        let path = NSTemporaryDirectory() + "drops-pxe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    public func removeScratch() {
        if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
    }
}

/// A setup problem, already worded for the person running the command.
public struct SetupError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
