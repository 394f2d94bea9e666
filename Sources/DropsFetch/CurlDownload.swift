import CCurl
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How hard a download tries.
public struct FetchPolicy: Sendable {
    /// Use only the cache; a pinned file that is not cached is an error.
    public var offline = false
    /// Attempts after the first failure.
    public var retries = 3
    /// Seconds before the first retry; doubled for each further one.
    public var backoff: Double = 1
    /// Seconds to wait for a connection.
    public var connectTimeout = 15
    /// Seconds without a single byte before a transfer is given up.
    public var stallTimeout = 30

    public init(offline: Bool = false, retries: Int = 3, backoff: Double = 1, connectTimeout: Int = 15, stallTimeout: Int = 30) {
        self.offline = offline
        self.retries = retries
        self.backoff = backoff
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
    }
}

/// One libcurl transfer into a file, appending from `offset` (a resumed download).
enum CurlDownload {
    struct Failure: Error {
        var code: CURLcode
        var message: String
        /// The HTTP or FTP status, 0 when there was none.
        var status: Int

        /// A server's "no such file" or "forbidden" does not change on a retry.
        var isPermanent: Bool {
            code == CURLE_REMOTE_FILE_NOT_FOUND || code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT
                || code == CURLE_LOGIN_DENIED || code == CURLE_REMOTE_ACCESS_DENIED
                // file:// with no such file, and a TFTP server's "file not found" / "access violation".
                || code == CURLE_FILE_COULDNT_READ_FILE || code == CURLE_TFTP_NOTFOUND || code == CURLE_TFTP_PERM
                || (code == CURLE_HTTP_RETURNED_ERROR && status >= 400 && status < 500 && status != 408 && status != 429)
        }
        var isRangeRefused: Bool { code == CURLE_RANGE_ERROR || code == CURLE_BAD_DOWNLOAD_RESUME }
    }

    /// Where the write and progress callbacks of one transfer report to.
    final class Sink {
        let fd: Int32
        let offset: Int64
        let progress: ((Int64, Int64) -> Void)?
        var writeError: String?

        init(fd: Int32, offset: Int64, progress: ((Int64, Int64) -> Void)?) {
            self.fd = fd
            self.offset = offset
            self.progress = progress
        }
    }

    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    /// Schemes that can continue a partial file.
    static let resumable: Set<String> = ["http", "https", "ftp", "file"]

    static func fetch(_ url: String, appendingTo path: String, from offset: Int64, policy: FetchPolicy,
                      progress: ((Int64, Int64) -> Void)?) -> Failure? {
        guard initialized, let curl = curl_easy_init() else {
            return Failure(code: CURLE_FAILED_INIT, message: "libcurl could not start", status: 0)
        }
        defer { curl_easy_cleanup(curl) }
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (offset > 0 ? O_APPEND : O_TRUNC)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else {
            return Failure(code: CURLE_WRITE_ERROR, message: "cannot write \(path): \(String(cString: strerror(errno)))", status: 0)
        }
        defer { close(fd) }
        let sink = Sink(fd: fd, offset: offset, progress: progress)
        let context = Unmanaged.passUnretained(sink).toOpaque()
        var errorText = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        let code: CURLcode = errorText.withUnsafeMutableBufferPointer { buffer in
            drops_curl_set_string(curl, CURLOPT_URL, url)
            drops_curl_set_string(curl, CURLOPT_PROTOCOLS_STR, "http,https,ftp,tftp,file")
            drops_curl_set_string(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https,ftp")
            drops_curl_set_string(curl, CURLOPT_USERAGENT, "drops-build (libcurl)")
            drops_curl_set_long(curl, CURLOPT_FOLLOWLOCATION, 1)
            drops_curl_set_long(curl, CURLOPT_MAXREDIRS, 10)
            // HTTP 4xx/5xx are failures, not bodies to save.
            drops_curl_set_long(curl, CURLOPT_FAILONERROR, 1)
            drops_curl_set_long(curl, CURLOPT_NOSIGNAL, 1)
            drops_curl_set_long(curl, CURLOPT_CONNECTTIMEOUT, policy.connectTimeout)
            // A stalled server: less than one byte per second for stallTimeout seconds.
            drops_curl_set_long(curl, CURLOPT_LOW_SPEED_LIMIT, 1)
            drops_curl_set_long(curl, CURLOPT_LOW_SPEED_TIME, policy.stallTimeout)
            // Larger TFTP blocks than the 512-byte default; servers that refuse fall back.
            drops_curl_set_long(curl, CURLOPT_TFTP_BLKSIZE, 1468)
            if offset > 0 { drops_curl_set_offset(curl, CURLOPT_RESUME_FROM_LARGE, curl_off_t(offset)) }
            drops_curl_set_pointer(curl, CURLOPT_ERRORBUFFER, buffer.baseAddress)
            drops_curl_set_write(curl) { data, size, count, context in
                guard let data, let context else { return 0 }
                let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
                let total = size * count
                var done = 0
                while done < total {
                    let n = write(sink.fd, data + done, total - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        sink.writeError = String(cString: strerror(errno))
                        return 0
                    }
                    done += n
                }
                return total
            }
            drops_curl_set_pointer(curl, CURLOPT_WRITEDATA, context)
            if progress != nil {
                drops_curl_set_long(curl, CURLOPT_NOPROGRESS, 0)
                drops_curl_set_progress(curl) { context, total, now, _, _ in
                    guard let context else { return 0 }
                    let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
                    sink.progress?(sink.offset + Int64(now), total > 0 ? sink.offset + Int64(total) : 0)
                    return 0
                }
                drops_curl_set_pointer(curl, CURLOPT_XFERINFODATA, context)
            }
            return curl_easy_perform(curl)
        }
        if code == CURLE_OK { return nil }
        var status = 0
        drops_curl_get_long(curl, CURLINFO_RESPONSE_CODE, &status)
        let detail = String(cString: errorText)
        var message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        if let writeError = sink.writeError { message = "cannot write the download: \(writeError)" }
        return Failure(code: code, message: message, status: status)
    }
}
