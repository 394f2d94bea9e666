import DropsImage
import DropsModel
import DropsTFTP
import DropsTestSupport
import Foundation
import Logging
import NIOPosix
import Testing
#if canImport(Glibc)
import Glibc
#endif

@testable import DropsFetch

func sha256Hex(_ bytes: [UInt8]) -> String {
    FileDigest.sha256(bytes)
}

/// Runs a program to completion; its exit status.
@discardableResult
func run(_ arguments: [String], in folder: String? = nil) throws -> Int32 {
    try ChildProcess.run(["/usr/bin/env"] + arguments, directory: folder).status
}

/// A folder with components, a cache, and a resolver over that cache.
final class FetchBench {
    let folder = TemporaryDirectory("drops-fetch")
    var cache: String { folder.path + "/cache" }
    var events: [FetchEvent] = []
    let fiasco = SyntheticBinary.elf(payload: Array(repeating: 0x5A, count: 300_000))
    let sigma0 = SyntheticBinary.elf(payload: Array("sigma0".utf8))

    init() {
        folder.write("tree/bin/fiasco", fiasco)
        folder.write("tree/nested/deep/sigma0", sigma0)
    }

    func resolver(_ policy: FetchPolicy = FetchPolicy(retries: 2, backoff: 0.01, stallTimeout: 5)) -> SourceResolver {
        SourceResolver(cache: FetchCache(root: cache), policy: policy, events: { [unowned self] in self.events.append($0) })
    }

    /// Resolves one component and returns its bytes and recorded origin.
    func resolve(_ origins: [ComponentOrigin], member: String?, name: String = "fiasco",
                 policy: FetchPolicy = FetchPolicy(retries: 2, backoff: 0.01, stallTimeout: 5)) throws(FetchError) -> (bytes: [UInt8], origin: String) {
        let component = PlannedComponent(name: name, role: .kernel, inspection: .elf, delivery: .boot, args: "",
                                         modaddr: nil, source: .remote(RemoteComponent(origins: origins, member: member)))
        let source = try resolver(policy).resolve(component)
        guard case let .cached(path, origin) = source else { Issue.record("not cached: \(String(describing: source))"); return ([], "") }
        return ([UInt8](FileManager.default.contents(atPath: path) ?? Data()), origin)
    }

    func cachedFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: cache + "/sha256")) ?? []).sorted()
    }

    func partialFiles() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: cache + "/partial")) ?? []
    }
}

/// Components taken out of archives of every format, made here with bsdtar and dpkg-deb.
@Suite struct ArchiveSourceTests {
    let bench = FetchBench()

    /// The archive formats and the bsdtar options that make them.
    static let formats: [(file: String, options: [String])] = [
        ("drops.tar", ["--format", "ustar"]),
        ("drops.tar.gz", ["-z"]),
        ("drops.tar.xz", ["-J"]),
        ("drops.tar.zst", ["--zstd"]),
        ("drops.cpio", ["--format", "newc"]),
        ("drops.zip", ["--format", "zip"]),
    ]

    func make(_ file: String, _ options: [String]) throws -> String {
        let path = bench.folder.path + "/" + file
        #expect(try run(["bsdtar", "-c", "-f", path] + options + ["-C", bench.folder.path + "/tree", "."]) == 0)
        return path
    }

    @Test(arguments: formats.map(\.file))
    func everyFormatYieldsTheMemberByPathAndByName(file: String) throws {
        let options = Self.formats.first { $0.file == file }!.options
        let archive = try make(file, options)
        let byPath = try bench.resolve([.archive(path: archive)], member: "bin/fiasco")
        #expect(byPath.bytes == bench.fiasco)
        #expect(byPath.origin == "\(archive) (member bin/fiasco)")
        let byName = try bench.resolve([.archive(path: archive)], member: "sigma0", name: "sigma0")
        #expect(byName.bytes == bench.sigma0)
        // Content-addressed: each member under its own hash.
        #expect(bench.cachedFiles() == [sha256Hex(bench.fiasco), sha256Hex(bench.sigma0)].sorted())
    }

    @Test func aDebianPackageYieldsTheFileFromItsDataMember() throws {
        let package = bench.folder.path + "/pkg"
        bench.folder.write("pkg/DEBIAN/control", text: "Package: drops-bin\nVersion: 1.0\nArchitecture: i386\nMaintainer: drops <drops@example.org>\nDescription: test\n")
        bench.folder.write("pkg/usr/lib/drops/bin/fiasco", bench.fiasco)
        #expect(try run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", package, bench.folder.path + "/drops.deb"]) == 0)
        let result = try bench.resolve([.archive(path: bench.folder.path + "/drops.deb")], member: "fiasco")
        #expect(result.bytes == bench.fiasco)
        #expect(result.origin.hasSuffix("(member usr/lib/drops/bin/fiasco)"))
    }

    @Test func aMissingMemberListsWhatTheArchiveHolds() throws {
        let archive = try make("drops.tar.gz", ["-z"])
        let error = #expect(throws: FetchError.self) { try bench.resolve([.archive(path: archive)], member: "pistachio") }
        #expect(error?.description == "component 'fiasco': archive \(archive) has no member 'pistachio'; it holds bin/fiasco, nested/deep/sigma0")
        #expect(bench.cachedFiles().isEmpty)
    }

    @Test func aCorruptArchiveIsAnErrorNamingIt() throws {
        let archive = try make("drops.tar.gz", ["-z"])
        let bytes = [UInt8](FileManager.default.contents(atPath: archive)!)
        let broken = bench.folder.write("broken.tar.gz", Array(bytes.prefix(bytes.count / 2)))
        let error = #expect(throws: FetchError.self) { try bench.resolve([.archive(path: broken)], member: "bin/fiasco") }
        #expect(error?.description.contains("archive \(broken)") == true)
        let garbage = bench.folder.write("garbage.tar", Array(repeating: 0x41, count: 4096))
        let notArchive = #expect(throws: FetchError.self) { try bench.resolve([.archive(path: garbage)], member: "fiasco") }
        #expect(notArchive?.description.contains("garbage.tar") == true)
        #expect(bench.cachedFiles().isEmpty)
    }

    @Test func searchingSeveralArchivesTakesTheFirstThatHoldsTheFile() throws {
        let first = try make("drops.tar", ["--format", "ustar"])
        bench.folder.write("other/sigma0", Array("another sigma0".utf8))
        let second = bench.folder.path + "/other.zip"
        #expect(try run(["bsdtar", "-c", "-f", second, "--format", "zip", "-C", bench.folder.path + "/other", "."]) == 0)
        let result = try bench.resolve([.archive(path: second), .archive(path: first)], member: "fiasco")
        #expect(result.bytes == bench.fiasco)
        let notThere = #expect(throws: FetchError.self) {
            try bench.resolve([.archive(path: second), .archive(path: first)], member: "hazelnut")
        }
        #expect(notThere?.description.hasPrefix("component 'fiasco': no file 'hazelnut' in the search path or in \(second), \(first)") == true)
    }
}

/// An HTTP server on 127.0.0.1 for one test: Python's http.server, or a small server of
/// our own that can stop half-way through a file and honour or ignore Range requests.
final class HTTPServer {
    let process: ChildProcess
    let port: Int
    let log: String

    /// `controlled`: paths are /MODE/FILE with MODE one of plain, cut-once, always-cut,
    /// norange-cut-once; each request is logged with its Range header.
    init(root: String, folder: TemporaryDirectory, controlled: Bool) throws {
        let portFile = folder.path + "/http-port-\(UUID().uuidString)"
        log = folder.path + "/http-log-\(UUID().uuidString)"
        if controlled {
            let script = folder.write("http-server.py", text: Self.script)
            process = try ChildProcess(["/usr/bin/python3", script, root, portFile, log])
        } else {
            process = try ChildProcess(["/usr/bin/python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                                        "--directory", root], output: portFile)
        }
        let deadline = Date().addingTimeInterval(10)
        var found: Int?
        while found == nil && Date() < deadline {
            let text = (try? String(contentsOfFile: portFile, encoding: .utf8)) ?? ""
            found = controlled ? Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
                : text.range(of: "port [0-9]+", options: .regularExpression).flatMap { Int(text[$0].dropFirst(5)) }
            if found == nil { usleep(20_000) }
        }
        guard let found else {
            process.stop(SIGKILL)
            throw CocoaError(.fileReadUnknown)
        }
        port = found
    }

    func stop() { process.stop(SIGKILL) }

    var requests: [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    static let script = """
        import http.server, os, re, socket, sys
        root, port_file, log_file = sys.argv[1:4]
        cut_done = set()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with open(log_file, "a") as log:
                    log.write("%s %s\\n" % (self.path, self.headers.get("Range", "-")))
                mode, _, name = self.path.lstrip("/").partition("/")
                path = os.path.join(root, name)
                if not os.path.isfile(path):
                    self.send_error(404)
                    return
                data = open(path, "rb").read()
                start = 0
                wanted = self.headers.get("Range")
                if wanted and not mode.startswith("norange"):
                    start = int(re.match(r"bytes=(\\d+)-", wanted).group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "always-cut" or (mode.endswith("cut-once") and name not in cut_done):
                    cut_done.add(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        with open(port_file + ".new", "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(port_file + ".new", port_file)
        server.serve_forever()
        """
}

/// Components fetched with libcurl: pins, the cache, --offline, failing servers, TFTP.
@Suite(.serialized) struct URLSourceTests {
    let bench = FetchBench()

    var pin: String { sha256Hex(bench.fiasco) }

    @Test func aCorrectPinIsCachedAndNeverDownloadedAgain() throws {
        let server = try HTTPServer(root: bench.folder.path + "/tree", folder: bench.folder, controlled: false)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/bin/fiasco"
        let first = try bench.resolve([.url(url, sha256: pin, location: nil)], member: nil)
        #expect(first.bytes == bench.fiasco)
        #expect(first.origin == url)
        #expect(bench.cachedFiles() == [pin])
        #expect(bench.partialFiles().isEmpty)
        server.stop()
        // The server is gone: the cache answers, online and offline.
        bench.events.removeAll()
        let again = try bench.resolve([.url(url, sha256: pin, location: nil)], member: nil)
        #expect(again.bytes == bench.fiasco)
        #expect(bench.events.contains { if case .cached = $0 { return true } else { return false } })
        let offline = try bench.resolve([.url(url, sha256: pin, location: nil)], member: nil, policy: FetchPolicy(offline: true))
        #expect(offline.bytes == bench.fiasco)
    }

    @Test func aWrongPinShowsBothHashesAndCachesNothing() throws {
        let server = try HTTPServer(root: bench.folder.path + "/tree", folder: bench.folder, controlled: false)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/bin/fiasco"
        let wrong = String(repeating: "ab", count: 32)
        let error = #expect(throws: FetchError.self) { try bench.resolve([.url(url, sha256: wrong, location: nil)], member: nil) }
        #expect(error == .pinMismatch(component: "fiasco", url: url, expected: wrong, actual: pin))
        #expect(error?.description.contains(wrong) == true && error?.description.contains(pin) == true)
        #expect(bench.cachedFiles().isEmpty)
        #expect(bench.partialFiles().isEmpty)
    }

    @Test func aURLWithoutAPinPrintsTheHashToPin() throws {
        let server = try HTTPServer(root: bench.folder.path + "/tree", folder: bench.folder, controlled: false)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/bin/fiasco"
        let at = SourceLocation(file: "profiles/x.toml", line: 7)
        let error = #expect(throws: FetchError.self) { try bench.resolve([.url(url, sha256: nil, location: at)], member: nil) }
        #expect(error?.description.contains("add sha256 = \"\(pin)\"") == true)
        #expect(error?.description.contains("profiles/x.toml:7") == true)
        #expect(bench.cachedFiles().isEmpty)
    }

    @Test func offlineWithoutACachedCopyIsAnError() throws {
        let error = #expect(throws: FetchError.self) {
            try bench.resolve([.url("http://127.0.0.1:9/bin/fiasco", sha256: pin, location: nil)], member: nil, policy: FetchPolicy(offline: true))
        }
        #expect(error == .notCached(component: "fiasco", url: "http://127.0.0.1:9/bin/fiasco", sha256: pin))
    }

    @Test func aServerThatStopsMidTransferIsResumedWithARange() throws {
        let server = try HTTPServer(root: bench.folder.path + "/tree", folder: bench.folder, controlled: true)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/cut-once/bin/fiasco"
        let result = try bench.resolve([.url(url, sha256: pin, location: nil)], member: nil)
        #expect(result.bytes == bench.fiasco)
        let requests = server.requests
        #expect(requests.count == 2)
        #expect(requests.first == "/cut-once/bin/fiasco -")
        #expect(requests.last == "/cut-once/bin/fiasco bytes=\(bench.fiasco.count / 2)-")
        #expect(bench.events.contains { if case .retrying = $0 { return true } else { return false } })
    }

    @Test func aServerWithoutRangesIsReadAgainFromTheStart() throws {
        let server = try HTTPServer(root: bench.folder.path + "/tree", folder: bench.folder, controlled: true)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/norange-cut-once/bin/fiasco"
        let result = try bench.resolve([.url(url, sha256: pin, location: nil)], member: nil)
        #expect(result.bytes == bench.fiasco)
        #expect(server.requests.last == "/norange-cut-once/bin/fiasco -")
    }

    @Test func aServerThatAlwaysStopsFailsAfterTheRetriesAndCachesNothing() throws {
        let server = try HTTPServer(root: bench.folder.path + "/tree", folder: bench.folder, controlled: true)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/always-cut/bin/fiasco"
        let error = #expect(throws: FetchError.self) { try bench.resolve([.url(url, sha256: pin, location: nil)], member: nil) }
        guard case let .download(_, failedURL, _, attempts) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(failedURL == url && attempts == 3)
        #expect(server.requests.count == 3)
        #expect(bench.cachedFiles().isEmpty)
        let missing = #expect(throws: FetchError.self) {
            try bench.resolve([.url("http://127.0.0.1:\(server.port)/plain/nothing", sha256: pin, location: nil)], member: nil)
        }
        guard case let .download(_, _, reason, tries) = missing else { Issue.record("\(String(describing: missing))"); return }
        #expect(tries == 1 && reason.contains("404"))
    }

    @Test func anArchiveURLWithAMember() throws {
        let archive = bench.folder.path + "/www/drops.tar.xz"
        try FileManager.default.createDirectory(atPath: bench.folder.path + "/www", withIntermediateDirectories: true)
        #expect(try run(["bsdtar", "-c", "-J", "-f", archive, "-C", bench.folder.path + "/tree", "."]) == 0)
        let archivePin = sha256Hex([UInt8](FileManager.default.contents(atPath: archive)!))
        let server = try HTTPServer(root: bench.folder.path + "/www", folder: bench.folder, controlled: false)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/drops.tar.xz"
        let result = try bench.resolve([.url(url, sha256: archivePin, location: nil)], member: "sigma0", name: "sigma0")
        #expect(result.bytes == bench.sigma0)
        #expect(result.origin == "\(url) (member nested/deep/sigma0)")
        #expect(bench.cachedFiles() == [archivePin, sha256Hex(bench.sigma0)].sorted())
    }

    /// file:// needs no server: a shared folder (NFS, a USB stick) named as a URL.
    @Test func aFileURLIsPinnedAndCachedLikeAnyOther() throws {
        let url = "file://\(bench.folder.path)/tree/bin/fiasco"
        let result = try bench.resolve([.url(url, sha256: pin, location: nil)], member: nil)
        #expect(result.bytes == bench.fiasco)
        #expect(result.origin == url)
        #expect(bench.cachedFiles() == [pin])
        // A file that is not there (with a pin the cache does not hold) fails at once, not
        // retried, and names the URL.
        let missing = "file://\(bench.folder.path)/tree/bin/nothing"
        do {
            _ = try bench.resolve([.url(missing, sha256: sha256Hex(bench.sigma0), location: nil)], member: nil, name: "sigma0")
            Issue.record("a missing file was accepted")
        } catch {
            guard case let .download(component, url, _, attempts) = error else { Issue.record("\(error)"); return }
            #expect(component == "sigma0" && url == missing && attempts == 1)
        }
    }

    @Test func ourOwnTFTPServerThroughLibcurl() throws {
        var logger = Logger(label: "drops.tftp.test")
        logger.logLevel = .critical
        var configuration = TFTPServerConfiguration(root: bench.folder.path + "/tree")
        configuration.host = "127.0.0.1"
        configuration.port = 0
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let server = try TFTPServer(configuration: configuration, group: group, logger: logger)
        let port = try server.start().port!
        defer { server.shutdown(grace: .milliseconds(100)) }
        let url = "tftp://127.0.0.1:\(port)/bin/fiasco"
        let result = try bench.resolve([.url(url, sha256: pin, location: nil)], member: nil)
        #expect(result.bytes == bench.fiasco)
        // A pin no cached file has: sigma0 is downloaded and refused.
        let otherPin = sha256Hex(Array("not sigma0".utf8))
        do {
            _ = try bench.resolve([.url("tftp://127.0.0.1:\(port)/nested/deep/sigma0", sha256: otherPin, location: nil)], member: nil)
            Issue.record("a wrong pin was accepted")
        } catch {
            #expect(error == .pinMismatch(component: "fiasco", url: "tftp://127.0.0.1:\(port)/nested/deep/sigma0",
                                          expected: otherPin, actual: sha256Hex(bench.sigma0)))
        }
        // The server's "file not found" is final: one attempt, no retries.
        do {
            _ = try bench.resolve([.url("tftp://127.0.0.1:\(port)/bin/nothing", sha256: otherPin, location: nil)], member: nil)
            Issue.record("a missing file was accepted")
        } catch {
            guard case let .download(_, _, _, attempts) = error else { Issue.record("\(error)"); return }
            #expect(attempts == 1, "\(error)")
        }
    }
}

/// The cache folder: where it is and what counts as cached.
@Suite struct FetchCacheTests {
    @Test func theCacheFolderFollowsTheEnvironment() {
        #expect(FetchCache.defaultRoot(environment: ["DROPS_CACHE_DIR": "/x", "XDG_CACHE_HOME": "/y", "HOME": "/h"]) == "/x")
        #expect(FetchCache.defaultRoot(environment: ["XDG_CACHE_HOME": "/y", "HOME": "/h"]) == "/y/drops")
        #expect(FetchCache.defaultRoot(environment: ["HOME": "/h"]) == "/h/.cache/drops")
    }

    @Test func aDamagedCachedFileIsNotUsed() throws {
        let folder = TemporaryDirectory("drops-cache")
        let cache = FetchCache(root: folder.path)
        try cache.prepare()
        let bytes = Array("the real file".utf8)
        let pin = sha256Hex(bytes)
        folder.write("sha256/\(pin)", Array("a damaged copy".utf8))
        #expect(cache.verified(pin) == nil)
        #expect(!FileManager.default.fileExists(atPath: cache.path(for: pin)))
        folder.write("sha256/\(pin)", bytes)
        #expect(cache.verified(pin) == cache.path(for: pin))
    }
}
