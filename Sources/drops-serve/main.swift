import ArgumentParser
import DropsCLI

struct DropsServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drops-serve",
        abstract: "Serve image trees to PCs over TFTP (and proxyDHCP/PXE). Not yet available.",
        discussion: """
            drops-serve will run the TFTP file provider (drops-serve tftp) and proxyDHCP for \
            lab PCs (drops-serve pxe). Neither is implemented in this version: until then, \
            serve out/ with a TFTP server of your own (for example tftpd-hpa with \
            --secure out/) and boot the tree's boot.ipxe or lpxelinux.0.
            """)

    func run() throws {
        throw CommandFailure("drops-serve is not implemented yet; see drops-serve --help")
    }
}

CommandMain.run(DropsServe.self)
