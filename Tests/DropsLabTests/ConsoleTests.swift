import DropsLab
import DropsModel
import DropsTestSupport
import Foundation
import NIOConcurrencyHelpers
import Testing

/// What a console delivered, collected for the test.
final class Received: Sendable {
    private let box = NIOLockedValueBox((bytes: [UInt8](), ended: String?.none))
    func add(_ bytes: [UInt8]) { box.withLockedValue { $0.bytes += bytes } }
    func end(_ reason: String) { box.withLockedValue { $0.ended = reason } }
    var text: String { String(decoding: box.withLockedValue { $0.bytes }, as: UTF8.self) }
    var ended: String? { box.withLockedValue { $0.ended } }

    func waitFor(_ text: String, seconds: Double = 10) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if self.text.contains(text) { return true }
            usleep(50_000)
        }
        return false
    }
}

@Suite struct ConsoleTests {
    static var ser2netAvailable: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/ser2net") }

    /// ser2net exporting a serial line on a telnet port: negotiation is dropped, the
    /// console's bytes arrive as written, and ser2net ending the port ends the stream.
    @Test(.enabled(if: ConsoleTests.ser2netAvailable, "needs ser2net (make deps)"))
    func ser2netTelnetPortDeliversTheConsole() throws {
        let line = try PseudoTerminal()
        let work = TemporaryDirectory("drops-console")
        let port = Int.random(in: 40_000...49_999)
        work.write("ser2net.yaml", text: """
            connection: &pc
                accepter: telnet,tcp,127.0.0.1,\(port)
                connector: serialdev,\(line.device),115200n81,local
            """)
        let ser2net = try ChildProcess(["/usr/sbin/ser2net", "-n", "-c", work.path + "/ser2net.yaml"], output: work.path + "/ser2net.log", errors: work.path + "/ser2net.log")
        defer { ser2net.stop() }
        let console = ConsoleStream(host: "pc07", source: .tcp(host: "127.0.0.1", port: port))
        let received = Received()
        var opened = false
        for _ in 0..<50 where !opened {
            opened = (try? console.open(onBytes: { received.add($0) }, onEnd: { received.end($0) })) != nil
            if !opened { usleep(100_000) }
        }
        try #require(opened, "ser2net did not listen: \((try? String(contentsOfFile: work.path + "/ser2net.log", encoding: .utf8)) ?? "")")
        usleep(300_000)
        line.write("DROPS-PROBE hello version=1\r\n\u{FF}text after a byte 255\r\n")
        #expect(received.waitFor("text after"), "\(received.text)")
        #expect(received.text.hasPrefix("DROPS-PROBE hello version=1\r\n"), "no telnet bytes before the console's: \(Array(received.text.utf8.prefix(12)))")
        ser2net.stop()
        let end = Date().addingTimeInterval(5)
        while received.ended == nil && Date() < end { usleep(50_000) }
        #expect(received.ended == "the console closed")
        console.close()
    }

    @Test func aPortNobodyListensOnIsUnreachable() throws {
        let console = ConsoleStream(host: "pc07", source: .tcp(host: "127.0.0.1", port: 9))
        do {
            try console.open(connectSeconds: 2, onBytes: { _ in }, onEnd: { _ in })
            Issue.record("connected to a closed port")
        } catch {
            #expect(error.description.hasPrefix("the console of pc07 is unreachable: tcp://127.0.0.1:9 cannot be reached"), "\(error.description)")
        }
    }

    @Test func aTTYIsReadRaw() throws {
        let line = try PseudoTerminal()
        let console = ConsoleStream(host: "pc07", source: .tty(path: line.device, baud: 115200))
        let received = Received()
        try console.open(onBytes: { received.add($0) }, onEnd: { received.end($0) })
        line.write("Welcome to Fiasco(ia32)!\r\n")
        #expect(received.waitFor("Fiasco(ia32)!\r\n"), "\(received.text)")
        console.close()
        let missing = ConsoleStream(host: "pc07", source: .tty(path: "/dev/ttyDROPS9", baud: 115200))
        #expect(throws: LabError.self) { try missing.open(onBytes: { _ in }, onEnd: { _ in }) }
    }
}
