import Foundation

/// Who holds a lab PC: one run at a time drives a machine. A hold is an exclusive `flock`
/// on `HOLDS/NAME.hold`, which holds the holder's details; the kernel drops the lock when the
/// holding process ends in any way (SIGKILL too), so a dead holder never keeps a machine.
public final class MachineHold: @unchecked Sendable {
    /// What a hold file says about its holder.
    public struct Holder: Codable, Sendable, Equatable {
        public var host: String
        public var user: String
        public var pid: Int32
        public var since: Date
        public var profile: String

        public init(host: String, user: String, pid: Int32, since: Date, profile: String) {
            self.host = host
            self.user = user
            self.pid = pid
            self.since = since
            self.profile = profile
        }

        public var description: String {
            let formatter = ISO8601DateFormatter()
            return "\(user) (pid \(pid), since \(formatter.string(from: since)), profile \(profile))"
        }
    }

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case held(host: String, by: Holder?)
        case folder(String)

        public var description: String {
            switch self {
            case let .held(host, holder):
                return "\(host) is held by \(holder?.description ?? "another run"); wait for it with --wait, or pick another machine"
            case let .folder(text): return text
            }
        }
    }

    public let host: String
    public let holder: Holder
    /// The holder before this one, when it died holding the machine (its details were left).
    public let previous: Holder?
    private var descriptor: Int32

    /// The folder holds live in: $DROPS_HOLDS_DIR, else /run/drops/holds for root, else
    /// $XDG_RUNTIME_DIR/drops/holds, else ~/.cache/drops/holds.
    public static func defaultFolder() -> String {
        let environment = ProcessInfo.processInfo.environment
        if let folder = environment["DROPS_HOLDS_DIR"], !folder.isEmpty { return folder }
        if geteuid() == 0 { return "/run/drops/holds" }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/drops/holds" }
        return NSHomeDirectory() + "/.cache/drops/holds"
    }

    static func path(folder: String, host: String) -> String { folder + "/" + host + ".hold" }

    /// Takes the machine; with `waitSeconds` (nil: fail at once) waits for its holder to let go.
    public init(host: String, profile: String, folder: String = MachineHold.defaultFolder(), waitSeconds: Double? = nil) throws(Failure) {
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw .folder("cannot make the holds folder \(folder): \(error.localizedDescription); set $DROPS_HOLDS_DIR to a folder every lab user can write")
        }
        let path = Self.path(folder: folder, host: host)
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o664)
        guard descriptor >= 0 else { throw .folder("cannot open \(path): \(String(cString: strerror(errno)))") }
        let end = Date().addingTimeInterval(waitSeconds ?? 0)
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard waitSeconds != nil, Date() < end else {
                let holder = Self.read(descriptor)
                close(descriptor)
                throw .held(host: host, by: holder)
            }
            usleep(200_000)
        }
        self.host = host
        self.descriptor = descriptor
        previous = Self.read(descriptor)
        holder = Holder(host: host, user: Self.userName(), pid: getpid(), since: Date(), profile: profile)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        if let data = try? encoder.encode(holder) {
            ftruncate(descriptor, 0)
            _ = data.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        }
    }

    /// Lets the machine go; its file is emptied, so nobody reads a holder that left.
    public func release() {
        guard descriptor >= 0 else { return }
        ftruncate(descriptor, 0)
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }

    /// Every machine with a hold file in `folder`: whether a run holds it now, and what its
    /// holder wrote (nil when held by something that wrote nothing).
    public static func who(folder: String = MachineHold.defaultFolder()) -> [(host: String, held: Bool, holder: Holder?)] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".hold") }.sorted()
        return names.map { name in
            let host = String(name.dropLast(".hold".count))
            let descriptor = open(folder + "/" + name, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return (host, false, nil) }
            defer { close(descriptor) }
            // A shared lock is granted only when nobody holds the machine.
            if flock(descriptor, LOCK_SH | LOCK_NB) == 0 {
                flock(descriptor, LOCK_UN)
                return (host, false, nil)
            }
            return (host, true, read(descriptor))
        }
    }

    static func read(_ descriptor: Int32) -> Holder? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = pread(descriptor, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(Holder.self, from: Data(buffer[0..<count]))
    }

    static func userName() -> String {
        if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name { return String(cString: name) }
        return "uid \(geteuid())"
    }
}
