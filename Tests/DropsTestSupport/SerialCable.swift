import DropsLab
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A pseudo-terminal: its slave device (`device`) stands for a serial port; the test holds
/// the master side.
public final class PseudoTerminal: @unchecked Sendable {
    public let master: Int32
    public let device: String

    public init() throws {
        guard let (master, device) = PseudoTerminalDevice.open() else {
            throw NSError(domain: "PseudoTerminal", code: 1, userInfo: [NSLocalizedDescriptionKey: "no pseudo-terminal: \(String(cString: strerror(errno)))"])
        }
        self.master = master
        self.device = device
    }

    public func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(master, $0.baseAddress, $0.count) }
    }

    deinit { close(master) }
}

/// A null-modem cable between two serial ports that outlive whoever opens them: what is
/// written to `left` (a QEMU guest's serial port) comes out of `right` (which ser2net
/// exports), and back. Either end may be opened and closed again (a PC switched off and on).
public final class SerialCable: @unchecked Sendable {
    public let left: PseudoTerminal
    public let right: PseudoTerminal
    private let lock = NSLock()
    private var running = true
    private var thread: Thread?

    public init() throws {
        left = try PseudoTerminal()
        right = try PseudoTerminal()
        let thread = Thread { [self] in relay() }
        self.thread = thread
        thread.start()
    }

    private var isRunning: Bool { lock.withLock { running } }

    private func relay() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while isRunning {
            var pollers = [pollfd(fd: left.master, events: Int16(POLLIN), revents: 0), pollfd(fd: right.master, events: Int16(POLLIN), revents: 0)]
            _ = poll(&pollers, 2, 100)
            var moved = false
            for (index, from, to) in [(0, left.master, right.master), (1, right.master, left.master)] where pollers[index].revents & Int16(POLLIN) != 0 {
                let count = read(from, &buffer, buffer.count)
                if count > 0 {
                    _ = buffer.withUnsafeBytes { Glibc.write(to, $0.baseAddress, count) }
                    moved = true
                }
            }
            // A side nobody has open reports a hang-up at once: do not spin on it.
            if !moved { usleep(20_000) }
        }
    }

    deinit {
        lock.withLock { running = false }
        usleep(150_000)
    }
}
