import ArgumentParser
import DropsCLI
import DropsFetch
import DropsModel
import Foundation

/// How components from archives and URLs are fetched.
struct FetchOptions: ParsableArguments {
    @Flag(name: .long, help: "Use only the download cache; a pinned URL that is not cached is an error (fill the cache with drops-build fetch).")
    var offline = false

    @Option(name: .long, help: ArgumentHelp("The download cache. Default: $DROPS_CACHE_DIR, else $XDG_CACHE_HOME/drops, else ~/.cache/drops.", valueName: "dir"))
    var cacheDir: String?

    @Option(name: .long, help: ArgumentHelp("Attempts after a failed download, with doubling pauses from 1 s.", valueName: "n"))
    var retries = 3

    @Option(name: .long, help: ArgumentHelp("Give a download up after this many seconds without data.", valueName: "seconds"))
    var stallTimeout = 30

    func validate() throws {
        guard retries >= 0 else { throw ValidationError("--retries must be 0 or more") }
        guard stallTimeout > 0 else { throw ValidationError("--stall-timeout must be more than 0") }
    }

    /// A resolver that reports progress on standard error unless `quiet`.
    func resolver(quiet: Bool) -> SourceResolver {
        let display = FetchProgressDisplay(quiet: quiet)
        return SourceResolver(cache: FetchCache(root: cacheDir ?? FetchCache.defaultRoot()),
                              policy: FetchPolicy(offline: offline, retries: retries, stallTimeout: stallTimeout),
                              events: { display.show($0) })
    }

    /// `plan` with its archive and URL components in the cache.
    func resolve(_ plan: BuildPlan, quiet: Bool) throws -> BuildPlan {
        do { return try resolver(quiet: quiet).resolve(plan) } catch {
            throw CommandFailure(error.description)
        }
    }
}

/// Download and extraction progress on standard error: a bar redrawn in place on a
/// terminal, a line at the start and end of each download otherwise.
final class FetchProgressDisplay {
    let quiet: Bool
    let terminal = isatty(2) == 1
    var lastDraw = Date.distantPast
    var started: Set<String> = []
    var barShown = false

    init(quiet: Bool) {
        self.quiet = quiet
    }

    func show(_ event: FetchEvent) {
        guard !quiet else { return }
        switch event {
        case let .downloading(url, received, total):
            if !terminal {
                if started.insert(url).inserted { line("downloading \(url)") }
                return
            }
            guard Date().timeIntervalSince(lastDraw) > 0.1 || (total > 0 && received == total) else { return }
            lastDraw = Date()
            draw(label: url, done: received, total: total)
        case let .retrying(url, attempt, reason, delay):
            line("\(url): \(reason); attempt \(attempt + 1) in \(String(format: "%.0f", delay)) s")
        case let .cached(url):
            line("\(url): in the cache")
        case let .downloaded(url, size):
            line("downloaded \(url) (\(Self.size(size)), SHA-256 matches the pin)")
        case let .extracting(archive, member, read, total):
            guard terminal, Date().timeIntervalSince(lastDraw) > 0.1 else { return }
            lastDraw = Date()
            draw(label: "\(member) from \(archive)", done: read, total: total)
        }
    }

    func draw(label: String, done: Int64, total: Int64) {
        let width = 24
        let text: String
        if total > 0 {
            let filled = Int(Double(width) * Double(min(done, total)) / Double(total))
            text = "[\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] "
                + "\(Int(100 * Double(min(done, total)) / Double(total)))% \(Self.size(done))/\(Self.size(total)) \(label)"
        } else {
            text = "\(Self.size(done)) \(label)"
        }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text.prefix(160))".utf8))
        barShown = true
    }

    func line(_ text: String) {
        FileHandle.standardError.write(Data(((barShown ? "\r\u{1B}[K" : "") + text + "\n").utf8))
        barShown = false
    }

    static func size(_ bytes: Int64) -> String {
        bytes >= 1 << 20 ? String(format: "%.1f MiB", Double(bytes) / 1048576) : String(format: "%.1f KiB", Double(bytes) / 1024)
    }
}

struct FetchProfile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Fill the download cache with a profile's archives and URLs, without building.",
        discussion: """
            Every component with url = "…" (or found in a sources = [...] archive URL) is \
            downloaded with libcurl, checked against its sha256 pin, and stored in the cache \
            under that hash; members of archives are extracted into the cache too. Files already \
            cached are not downloaded again. Afterwards drops-build profile NAME --offline builds \
            without the network. With --offline, fetch only checks that everything is cached.
            """)

    @OptionGroup var plan: PlanArguments
    @OptionGroup var fetch: FetchOptions
    @OptionGroup var output: OutputOptions

    struct Row: Encodable {
        var name: String
        var origin: String
        var cached: String
    }

    func run() throws {
        CommandMain.bootstrapLogging(output.logLevel)
        let planned = try plan.plan(allowMissing: true)
        let resolved = try fetch.resolve(planned, quiet: output.quiet || output.json)
        var rows: [Row] = []
        for (before, after) in zip([planned.firstStage] + planned.modules, [resolved.firstStage] + resolved.modules) {
            guard case .remote = before.source, case let .cached(path, origin) = after.source else { continue }
            rows.append(Row(name: after.name, origin: origin, cached: path))
        }
        if output.json {
            try CommandMain.printJSON(rows)
            return
        }
        if rows.isEmpty {
            print("\(planned.profileName): no component comes from an archive or URL; nothing to fetch")
        }
        for row in rows { print("\(row.name): \(row.origin) -> \(row.cached)") }
    }
}
