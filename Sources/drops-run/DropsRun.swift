import ArgumentParser
import DropsCLI
import DropsImage
import DropsLab
import DropsModel
import DropsQEMU
import DropsRunner
import Foundation


extension Chain: ExpressibleByArgument {}
extension TFTPProvider: ExpressibleByArgument {}
extension GuestNetwork: ExpressibleByArgument {}
extension KVMMode: ExpressibleByArgument {}

struct DropsRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drops-run",
        abstract: "Boot an image tree in QEMU over the network, from our own TFTP server, and check its serial console.",
        discussion: """
            drops-run boots a tree the way a PC boots it: QEMU's PXE firmware (iPXE) gets an \
            address from QEMU's user-mode network and fetches the boot loader from drops-serve's \
            TFTP server, which runs inside drops-run on 127.0.0.1 at a free port and serves the \
            tree. The boot loader then fetches its menu and every module from the same server. \
            No root is needed for any chain.

            NETWORKS (--network)
              user      (default) QEMU's user networking: QEMU hands out the address, our \
            server listens on the host. QEMU keeps UDP port 69 of 10.0.2.2 for itself, so a \
            system that fetches files at run time from port 69 of its next server (the L4Env \
            tftp file provider, the linux profile's RAM disk) cannot reach us. A profile whose \
            variable runtime_port names another port (drops-build profile NAME --set \
            runtime_port=6969) makes drops-run serve on that port, and those files arrive; \
            --tftp-port N fixes the port by hand.
              private   needs root. drops-run makes a network namespace with a bridge \
            (10.0.77.1/24) and a tap device for the guest, starts drops-serve pxe in it in \
            full-DHCP mode on port 69, and removes all of it at the end, also after Ctrl-C \
            (a namespace left by a killed run is removed by the next one). Firmware, boot \
            loader and run-time clients then reach our server exactly as on a lab network, \
            with no port in any profile. The tree must sit in a folder named after its \
            profile (OUT/NAME), as drops-serve serves it.
            At the start drops-run says which run-time files (manifest.json's runtimeFiles) \
            the run can deliver and why; --json reports each with whether it was fetched.

            LAB PCS (--host)
            --host NAME boots the tree on a PC of the hosts file (--hosts, default \
            /etc/drops/hosts.toml), whose power block says how to switch it (IPMI through \
            ipmitool, Wake-on-LAN, command hooks) and whose console where its serial port is \
            read (tcp://HOST:PORT from ser2net or a terminal server, a tty, or ipmi-sol: the BMC's \
            Serial-over-LAN through ipmitool). The machine is \
            held for the run (--wait waits for another holder; --who lists holders), drops-serve \
            pxe answers only its MAC on --interface, the console is opened, the PC is switched \
            on (cycled when on), judged exactly as a QEMU guest, and switched off (--keep-on). \
            Infrastructure failures have exit statuses 7 to 9 and are retried by --retries; \
            --junit writes them as <error>, test failures as <failure>.

            CHAINS (--chain)
              ipxe      the tree's boot.ipxe. Within iPXE's multiboot limits (8 modules, 512 \
            bytes of command lines) iPXE loads the chain itself and each image sees `URI args`; \
            beyond them boot.ipxe hands over to PXELINUX. This is what a PC does.
              pxelinux  lpxelinux.0 from Debian's pxelinux, then pxelinux.cfg/default and \
            mboot.c32. Images see `bin/NAME args`.
              grub      a GRUB 2 PXE image made for this run with grub-mkimage (Debian's \
            grub-pc-bin) whose prefix names our server and port, then grub/grub.cfg. Images see \
            `NAME args`.
              qemu      QEMU's own Multiboot loader (-kernel/-initrd, run in bin/). No network.
              iso       the tree's CD image (OUT/NAME.iso, from drops-build profile NAME \
            --iso) in QEMU's CD drive: ISOLINUX, then mboot.c32. Images see `/bin/NAME args`. \
            --iso is short for it.

            CHECKS
            The profile's milestones (manifest.json) are expected in order, each within its own \
            budget (seconds since the one before). --expect adds regular expressions after them; \
            --no-milestones drops the profile's. The run ends as soon as every pattern was seen. \
            Without any pattern the console stays attached until QEMU exits. A probe image (the \
            selftest profile) reports every module it received: size, SHA-256 and command line \
            are compared with the manifest and printed as a table.

            FAILURES
            Console lines that mean the boot failed end the run at once (exit status 6) with a \
            named verdict, the line and the last serial lines: the profile's failures \
            (manifest.json), by default those of its API: Fiasco's kernel debugger (the jdb: \
            prompt, a --PANIC line), roottask's and RMGR's boot error, a Linux or L4Linux kernel \
            panic, BUG or Oops. --fail-on adds regular expressions.

            Before booting, the tree is checked against its manifest (--no-verify skips that); \
            a file the guest asks for that the manifest lists but the tree lacks ends the run \
            at once, by name.

            PROGRESS
            Standard error shows the serial console (lines start with `|`) and what happens: \
            server started, each file served (name, size, time), each pattern matched. -q shows \
            only the result; --json prints a summary object on standard output; --tap prints \
            TAP (one test per pattern and per probe module) on standard output.

            KVM
            QEMU runs under TCG unless --kvm (or $DROPS_KVM) says otherwise: where QEMU \
            itself runs in a virtual machine, KVM can be slower than TCG or reset the guest. \
            --kvm on insists on KVM. --kvm auto uses KVM when /dev/kvm opens; when QEMU fails \
            under KVM or the guest resets before writing anything, the run is repeated under \
            TCG and the failure is remembered ($XDG_CACHE_HOME/drops/kvm-failures) for this \
            QEMU, kernel and chain, so later runs go to TCG directly. A guest that wrote to its \
            console and then failed is reported, never retried.

            EXIT STATUS
              0  every pattern seen (and, for a probe image, every module verified)
              1  the boot does not match the manifest (a module differs or is missing), \
            or the tree cannot be booted (no manifest, no CD image, a failed --build)
              2  usage error
              3  timeout: a pattern did not come within its budget or --timeout
              4  QEMU ended (or failed) before the check was complete
              5  the guest rebooted: it reset, or its first milestone came a second time
              6  the guest failed: a failure pattern matched (the verdict names it: kernel \
            debugger entered, boot error, kernel panic, kernel oops, failure pattern matched)
              7  lab PC (--host): a power command failed, or the state did not change in time
              8  lab PC: its console is unreachable, ended, or stayed silent after power-on
              9  lab PC: it did not ask for DHCP/PXE within --boot-deadline
              130  interrupted (SIGINT or SIGTERM); everything the run made is removed

            EXAMPLES
              drops-run selftest                      # the probe image, over iPXE
              drops-run selftest --chain grub --nic rtl8139
              drops-run l4env --build --expect 'login:' --timeout 300
              drops-run out/selftest --tap > selftest.tap
              sudo drops-run linux --network private --no-milestones --expect 'runtime 1 of 1 files fetched and verified'
              drops-run selftest --host lab-pc07 --hosts lab.toml --interface eth1 --junit pc07.xml
            """,
        version: DropsVersion.current)

    @Argument(help: ArgumentHelp("A profile name whose tree is in OUT/NAME, or the path of an image tree.", valueName: "image"))
    var imageArgument: String?

    var image: String { imageArgument ?? "" }

    @Flag(name: .long, help: "List the lab PCs that runs hold now (holder, pid, since, profile), and exit.")
    var who = false

    @Option(name: .long, help: ArgumentHelp("Folder the profile trees are in.", valueName: "dir"))
    var out = "out"

    @Flag(name: .long, help: "Build the profile's tree first (drops-build profile NAME --out OUT, with --iso when booting the CD).")
    var build = false

    @Flag(name: .long, help: "Boot the tree's CD image (the same as --chain iso).")
    var iso = false

    @Option(name: .customLong("chain"), help: ArgumentHelp("How to boot: ipxe, pxelinux, grub, qemu or iso.", valueName: "chain"))
    var chainOption: Chain = .ipxe

    var chain: Chain { iso ? .iso : chainOption }

    @Option(name: .long, help: ArgumentHelp("Also expect this regular expression, after the milestones (repeatable).", valueName: "regex"))
    var expect: [String] = []

    @Flag(name: .long, help: "Do not expect the profile's milestones.")
    var noMilestones = false

    @Option(name: .long, help: ArgumentHelp("End the run as failed when a console line matches this regular expression (repeatable; exit status 6).", valueName: "regex"))
    var failOn: [String] = []

    @Option(name: .long, help: ArgumentHelp("Seconds the whole boot may take (default: 300 when patterns are expected, else no limit).", valueName: "seconds"))
    var timeout: Double?

    @Option(name: .long, help: ArgumentHelp("Use KVM: off (default), auto or on.", valueName: "mode"))
    var kvm: KVMMode?

    @Option(name: .long, help: ArgumentHelp("Guest memory in MiB (default: twice the modules' size plus 64, at least 128; 512 under UEFI).", valueName: "MiB"))
    var memory: Int?

    @Option(name: .long, help: ArgumentHelp("Virtual CPUs.", valueName: "n"))
    var cpus = 1

    @Option(name: .long, help: ArgumentHelp("Network card: e1000, rtl8139, pcnet, ne2k_pci or virtio.", valueName: "model"))
    var nic = "e1000"

    @Option(name: .customLong("tap-device"), help: ArgumentHelp(
        "Boot on this tap device of a lab network; its servers (drops-serve pxe) serve the guest and drops-run starts none.",
        discussion: "--chain then names the chain that server gives this machine, so the check knows which command-line form to expect.",
        valueName: "name"))
    var tapDevice: String?

    @Option(name: .long, help: ArgumentHelp("Guest network: user (QEMU's, default) or private (a lab network made for the run; root).", valueName: "kind"))
    var network: GuestNetwork = .user

    @Option(name: .customLong("tftp-port"), help: ArgumentHelp(
        "Host UDP port our TFTP server listens on under --network user (default: the profile's runtime_port when it is not 69, else a free port).",
        valueName: "port"))
    var tftpPort: Int?

    @Option(name: .long, help: ArgumentHelp("MAC address of the guest's network card (default: QEMU's).", valueName: "address"))
    var mac: String?

    @Option(name: .long, help: ArgumentHelp("Guest firmware: bios (SeaBIOS, default) or uefi (OVMF, Debian package ovmf; with --network private or --tap-device).", valueName: "kind"))
    var firmware = "bios"

    @Option(name: .long, help: ArgumentHelp("Whose TFTP server the firmware uses: drops (ours) or qemu (QEMU's built-in one, for comparison).", valueName: "server"))
    var tftp: TFTPProvider = .drops

    @Flag(name: .long, help: "Serve the kernel and modules over HTTP too, at the port of the tree's http_base (drops-build profile NAME --http-base http://10.0.2.2:PORT).")
    var http = false

    @Option(name: .long, help: ArgumentHelp("Also write the serial output to this file.", valueName: "file"))
    var serialLog: String?

    @Option(name: .long, parsing: .unconditionalSingleValue, help: ArgumentHelp("Pass this argument on to QEMU (repeatable).", valueName: "arg"))
    var qemuArg: [String] = []

    @Flag(name: .long, help: "Boot even when the tree differs from its manifest.")
    var noVerify = false

    @Flag(name: .long, help: "Print the result as TAP on standard output.")
    var tap = false

    @Option(name: .long, help: ArgumentHelp("Also write the result as JUnit XML to this file (test failures as <failure>, infrastructure failures as <error>).", valueName: "file"))
    var junit: String?

    @Flag(name: .long, help: "Print the QEMU command line and exit.")
    var dryRun = false

    @Option(name: .long, help: ArgumentHelp("Boot a lab PC of the hosts file instead of a QEMU guest (its name or MAC address).", valueName: "name"))
    var host: String?

    @Option(name: .long, help: ArgumentHelp("Hosts file with the lab PCs' power and console (default: /etc/drops/hosts.toml).", valueName: "file"))
    var hosts: String?

    @Option(name: .long, help: ArgumentHelp("With --host: the lab network interface drops-run answers the PC's PXE requests on (proxyDHCP and TFTP).", valueName: "name"))
    var interface: String?

    @Option(name: .long, help: ArgumentHelp("With --host: the control socket of the drops-serve pxe that boots the lab (default: the one running here).", valueName: "path"))
    var control: String?

    @Flag(name: .long, help: "With --host: leave the PC switched on after the run.")
    var keepOn = false

    @Flag(name: .long, help: "With --host: wait for the PC when another run holds it (default: fail at once, naming the holder).")
    var wait = false

    @Option(name: .long, help: ArgumentHelp("With --host: run again after an infrastructure failure (power, console, network boot), up to this many times; never after a test failure.", valueName: "n"))
    var retries = 0

    @Option(name: .long, help: ArgumentHelp("With --host: seconds after power-on within which the PC must ask for PXE and its console must speak.", valueName: "seconds"))
    var bootDeadline: Double = 90

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if who { return }
        guard imageArgument != nil else { throw ValidationError("give a profile name or the path of an image tree (or --who)") }
        if host != nil {
            if network == .private || tapDevice != nil || tftp == .qemu || chain == .qemu || chain == .iso {
                throw ValidationError("--host boots a lab PC over its lab network: it does not go with --network private, --tap-device, --tftp qemu, --chain qemu or --iso")
            }
            if retries < 0 || retries > 10 { throw ValidationError("--retries must be between 0 and 10") }
            if interface != nil && control != nil { throw ValidationError("--interface starts drops-run's own server, --control asks a running one: choose one") }
            if bootDeadline <= 0 { throw ValidationError("--boot-deadline must be positive") }
        } else if keepOn || wait || interface != nil || control != nil || retries != 0 {
            throw ValidationError("--keep-on, --wait, --interface, --control and --retries go with --host")
        }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if http && (host != nil || network == .private || tapDevice != nil || tftp == .qemu || chain == .qemu || chain == .iso) {
            throw ValidationError("--http serves HTTP beside drops-run's own TFTP server under --network user, for --chain ipxe, pxelinux or grub; on a lab network give drops-serve pxe --http-port")
        }
        if let memory, memory < 16 { throw ValidationError("--memory must be at least 16 MiB") }
        guard (1...64).contains(cpus) else { throw ValidationError("--cpus must be between 1 and 64") }
        guard MachineOptions.nicModels[nic] != nil else {
            throw ValidationError("--nic \(nic) is not a card QEMU has a PXE ROM for; use one of \(MachineOptions.nicModels.keys.sorted().joined(separator: ", "))")
        }
        for pattern in failOn {
            if let problem = ExpectedPattern(pattern, kind: .regex).compileError {
                throw ValidationError("--fail-on '\(pattern)' is not a valid regular expression: \(problem)")
            }
        }
        for pattern in expect {
            if let problem = ExpectedPattern(pattern, kind: .regex).compileError {
                throw ValidationError("--expect '\(pattern)' is not a valid regular expression: \(problem)")
            }
        }
        if tftp == .qemu && chain == .grub {
            throw ValidationError("--tftp qemu works with --chain ipxe or pxelinux: the grub chain's image is made per run and only our server serves it")
        }
        if tftp == .qemu && (chain == .qemu || chain == .iso) { throw ValidationError("--tftp needs a network chain (ipxe, pxelinux or grub)") }
        if iso && chainOption != .ipxe && chainOption != .iso { throw ValidationError("--iso boots the CD; it does not go with --chain \(chainOption.rawValue)") }
        if build && Runner.isDirectory(image) { throw ValidationError("--build needs a profile name, not the tree \(image)") }
        if tap && output.json { throw ValidationError("--tap and --json both write to standard output; choose one") }
        guard ["bios", "uefi"].contains(firmware) else { throw ValidationError("--firmware is bios or uefi") }
        // QEMU takes `:` between the bytes only.
        if let mac, HostTable.normalizedMAC(mac) != mac.lowercased() {
            throw ValidationError("--mac \(mac) is not a MAC address such as 52:54:00:12:34:56")
        }
        if tapDevice != nil && (chain == .qemu || chain == .iso || tftp == .qemu) {
            throw ValidationError("--tap-device boots from the lab network: it goes with --chain ipxe, pxelinux or grub, and with our TFTP server")
        }
        if firmware == "uefi" && tapDevice == nil && network != .private {
            throw ValidationError("--firmware uefi boots from a lab network: give --network private or --tap-device (QEMU's user network has no UEFI boot file here)")
        }
        if network == .private {
            if tapDevice != nil { throw ValidationError("--network private makes its own tap device; it does not go with --tap-device") }
            if chain == .qemu || chain == .iso || tftp == .qemu {
                throw ValidationError("--network private boots from the network: it goes with --chain ipxe, pxelinux or grub, and with our TFTP server")
            }
            if tftpPort != nil { throw ValidationError("--tftp-port is for --network user; on the private network drops-serve listens on port 69") }
        }
        if let tftpPort {
            guard (1...65535).contains(tftpPort) else { throw ValidationError("--tftp-port must be 1 to 65535") }
            if tftp == .qemu || chain == .qemu || chain == .iso || tapDevice != nil {
                throw ValidationError("--tftp-port sets the port of our own server under --network user: it goes with --chain ipxe, pxelinux or grub")
            }
        }
    }

    var kvmMode: KVMMode {
        kvm ?? ProcessInfo.processInfo.environment["DROPS_KVM"].flatMap { KVMMode(rawValue: $0) } ?? .off
    }

    /// The command line as the runner's options.
    var options: RunOptions {
        var options = RunOptions()
        options.image = image
        options.out = out
        options.build = build
        options.chain = chain
        options.expect = expect
        options.noMilestones = noMilestones
        options.failOn = failOn
        options.timeout = timeout
        options.kvm = kvmMode
        options.memory = memory
        options.cpus = cpus
        options.nic = MachineOptions.nicModels[nic] ?? nic
        options.tapDevice = tapDevice
        options.network = network
        options.tftpPort = tftpPort
        options.mac = mac
        options.firmware = firmware
        options.tftp = tftp
        options.http = http
        options.serialLog = serialLog
        options.qemuArguments = qemuArg
        options.noVerify = noVerify
        options.dryRun = dryRun
        options.tap = tap
        options.json = output.json
        options.junit = junit
        options.quiet = output.quiet
        options.verbose = output.verbose
        options.host = host
        options.hosts = hosts
        options.interface = interface
        options.control = control
        options.keepOn = keepOn
        options.wait = wait
        options.retries = retries
        options.bootDeadline = bootDeadline
        return options
    }

    func run() throws {
        CommandMain.bootstrapLogging(output.logLevel)
        // QEMU inherits our signal mask: with SIGTERM blocked by whoever started us, it
        // could not be stopped at the end of a run.
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        sigprocmask(SIG_SETMASK, &unblocked, nil)
        // A helper that went away (ipmitool's SOL session) must not take the run with it.
        signal(SIGPIPE, SIG_IGN)
        if who { return try listHolds() }
        let progress = Progress(quiet: output.quiet) { line in
            FileHandle.standardError.write(Data("drops-run \(line)\n".utf8))
        }
        // Console lines on standard error behind `| `, unless -q, --json or --tap.
        let echo = !output.quiet && !output.json && !tap
        let runner = Runner(options: options, progress: progress) { line in
            if echo { FileHandle.standardError.write(Data("| \(line)\n".utf8)) }
        }
        let result: RunResult
        do { result = try runner.run() } catch let failure as RunFailure {
            throw CommandFailure(failure.description, exitCode: failure.exitCode)
        }
        if let text = result.output { print(text) }
        if let failure = result.failure { throw CommandFailure(failure, exitCode: result.exitCode) }
    }

    /// --who: every machine with a hold file, its holder if held, and the hosts file's other PCs.
    func listHolds() throws {
        struct Row: Encodable {
            var host: String
            var held: Bool
            var user: String?
            var pid: Int32?
            var since: Date?
            var profile: String?
        }
        var rows = MachineHold.who().map { entry in
            Row(host: entry.host, held: entry.held, user: entry.holder?.user, pid: entry.holder?.pid,
                since: entry.holder?.since, profile: entry.holder?.profile)
        }
        let path = options.hostsFile
        if let table = try? HostTable.load(path: path) {
            for host in table.hosts where !rows.contains(where: { $0.host == host.name }) {
                rows.append(Row(host: host.name, held: false))
            }
        } else if hosts != nil {
            throw CommandFailure("cannot read the hosts file \(path)", exitCode: RunExit.usage)
        }
        rows.sort { $0.host < $1.host }
        if output.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            return
        }
        let formatter = ISO8601DateFormatter()
        print("machine".padding(toLength: 16, withPad: " ", startingAt: 0) + "held by")
        for row in rows {
            let holder = row.held ? "\(row.user ?? "?") (pid \(row.pid ?? 0), since \(row.since.map { formatter.string(from: $0) } ?? "?"), profile \(row.profile ?? "?"))" : "free"
            print(row.host.padding(toLength: max(16, row.host.count + 1), withPad: " ", startingAt: 0) + holder)
        }
    }
}
