import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn and reaped with waitpid. Foundation's Process
/// sometimes never noticed a child's exit here while other children were running, which
/// hung benchmarks and tests; this keeps the whole life cycle in plain system calls.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private var status: Int32?

    /// Starts `arguments[0]` (an absolute path) with standard output and error sent to the
    /// given files (default /dev/null; one file when both name the same) and standard input
    /// from /dev/null, in `directory` when given.
    /// `environment` adds to (or, with an empty value, removes from) this process's environment.
    public init(_ arguments: [String], output: String = "/dev/null", errors: String = "/dev/null",
                environment: [String: String] = [:], directory: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if errors == output {
            // Two opens of one file would each write from offset 0 over the other's lines.
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        // Glibc's Swift module does not export posix_spawn_file_actions_addchdir_np: env -C.
        let arguments = directory.map { ["/usr/bin/env", "-C", $0] + arguments } ?? arguments
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value.isEmpty ? nil : value }
        var envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        // The child starts with no blocked signals and default handlers, whatever the
        // calling thread had: a test runner's thread may block SIGTERM, and a child that
        // inherits that (and hands it on to its own children) cannot be stopped.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let result = posix_spawn(&child, arguments[0], &actions, &attributes, &argv, &envp)
        guard result == 0 else {
            throw NSError(domain: "ChildProcess", code: Int(result),
                          userInfo: [NSLocalizedDescriptionKey: "cannot start \(arguments[0]): \(String(cString: strerror(result)))"])
        }
        pid = child
    }

    /// Waits for the exit and returns the exit status (128 + signal when killed).
    @discardableResult
    public func wait() -> Int32 {
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        let value = (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
        status = value
        return value
    }

    /// Waits up to `seconds` for the exit and returns its status; a child still running
    /// then is killed, and the result is nil, so a test fails instead of hanging.
    public func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning {
            guard Date() < deadline else {
                stop(SIGKILL)
                return nil
            }
            usleep(20_000)
        }
        return wait()
    }

    public var isRunning: Bool {
        guard status == nil else { return false }
        var raw: Int32 = 0
        let result = waitpid(pid, &raw, WNOHANG)
        if result == pid {
            status = (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
            return false
        }
        return result == 0
    }

    /// Sends a signal (default SIGTERM) and reaps the child.
    public func stop(_ signal: Int32 = SIGTERM) {
        guard isRunning else { return }
        kill(pid, signal)
        wait()
    }

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// True when the child ran past its time and was killed.
        public var timedOut: Bool
    }

    /// Runs a program to its end with its output captured through files (a chatty child
    /// never blocks on a full pipe), killing it after `timeout` seconds.
    public static func run(_ arguments: [String], directory: String? = nil, environment: [String: String] = [:],
                           timeout: Double = 600) throws -> Result {
        let base = FileManager.default.temporaryDirectory.path + "/drops-child-\(UUID().uuidString.prefix(8))"
        defer {
            unlink(base + ".out")
            unlink(base + ".err")
        }
        let child = try ChildProcess(arguments, output: base + ".out", errors: base + ".err", environment: environment, directory: directory)
        let status = child.wait(seconds: timeout)
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return Result(status: status ?? child.wait(), stdout: read(base + ".out"), stderr: read(base + ".err"), timedOut: status == nil)
    }
}
