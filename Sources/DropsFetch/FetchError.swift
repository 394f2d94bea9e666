import DropsModel

/// Why a component could not be taken from its archive or URL. Every message names the
/// component, the archive or URL, and what to do.
public enum FetchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A URL without a pin: the download's hash is printed so the user can pin it.
    case unpinned(component: String, url: String, sha256: String, location: SourceLocation?)
    /// The download's hash differs from the pin; nothing entered the cache.
    case pinMismatch(component: String, url: String, expected: String, actual: String)
    /// The download failed after every retry.
    case download(component: String, url: String, reason: String, attempts: Int)
    /// `--offline` and the pinned file is not in the cache.
    case notCached(component: String, url: String, sha256: String)
    /// An archive could not be read or lacks the member.
    case archive(component: String, reason: String)
    /// No origin holds the component's file.
    case notFound(component: String, file: String, searched: [String])
    /// The cache folder cannot be written.
    case cache(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unpinned(component, url, sha256, location):
            let place = location.map { " (\($0))" } ?? ""
            return "component '\(component)': \(url) has no sha256 pin\(place). Its SHA-256 now is \(sha256); "
                + "if that is the file you mean, add sha256 = \"\(sha256)\" next to the url (or append #sha256=\(sha256) to --source). "
                + "Nothing was cached"
        case let .pinMismatch(component, url, expected, actual):
            return "component '\(component)': \(url) has SHA-256 \(actual), but the profile pins \(expected). "
                + "Nothing entered the cache or the image. If the file changed on purpose, pin the new hash; otherwise the server serves the wrong file"
        case let .download(component, url, reason, attempts):
            return "component '\(component)': cannot fetch \(url) (\(reason)) after \(attempts) attempt\(attempts == 1 ? "" : "s"); "
                + "check the URL and the network, or put the file in the search path"
        case let .notCached(component, url, sha256):
            return "component '\(component)': --offline, and \(url) (sha256 \(sha256)) is not in the cache; "
                + "run drops-build fetch PROFILE while online first, or drop --offline"
        case let .archive(component, reason):
            return "component '\(component)': \(reason)"
        case let .notFound(component, file, searched):
            return "component '\(component)': no file '\(file)' in the search path or in \(searched.joined(separator: ", ")); "
                + "add it to one of them, or give the component its own archive/url and member"
        case let .cache(path, reason):
            return "cannot use the download cache \(path): \(reason); set $XDG_CACHE_HOME or pass --cache-dir to a writable folder"
        }
    }
}
