import ArgumentParser
import DropsCLI
import DropsHTTP
import DropsPXE
import DropsTFTP
import Foundation
import Logging
import NIOCore
import NIOPosix

struct ServePXE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pxe",
        abstract: "Netboot a lab's PCs: proxyDHCP beside the site's DHCP server, plus TFTP.",
        discussion: """
            Runs proxyDHCP (UDP 67 and 4011) and the TFTP server of 'drops-serve tftp' on one \
            interface, in one process. The site's DHCP server keeps handing out addresses; \
            drops-serve answers only requests whose vendor class starts with PXEClient, never \
            offers an address, and tells the firmware which file to boot from this machine. \
            Other DHCP traffic is left alone.

            What a machine boots: the hosts file (--hosts) maps MAC addresses to a name and a \
            profile; machines not in it get --default-profile (or the hosts file's \
            default_profile), or nothing when the hosts file says unknown = "refuse". Each \
            profile is a folder of --root made by 'drops-build profile NAME', and the boot file \
            path carries it (l4env/boot.ipxe), so every PC gets its own system from one server.

            Boot files by firmware (option 93):
              BIOS, --chain ipxe      undionly.kpxe (package ipxe), then boot.ipxe
              BIOS, --chain pxelinux  PROFILE/lpxelinux.0 and its pxelinux.cfg/
              BIOS, --chain grub      a GRUB 2 PXE image made at start
              UEFI, linux profiles    ipxe.efi (package ipxe), then boot.ipxe
              UEFI, multiboot         a GRUB 2 x86_64-efi image made at start
                                      (package grub-efi-amd64-bin), then grub.cfg
              already iPXE            PROFILE/boot.ipxe at once (no iPXE loop)
              UEFI HTTP Boot          the UEFI boot program as an http:// URI on the
                                      --http-port listener (vendor class HTTPClient)

            --dhcp-range FIRST-LAST makes this a full DHCP server for an isolated lab network \
            with no other DHCP server: every client gets an address and our address as its \
            next server (siaddr), --router names the router (leases are kept in \
            --lease-file and survive restarts), PXE clients their boot file as well. Without it \
            no address is ever handed out. With --dhcp-range, IPv6 router solicitations are \
            answered too (--router-advert): iPXE then skips its 15 s wait for an IPv6 router.

            A control socket (--control; owner only) lets drops-run --host point a machine at \
            a profile for the length of its run and follow its DHCP and TFTP progress; the \
            machine reverts when the run's connection closes, even if the run was killed.

            One log line per PXE exchange: MAC, host name, architecture, request, what was \
            offered. Needs root (or CAP_NET_BIND_SERVICE and CAP_NET_RAW) for ports 67, 69 \
            and 4011 and for binding to the interface.

            Examples:
              drops-serve pxe --interface eth1 --default-profile l4env
              drops-serve pxe --interface eth1 --hosts lab-hosts.toml --chain pxelinux
              drops-serve pxe --interface lab0 --dhcp-range 10.0.0.100-10.0.0.199 --default-profile selftest
            """)

    @Option(name: .long, help: ArgumentHelp("Network interface of the lab (its IPv4 address is the server's).", valueName: "name"))
    var interface: String

    @Option(name: .long, help: ArgumentHelp("Hosts file (TOML): MAC address -> name, profile, chain.", valueName: "file"))
    var hosts: String?

    @Option(name: .customLong("default-profile"), help: ArgumentHelp(
        "Profile for machines the hosts file does not list (default: the hosts file's default_profile, or the only tree in --root).",
        valueName: "name"))
    var defaultProfile: String?

    @Option(name: .long, help: ArgumentHelp("How BIOS machines boot: ipxe, pxelinux or grub.", valueName: "chain"))
    var chain = "ipxe"

    @Option(name: .customLong("dhcp-range"), help: ArgumentHelp("Hand out addresses FIRST-LAST too (isolated lab networks only).", valueName: "range"))
    var dhcpRange: String?

    @Option(name: .customLong("lease-file"), help: ArgumentHelp(
        "Where --dhcp-range keeps its leases (default: $STATE_DIRECTORY/dhcp-leases, or ./drops-dhcp-leases).", valueName: "file"))
    var leaseFile: String?

    @Option(name: .customLong("lease-time"), help: ArgumentHelp("Lease length with --dhcp-range.", valueName: "seconds"))
    var leaseTime = 3600

    @Option(name: .long, help: ArgumentHelp(
        "With --dhcp-range: the lab network's router, named in every address answer (DHCP option 3; default: none).", valueName: "address"))
    var router: String?

    @Option(name: .customLong("tftp-port"), help: ArgumentHelp("UDP port of the TFTP server.", valueName: "port"))
    var tftpPort = 69

    @Option(name: .long, help: ArgumentHelp(
        "Control socket for drops-run --host (owner only; default: pxe-INTERFACE.sock in $RUNTIME_DIRECTORY, /run/drops as root, else $XDG_RUNTIME_DIR/drops).",
        valueName: "path"))
    var control: String?

    @Option(name: .customLong("router-advert"), help: ArgumentHelp(
        "Answer IPv6 router solicitations with an advertisement of no router: auto (with --dhcp-range only), on or off.",
        discussion: "iPXE waits about 15 s for an IPv6 router after its DHCP answer on every boot of a network that has none; this answer ends the wait at once. Leave it off on a network with IPv6 routers.",
        valueName: "mode"))
    var routerAdvert = "auto"

    @Flag(name: .customLong("no-control"), help: "Do not open the control socket.")
    var noControl = false

    @OptionGroup var transfer: TransferOptions

    func validate() throws {
        guard BootChain(rawValue: chain) != nil else { throw ValidationError("--chain is ipxe, pxelinux or grub") }
        guard (1...65535).contains(tftpPort) else { throw ValidationError("--tftp-port must be 1 to 65535") }
        guard leaseTime >= 60 else { throw ValidationError("--lease-time must be at least 60 seconds") }
        guard ["auto", "on", "off"].contains(routerAdvert) else { throw ValidationError("--router-advert is auto, on or off") }
    }

    func run() throws {
        CommandMain.bootstrapLogging(transfer.quiet ? .warning : .notice)
        let logger = Logger(label: "drops.pxe")
        let setup: PXESetup
        do {
            setup = try PXESetup.prepare(interfaceName: interface, root: transfer.root, hostsFile: hosts, defaultProfile: defaultProfile,
                                         chain: BootChain(rawValue: chain)!, dhcpRange: dhcpRange, leaseFile: leaseFile,
                                         leaseSeconds: UInt64(leaseTime), tftpPort: tftpPort, router: router, logger: logger)
        } catch {
            throw CommandFailure("\(error)")
        }
        defer { setup.removeScratch() }

        var tftpConfiguration = transfer.configuration(host: setup.interface.address.description, port: tftpPort)
        tftpConfiguration.extraFiles = setup.extraFiles
        let termination = TerminationSignals()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: transfer.threads)
        let tftp: TFTPServer
        let pxe: PXEServer
        do {
            tftp = try TFTPServer(configuration: tftpConfiguration, group: group)
            var responder = setup.responder
            // UEFI HTTP Boot clients get their boot program's URI on our HTTP listener.
            if let httpPort = transfer.httpPort { responder.httpBase = "http://\(transfer.httpAddress ?? setup.interface.address.description):\(httpPort)" }
            var configuration = PXEServer.Configuration(interface: setup.interface, responder: responder, leaseFile: setup.leaseFile)
            configuration.jsonLog = transfer.logFormat == "json"
            pxe = PXEServer(configuration: configuration, group: group, logger: logger)
            // DHCP first: when its port is taken, nothing at all is served.
            try pxe.start()
            do {
                _ = try tftp.start()
            } catch {
                pxe.stop()
                throw error
            }
        } catch let error as PXEServerError {
            try? group.syncShutdownGracefully()
            throw CommandFailure(error.description)
        } catch let error as TFTPServerError {
            try? group.syncShutdownGracefully()
            throw CommandFailure(error.description)
        }
        var controlServer: PXEControlServer?
        if !noControl {
            let server = PXEControlServer(path: control ?? PXEControlServer.defaultPath(interface: interface), pxe: pxe)
            do { try server.start(group: group) } catch {
                pxe.stop()
                tftp.shutdown(grace: .seconds(0))
                try? group.syncShutdownGracefully()
                throw CommandFailure(error.description)
            }
            tftp.setTransferObserver { record in
                server.publish(transfer: .init(client: record.client, file: record.file, bytes: record.bytes, seconds: record.seconds, outcome: record.outcome))
            }
            controlServer = server
            logger.notice("control socket \(server.path) (drops-run --host points machines through it)")
        }
        let http: HTTPFileServer?
        do { http = try transfer.startHTTP(defaultHost: setup.interface.address.description, group: group, extraFiles: setup.extraFiles) } catch {
            controlServer?.stop()
            pxe.stop()
            tftp.shutdown(grace: .seconds(0))
            try? group.syncShutdownGracefully()
            throw CommandFailure("\(error)")
        }
        var advertiser: RouterAdvertiser?
        if routerAdvert == "on" || (routerAdvert == "auto" && dhcpRange != nil) {
            let answering = RouterAdvertiser(interface: interface, logger: logger)
            do { try answering.start() } catch {
                http?.stop()
                controlServer?.stop()
                pxe.stop()
                tftp.shutdown(grace: .seconds(0))
                try? group.syncShutdownGracefully()
                throw CommandFailure(error.description)
            }
            advertiser = answering
            logger.notice("answering IPv6 router solicitations on \(interface): no router here (--router-advert \(routerAdvert))")
        }
        for line in setup.summary { logger.notice("\(line)") }
        termination.wait()
        advertiser?.stop()
        http?.stop()
        controlServer?.stop()
        pxe.stop()
        tftp.shutdown(grace: .nanoseconds(Int64(transfer.grace * 1e9)))
        try? group.syncShutdownGracefully()
    }
}
