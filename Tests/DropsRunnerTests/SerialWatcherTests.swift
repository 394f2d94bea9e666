import DropsModel
import Foundation
import Testing

import DropsQEMU
@testable import DropsRunner

@Suite struct SerialWatcherTests {
    func watcher(_ patterns: [ExpectedPattern]) throws -> SerialWatcher {
        try SerialWatcher(patterns: patterns)
    }

    func lines(_ events: [SerialEvent]) -> [String] {
        events.compactMap { if case let .line(line) = $0 { return line } else { return nil } }
    }

    func matches(_ events: [SerialEvent]) -> [Int] {
        events.compactMap { if case let .matched(index, _) = $0 { return index } else { return nil } }
    }

    @Test func patternSplitAcrossReadsMatchesOnce() throws {
        let watcher = try watcher([ExpectedPattern("Welcome to Fiasco"), ExpectedPattern("DD-L4(v2)")])
        var events = watcher.feed(Array("boot: Welc".utf8), at: 1)
        #expect(matches(events).isEmpty)
        events = watcher.feed(Array("ome to Fias".utf8), at: 2)
        #expect(matches(events).isEmpty)
        events = watcher.feed(Array("co(ia32)!\r\nDD-L4(v".utf8), at: 3)
        #expect(matches(events) == [0])
        #expect(lines(events) == ["boot: Welcome to Fiasco(ia32)!"])
        events = watcher.feed(Array("2)/ia32 microkernel\r\n".utf8), at: 4)
        // Plain-text milestones are not regular expressions: the parentheses mean themselves.
        #expect(matches(events) == [1])
        #expect(watcher.isComplete)
        #expect(watcher.matchTimes == [3, 4])
    }

    @Test func escapesAndCarriageReturnsAreRemoved() throws {
        let watcher = try watcher([ExpectedPattern("iPXE initialising devices...ok")])
        // Colours, cursor moves, an OSC title, charset selection and a bare CR from firmware.
        let bytes = Array("\u{1B}[2J\u{1B}[01;01H\u{1B}]0;title\u{07}\u{1B}(BiPXE \u{1B}[1minitialising\u{1B}[0m devices...ok\r\r\n".utf8)
        let events = watcher.feed(bytes, at: 1)
        #expect(lines(events) == ["iPXE initialising devices...ok"])
        #expect(matches(events) == [0])
    }

    @Test func escapeSplitAcrossReadsIsStillRemoved() throws {
        let watcher = try watcher([ExpectedPattern("ready")])
        _ = watcher.feed([0x1B, UInt8(ascii: "[")], at: 1)
        let events = watcher.feed(Array("32mready\u{1B}[0m\n".utf8), at: 2)
        #expect(lines(events) == ["ready"])
        #expect(matches(events) == [0])
    }

    @Test func promptWithoutNewlineMatches() throws {
        let watcher = try watcher([ExpectedPattern("login: $", kind: .regex)])
        let events = watcher.feed(Array("\nWelcome\nl4linux login: ".utf8), at: 5)
        #expect(matches(events) == [0])
        #expect(watcher.unfinishedLine == "l4linux login: ")
    }

    @Test func severalPatternsOnOneLineMatchInOrderOnly() throws {
        let watcher = try watcher([ExpectedPattern("b"), ExpectedPattern("a")])
        // "a" comes before "b" on the line: only "b" matches, "a" must come after it.
        var events = watcher.feed(Array("a b\n".utf8), at: 1)
        #expect(matches(events) == [0])
        events = watcher.feed(Array("b a\n".utf8), at: 2)
        #expect(matches(events) == [1])
        let both = try self.watcher([ExpectedPattern("one"), ExpectedPattern("two")])
        #expect(matches(both.feed(Array("one two\n".utf8), at: 1)) == [0, 1])
    }

    @Test func regularExpressionsAndBadOnes() throws {
        let watcher = try watcher([ExpectedPattern("Linux version [0-9]+\\.[0-9]+", kind: .regex)])
        #expect(matches(watcher.feed(Array("Linux version x\n".utf8), at: 1)).isEmpty)
        #expect(matches(watcher.feed(Array("Linux version 2.6.24\n".utf8), at: 2)) == [0])
        #expect(throws: SerialWatcherError.self) { try SerialWatcher(patterns: [ExpectedPattern("([unclosed", kind: .regex)]) }
        #expect(ExpectedPattern("([", kind: .regex).compileError != nil)
        #expect(ExpectedPattern("([", kind: .text).compileError == nil)
    }

    @Test func firstPatternAgainOnALaterLineIsAReboot() throws {
        let watcher = try watcher([ExpectedPattern("L4 Bootstrapper"), ExpectedPattern("Welcome"), ExpectedPattern("never")])
        var events = watcher.feed(Array("L4 Bootstrapper\nWelcome to Fiasco\n".utf8), at: 1)
        #expect(!events.contains { if case .rebooted = $0 { return true } else { return false } })
        events = watcher.feed(Array("panic\nL4 Bootstrapper\n".utf8), at: 9)
        #expect(events.contains(.rebooted(line: "L4 Bootstrapper")))
        #expect(watcher.rebooted)
    }

    @Test func budgetsCountFromThePreviousMatch() throws {
        let watcher = try watcher([ExpectedPattern("a", budget: 10), ExpectedPattern("b", budget: 5), ExpectedPattern("c")])
        #expect(watcher.deadline == 10)
        _ = watcher.feed(Array("a\n".utf8), at: 4)
        #expect(watcher.deadline == 9)
        _ = watcher.feed(Array("b\n".utf8), at: 6)
        // The last pattern has no budget of its own: only the run's --timeout limits it.
        #expect(watcher.deadline == nil)
        #expect(watcher.next?.source == "c")
    }

    @Test func endlessLineIsCutInPieces() throws {
        let watcher = try watcher([ExpectedPattern("needle")])
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: SerialWatcher.maxLineLength + 10) + Array("needle\n".utf8)
        let events = watcher.feed(long, at: 1)
        #expect(lines(events).count == 2)
        #expect(matches(events) == [0])
    }

    @Test func noPatternsNeverCompletesAndNeverReboots() throws {
        let watcher = try watcher([])
        let events = watcher.feed(Array("x\nx\n".utf8), at: 1)
        #expect(lines(events) == ["x", "x"])
        #expect(watcher.deadline == nil)
        #expect(!watcher.rebooted)
    }
}

@Suite struct KVMDecisionTests {
    func outcome(_ ending: BootOutcome.Ending, transcript: String = "", diagnostics: String = "") -> BootOutcome {
        BootOutcome(ending: ending, transcript: transcript, diagnostics: diagnostics, seconds: 1, matchTimes: [])
    }

    @Test func failuresBeforeTheGuestSpokeAreRetriedUnderTCG() {
        let abort = outcome(.exited(134), diagnostics: "qemu: error: failed to set MSR 0x10a to 0x0\nkvm_buf_set_msrs: Assertion failed\n")
        #expect(KVMSupport.retryReason(abort)?.contains("kvm_buf_set_msrs") == true)
        #expect(KVMSupport.retryReason(outcome(.exited(0))) != nil)
        #expect(KVMSupport.retryReason(outcome(.stopped(reason: KVMSupport.rebootReasonPrefix + " boot.ipxe a second time"))) != nil)
    }

    @Test func aGuestThatSpokeKeepsItsFailure() {
        #expect(KVMSupport.retryReason(outcome(.exited(1), transcript: "L4 Bootstrapper\npanic\n")) == nil)
        #expect(KVMSupport.retryReason(outcome(.exited(0), transcript: "Welcome\n")) == nil)
        // A timeout is the guest's (or the budget's) problem, not proof that KVM failed.
        #expect(KVMSupport.retryReason(outcome(.timedOut)) == nil)
        #expect(KVMSupport.retryReason(outcome(.finished)) == nil)
        #expect(KVMSupport.retryReason(outcome(.stopped(reason: "the guest asked for bin/x"))) == nil)
    }

    @Test func failuresAreRememberedPerKey() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("drops-kvm-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/drops/kvm-failures"
        #expect(KVMSupport.memoryFile(environment: ["XDG_CACHE_HOME": folder]) == file)
        #expect(KVMSupport.memoryFile(environment: ["HOME": "/home/u"]) == "/home/u/.cache/drops/kvm-failures")
        let key = KVMSupport.memoryKey(executable: "qemu-system-i386", chain: "ipxe")
        #expect(!KVMSupport.failedBefore(key: key, file: file))
        KVMSupport.rememberFailure(key: key, reason: "the guest reset", file: file)
        #expect(KVMSupport.failedBefore(key: key, file: file))
        #expect(!KVMSupport.failedBefore(key: KVMSupport.memoryKey(executable: "qemu-system-i386", chain: "grub"), file: file))
    }
}

@Suite struct GrubCommandLineTests {
    @Test func grub2EscapesQuotesAndBackslashes() {
        #expect(ProbeCheck.grub2Rewritten("roottask task modname \"names\" allow_cli") == "roottask task modname \\\"names\\\" allow_cli")
        #expect(ProbeCheck.grub2Rewritten("a\\b it's") == "a\\\\b it\\'s")
        #expect(ProbeCheck.grub2Rewritten("sigma0  -v") == "sigma0 -v")
    }
}

/// Failure patterns: the API defaults against console text in the form Fiasco, roottask and
/// Linux write it, and the prompt that has no newline after it.
@Suite struct FailurePatternTests {
    func failures(_ text: String, _ patterns: [FailurePattern], in chunks: Int = 1) throws -> [(index: Int, line: String)] {
        let watcher = try SerialWatcher(patterns: [ExpectedPattern("never")], failures: patterns)
        let bytes = Array(text.utf8)
        let size = max(1, bytes.count / chunks)
        var found: [(Int, String)] = []
        for start in stride(from: 0, to: bytes.count, by: size) {
            for case let .failed(index, line) in watcher.feed(bytes[start..<min(bytes.count, start + size)], at: 0) { found.append((index, line)) }
        }
        return found
    }

    @Test func fiascosKernelDebuggerPromptEndsTheRunWithoutANewline() throws {
        let console = "Welcome to Fiasco(ia32)!\r\n" + String(repeating: "-", count: 60) + "--PANIC, 'g' for exit\r\n(7.00) jdb: "
        let panic = try failures(console, FailurePattern.fiasco)
        #expect(panic.count == 1)
        #expect(panic.first?.line.hasSuffix("--PANIC, 'g' for exit") == true)
        // -wait: a line of dashes ending in --Wait, then the bare prompt, which has no line end.
        let wait = try failures(String(repeating: "-", count: 60) + "--Wait\r\njdb: ", FailurePattern.fiasco, in: 5)
        #expect(wait.map(\.line) == ["jdb: "])
        #expect(FailurePattern.fiasco[wait[0].index].verdict == "kernel debugger entered")
    }

    @Test func roottaskBootErrorsAndLinuxPanicsAreNamed() throws {
        let roottask = try failures("Roottask: Parsing command line config.\nERROR: while parsing config file: syntax error\nRoottask boot error: failed parsing configuration command line.\n", FailurePattern.rootTask)
        #expect(roottask.map(\.line) == ["Roottask boot error: failed parsing configuration command line."])
        let linux = FailurePattern.linux
        let panic = try failures("[    1.234] Kernel panic - not syncing: VFS: Unable to mount root fs\n", linux)
        #expect(panic.first.map { linux[$0.index].verdict } == "kernel panic")
        let oops = try failures("[    2.000] BUG: unable to handle page fault for address: 0000\n", linux)
        #expect(oops.first.map { linux[$0.index].verdict } == "kernel oops")
    }

    @Test func ordinaryBootLinesAreNoFailures() throws {
        let console = """
            L4 Bootstrapper
            Welcome to Fiasco(ia32)!
            Roottask: Loading 9 modules.
            Linux version 2.6.18 (l4linux) #1
            Debug: BUG-free since 2004; jdb: disabled (-nokdb)
            DROPS-PROBE module 3 start=0x00 size=84 sha256=aa cmdline="roottask.cfg"

            """
        #expect(try failures(console, FailurePattern.fiasco + FailurePattern.rootTask + FailurePattern.linux).isEmpty)
    }
}
