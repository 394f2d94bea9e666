#if canImport(Glibc)
import Glibc
#endif

/// The bytes of a file being served. Octet files are read with pread block by block, never
/// whole; netascii files are converted once in memory (they are small text files), with a cap.
final class FileSource {
    static let maxNetasciiSize = 16 << 20

    let descriptor: CInt
    let size: Int
    private let converted: [UInt8]?
    private let identity: (size: Int, seconds: Int, nanoseconds: Int)

    init(path: String, netascii: Bool) throws(Refusal) {
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        self.descriptor = descriptor
        guard descriptor >= 0 else { throw Refusal(.accessViolation, "cannot open: \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw Refusal(.accessViolation, "not a regular file")
        }
        identity = (Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec))
        if netascii {
            guard info.st_size <= Self.maxNetasciiSize else {
                close(descriptor)
                throw Refusal(.accessViolation, "netascii transfers are limited to \(Self.maxNetasciiSize) bytes; use octet mode")
            }
            var raw = [UInt8](repeating: 0, count: Int(info.st_size))
            let count = raw.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
            guard count == raw.count else {
                close(descriptor)
                throw Refusal(.notDefined, "file changed while it was read")
            }
            converted = Netascii.encode(raw)
            size = converted!.count
        } else {
            converted = nil
            size = Int(info.st_size)
        }
    }

    deinit {
        close(descriptor)
    }

    /// False when the file on disk changed since it was opened: the transfer must end with an
    /// ERROR rather than send a torn mix of old and new bytes.
    func isUnchanged() -> Bool {
        guard converted == nil else { return true }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return false }
        return Int(info.st_size) == identity.size && Int(info.st_mtim.tv_sec) == identity.seconds
            && Int(info.st_mtim.tv_nsec) == identity.nanoseconds
    }

    /// Copies `length` bytes at `offset` to `destination`; false if the file no longer has them.
    func read(into destination: UnsafeMutableRawPointer, offset: Int, length: Int) -> Bool {
        guard length > 0 else { return true }
        if let converted {
            converted.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress! + offset, byteCount: length) }
            return true
        }
        var done = 0
        while done < length {
            let count = pread(descriptor, destination + done, length - done, off_t(offset + done))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            done += count
        }
        return true
    }
}
