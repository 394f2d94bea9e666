import ArgumentParser
import DropsCLI
import DropsLab
import DropsPXE
import Foundation

struct ServeStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what the running drops-serve pxe servers and the lab's runs are doing.",
        discussion: """
            Asks every drops-serve pxe of this machine through its control socket (or the one \
            --control names) which machines runs have pointed at a profile now, and lists the \
            lab PCs runs hold (the holds drops-run --who shows): machine, holder, pid, since, \
            profile.
            """)

    @Option(name: .long, help: ArgumentHelp("The control socket to ask (default: every one in the default folder).", valueName: "path"))
    var control: String?

    @Flag(name: .long, help: "Print the status as JSON.")
    var json = false

    struct Status: Encodable {
        struct Server: Encodable {
            var control: String
            var pointed: [PXEControlReply.Override]
        }
        struct Hold: Encodable {
            var host: String
            var user: String?
            var pid: Int32?
            var since: Date?
            var profile: String?
        }
        var servers: [Server]
        var holds: [Hold]
    }

    func run() throws {
        let paths = control.map { [$0] } ?? PXEControlServer.running()
        var servers: [Status.Server] = []
        for path in paths {
            do {
                let client = try PXEControlClient(path: path)
                defer { client.close() }
                let reply = try client.send(PXEControlRequest(request: "status"))
                servers.append(Status.Server(control: path, pointed: reply.overrides ?? []))
            } catch {
                throw CommandFailure("\(error); is drops-serve pxe running?")
            }
        }
        let holds = MachineHold.who().filter(\.held).map {
            Status.Hold(host: $0.host, user: $0.holder?.user, pid: $0.holder?.pid, since: $0.holder?.since, profile: $0.holder?.profile)
        }
        let status = Status(servers: servers, holds: holds)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        if servers.isEmpty { print("no drops-serve pxe runs here (no control socket in \(PXEControlServer.defaultFolder()))") }
        for server in servers {
            print("drops-serve pxe at \(server.control): \(server.pointed.count) machines pointed by runs")
            for entry in server.pointed { print("  \(entry.mac)  \(entry.profile)\(entry.chain.map { " over \($0)" } ?? "")") }
        }
        let formatter = ISO8601DateFormatter()
        print(holds.isEmpty ? "no lab PC is held" : "held lab PCs:")
        for hold in holds {
            print("  \(hold.host)  \(hold.user ?? "?") (pid \(hold.pid.map(String.init) ?? "?"), since \(hold.since.map { formatter.string(from: $0) } ?? "?"), profile \(hold.profile ?? "?"))")
        }
    }
}
