import DropsArchive
import DropsImage
import DropsModel
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a fetch is doing, for a progress display.
public enum FetchEvent: Sendable {
    /// Bytes of `url` received so far and its size (0 when unknown).
    case downloading(url: String, received: Int64, total: Int64)
    /// A download failed and is tried again after `delay` seconds.
    case retrying(url: String, attempt: Int, reason: String, delay: Double)
    /// The pinned file was already in the cache.
    case cached(url: String)
    /// A download finished and its hash matched the pin.
    case downloaded(url: String, size: Int64)
    /// Compressed bytes of `archive` read while looking for `member`.
    case extracting(archive: String, member: String, read: Int64, total: Int64)
}

/// Turns every component that comes from an archive or a URL into a file in the cache:
/// downloads with libcurl (pinned, verified, retried, resumed), members with libarchive.
public final class SourceResolver {
    public let cache: FetchCache
    public let policy: FetchPolicy
    public let events: ((FetchEvent) -> Void)?
    /// Archive listings read in this run, by archive path.
    private var listings: [String: [String]] = [:]
    /// The cache folders exist (made on the first component that needs them).
    private var cachePrepared = false

    public init(cache: FetchCache, policy: FetchPolicy = FetchPolicy(), events: ((FetchEvent) -> Void)? = nil) {
        self.cache = cache
        self.policy = policy
        self.events = events
    }

    /// Does `plan` need this resolver at all?
    public static func needsFetching(_ plan: BuildPlan) -> Bool {
        ([plan.firstStage] + plan.modules).contains { if case .remote = $0.source { return true } else { return false } }
    }

    /// The plan with every `.remote` source replaced by `.cached`; optional components no
    /// archive holds are left out (and listed in `omitted`).
    public func resolve(_ plan: BuildPlan) throws(FetchError) -> BuildPlan {
        var plan = plan
        guard Self.needsFetching(plan) else { return plan }
        if let source = try resolve(plan.firstStage) { plan.firstStage.source = source }
        var modules: [PlannedComponent] = []
        for var module in plan.modules {
            if case .remote = module.source {
                guard let source = try resolve(module) else {
                    plan.omitted.append(module.name)
                    continue
                }
                module.source = source
            }
            modules.append(module)
        }
        plan.modules = modules
        return plan
    }

    /// nil for an optional component that no origin holds.
    func resolve(_ component: PlannedComponent) throws(FetchError) -> ComponentSource? {
        guard case let .remote(remote) = component.source else { return component.source }
        if !cachePrepared {
            try cache.prepare()
            cachePrepared = true
        }
        let searching = remote.origins.count > 1 || remote.optional
        for origin in remote.origins {
            switch origin {
            case let .archive(path):
                let member = remote.member ?? component.name
                guard let found = try locate(member, in: path, component: component.name, searching: searching) else { continue }
                return try extract(found, from: path, origin: path, component: component.name)
            case let .url(url, pin, location):
                let file = try download(url, pin: pin, location: location, component: component.name)
                guard let member = remote.member else { return .cached(path: file, origin: url) }
                guard let found = try locate(member, in: file, component: component.name, searching: searching, shownAs: url) else { continue }
                return try extract(found, from: file, origin: url, component: component.name)
            }
        }
        if remote.optional { return nil }
        throw .notFound(component: component.name, file: remote.member ?? component.name,
                        searched: remote.origins.map(\.description))
    }

    /// The member's exact path in the archive; nil when searching and it is not there.
    func locate(_ member: String, in archive: String, component: String, searching: Bool,
                shownAs: String? = nil) throws(FetchError) -> String? {
        let paths: [String]
        if let known = listings[archive] {
            paths = known
        } else {
            do { paths = try ArchiveMembers.list(archive) } catch {
                throw .archive(component: component, reason: shown(error.description, archive, shownAs))
            }
            listings[archive] = paths
        }
        let wanted = ArchiveMembers.normalized(member)
        if paths.contains(wanted) { return wanted }
        let byName = paths.filter { $0.split(separator: "/").last.map(String.init) == wanted }
        if byName.count == 1 { return byName[0] }
        if byName.count > 1 {
            throw .archive(component: component, reason: "archive \(shownAs ?? archive) holds \(byName.count) files named '\(wanted)' (\(byName.joined(separator: ", "))); name one with member = \"PATH\"")
        }
        if searching { return nil }
        let sample = paths.prefix(12).joined(separator: ", ") + (paths.count > 12 ? ", … (\(paths.count) files)" : "")
        throw .archive(component: component, reason: "archive \(shownAs ?? archive) has no member '\(wanted)'; it holds \(paths.isEmpty ? "no files" : sample)")
    }

    /// Extracts into the cache under the member's own hash.
    func extract(_ member: String, from archive: String, origin: String, component: String) throws(FetchError) -> ComponentSource {
        let temporary = cache.temporaryPath()
        do {
            _ = try ArchiveMembers.extract(member, from: archive, to: temporary) { [events] read, total in
                events?(.extracting(archive: origin, member: member, read: read, total: total))
            }
        } catch {
            unlink(temporary)
            throw .archive(component: component, reason: shown(error.description, archive, origin))
        }
        guard let hash = try? FileDigest.sha256(file: temporary).sha256 else {
            unlink(temporary)
            throw .cache(path: temporary, reason: "cannot read back the extracted file")
        }
        let path = try cache.store(temporary, sha256: hash)
        return .cached(path: path, origin: "\(origin) (member \(member))")
    }

    /// The cached file for `url`, downloading it first if needed.
    func download(_ url: String, pin: String?, location: SourceLocation?, component: String) throws(FetchError) -> String {
        if let pin, let cached = cache.verified(pin) {
            events?(.cached(url: url))
            return cached
        }
        if policy.offline {
            guard let pin else {
                throw .download(component: component, url: url, reason: "--offline, and an unpinned URL is never cached", attempts: 0)
            }
            throw .notCached(component: component, url: url, sha256: pin)
        }
        let partial = cache.partialPath(key: pin ?? FileDigest.sha256(Array(url.utf8)))
        let scheme = url.split(separator: ":").first.map { $0.lowercased() } ?? ""
        var attempt = 0
        var rangeRefused = false
        while true {
            var offset = FetchCache.size(of: partial)
            if offset > 0 && (!CurlDownload.resumable.contains(scheme) || rangeRefused) { offset = 0 }
            let failure = CurlDownload.fetch(url, appendingTo: partial, from: offset, policy: policy) { [events] received, total in
                events?(.downloading(url: url, received: received, total: total))
            }
            guard let failure else { break }
            if failure.isRangeRefused && !rangeRefused {
                // The server cannot continue the partial file: start over once, not counted.
                rangeRefused = true
                continue
            }
            attempt += 1
            let reason = failure.status > 0 ? "\(failure.message) (status \(failure.status))" : failure.message
            if failure.isPermanent || attempt > policy.retries {
                if failure.isPermanent { unlink(partial) }
                throw .download(component: component, url: url, reason: reason, attempts: attempt)
            }
            let delay = policy.backoff * Double(1 << min(attempt - 1, 10))
            events?(.retrying(url: url, attempt: attempt, reason: reason, delay: delay))
            if delay > 0 { usleep(useconds_t(min(delay, 600) * 1_000_000)) }
        }
        guard let hash = try? FileDigest.sha256(file: partial).sha256 else {
            unlink(partial)
            throw .cache(path: partial, reason: "cannot read back the download")
        }
        guard let pin else {
            unlink(partial)
            throw .unpinned(component: component, url: url, sha256: hash, location: location)
        }
        guard hash == pin else {
            unlink(partial)
            throw .pinMismatch(component: component, url: url, expected: pin, actual: hash)
        }
        events?(.downloaded(url: url, size: FetchCache.size(of: partial)))
        return try cache.store(partial, sha256: pin)
    }

    /// An archive error names the URL rather than the cache file it was saved as.
    func shown(_ text: String, _ path: String, _ name: String?) -> String {
        guard let name, name != path else { return text }
        return text.replacingOccurrences(of: path, with: name)
    }
}
