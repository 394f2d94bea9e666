import DropsLab
import DropsTestSupport
import Foundation
import Testing

/// One run per machine: a second one is refused naming the holder, or waits; a holder that
/// died (SIGKILL) frees the machine, and the next run learns who that was.
@Suite struct MachineHoldTests {
    @Test func aSecondRunIsRefusedNamingTheHolder() throws {
        let work = TemporaryDirectory("drops-holds")
        let folder = work.path
        let first = try MachineHold(host: "pc07", profile: "selftest", folder: folder)
        do {
            _ = try MachineHold(host: "pc07", profile: "l4env", folder: folder)
            Issue.record("two holds on one machine")
        } catch {
            #expect(error.description.contains("pc07 is held by") && error.description.contains("pid \(getpid())")
                    && error.description.contains("profile selftest") && error.description.contains("--wait"), "\(error.description)")
        }
        let listed = MachineHold.who(folder: folder)
        #expect(listed.count == 1 && listed[0].host == "pc07" && listed[0].held && listed[0].holder?.profile == "selftest")
        _ = try MachineHold(host: "pc08", profile: "l4env", folder: folder)
        first.release()
        #expect(MachineHold.who(folder: folder).first { $0.host == "pc07" }?.held == false)
        let again = try MachineHold(host: "pc07", profile: "l4env", folder: folder)
        #expect(again.previous == nil, "a holder that let go leaves nothing behind")
    }

    @Test func aWaitingRunGetsTheMachineWhenTheHolderLetsGo() throws {
        let work = TemporaryDirectory("drops-holds")
        let folder = work.path
        let first = try MachineHold(host: "pc07", profile: "selftest", folder: folder)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { first.release() }
        let second = try MachineHold(host: "pc07", profile: "l4env", folder: folder, waitSeconds: 10)
        #expect(second.holder.profile == "l4env")
    }

    /// util-linux's flock(1) holds the lock in another process (-o: not in its child), killed with SIGKILL.
    @Test func aHolderKilledWithSIGKILLFreesTheMachine() throws {
        let work = TemporaryDirectory("drops-holds")
        let folder = work.path
        let path = folder + "/pc07.hold"
        let dead = #"{"host":"pc07","user":"someone","pid":4242,"since":"2026-12-01T10:00:00Z","profile":"l4env"}"#
        try dead.write(toFile: path, atomically: false, encoding: .utf8)
        let holder = try ChildProcess(["/usr/bin/flock", "-x", "-o", path, "/bin/sleep", "60"])
        var held = false
        for _ in 0..<50 where !held {
            held = MachineHold.who(folder: folder).first?.held == true
            if !held { usleep(100_000) }
        }
        #expect(held, "flock(1) holds pc07")
        #expect(throws: MachineHold.Failure.self) { try MachineHold(host: "pc07", profile: "selftest", folder: folder) }
        holder.stop(SIGKILL)
        let next = try MachineHold(host: "pc07", profile: "selftest", folder: folder)
        #expect(next.previous?.user == "someone" && next.previous?.pid == 4242, "the next run learns whose hold died with its process")
    }
}
