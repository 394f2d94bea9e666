import DropsModel
import DropsTFTP
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Errors before anything is served.
public enum HTTPServerError: Error, Sendable, CustomStringConvertible {
    case root(String, reason: String)
    case listen(String, reason: String)

    public var description: String {
        switch self {
        case let .root(path, reason): return "cannot serve \(path) over HTTP: \(reason)"
        case let .listen(address, reason): return "cannot listen for HTTP on \(address): \(reason); choose another --http-port or stop what holds it"
        }
    }
}

/// The served tree over HTTP/1.1: GET and HEAD, one byte range, keep-alive, ETags from the
/// manifests' SHA-256, read-only, with TFTP's path rules. Parsing is NIOHTTP1's (llhttp,
/// with its header limits); files go out with sendfile through FileRegion.
public final class HTTPFileServer: Sendable {
    public struct Configuration: Sendable {
        public var root: String
        public var host = "127.0.0.1"
        public var port = 8080
        public var stripPrefixes: [String] = []
        /// Files served under a name of the root without being in it (boot programs made at
        /// start), as TFTP's extraFiles: root-relative name → path.
        public var extraFiles: [String: String] = [:]
        /// Seconds a connection may stay without a byte either way before it is closed.
        public var idleSeconds: Int64 = 30
        /// Bytes all header lines of one request may take together, and one line alone.
        public var maxHeaderBytes = 16 * 1024
        public var maxHeaderCount = 100
        public var jsonLog = false

        public init(root: String) { self.root = root }
    }

    public let configuration: Configuration
    let resolver: PathResolver
    let etags: [String: String]
    let logger: Logger
    private let group: EventLoopGroup
    /// The listening channel, set once it is bound.
    private let channel = NIOLockedValueBox<Channel?>(nil)
    private let observer = NIOLockedValueBox<(@Sendable (HTTPRequestRecord) -> Void)?>(nil)

    public init(configuration: Configuration, group: EventLoopGroup, logger: Logger = Logger(label: "drops.http")) throws(HTTPServerError) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        do { resolver = try PathResolver(root: configuration.root, stripPrefixes: configuration.stripPrefixes) } catch {
            throw .root(configuration.root, reason: error.reason)
        }
        etags = Self.manifestDigests(root: resolver.realRoot)
    }

    /// Every file the manifests under the root list, by path from the root, with its SHA-256:
    /// ROOT/manifest.json (a tree served alone) and ROOT/NAME/manifest.json (a folder of trees).
    static func manifestDigests(root: String) -> [String: String] {
        var digests: [String: String] = [:]
        var folders = [""]
        folders += ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted().map { $0 + "/" }
        for folder in folders {
            guard let data = FileManager.default.contents(atPath: root + "/" + folder + Manifest.fileName),
                  let manifest = try? Manifest.decode(data) else { continue }
            for file in manifest.files { digests[folder + file.path] = file.sha256 }
        }
        return digests
    }

    /// Binds and starts serving; the bound address (port 0 picks one).
    @discardableResult
    public func start() throws(HTTPServerError) -> SocketAddress {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = configuration.maxHeaderBytes
        limits.maxHeaderListSize = configuration.maxHeaderBytes
        limits.maxHeaderFieldCount = configuration.maxHeaderCount
        let decoderLimits = limits
        let idle = TimeAmount.seconds(configuration.idleSeconds)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] child in
                child.eventLoop.makeCompletedFuture {
                    let sync = child.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(allTimeout: idle))
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true,
                                                         withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
                    try sync.addHandler(HTTPFileHandler(server: self))
                }
            }
        let bound: Channel
        do { bound = try bootstrap.bind(host: configuration.host, port: configuration.port).wait() } catch {
            throw .listen("\(configuration.host):\(configuration.port)", reason: "\(error)")
        }
        channel.withLockedValue { $0 = bound }
        let address = bound.localAddress!
        logger.notice("serving \(resolver.realRoot) over HTTP on \(configuration.host):\(address.port ?? configuration.port)")
        return address
    }

    public func stop() {
        try? channel.withLockedValue { $0 }?.close().wait()
    }

    /// Called after each answered request, with its log record (drops-run follows a boot so).
    public func setRequestObserver(_ observe: @escaping @Sendable (HTTPRequestRecord) -> Void) {
        observer.withLockedValue { $0 = observe }
    }

    func log(_ record: HTTPRequestRecord) {
        observer.withLockedValue { $0 }?(record)
        let line = configuration.jsonLog ? record.json : record.text
        if record.status < 400 { logger.notice("\(line)") } else { logger.warning("\(line)") }
    }
}

/// One connection: requests in order (NIO's pipelining helper holds the next until this
/// one is answered), each answered from the tree or refused.
final class HTTPFileHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: HTTPFileServer
    private var head: HTTPRequestHead?
    private var started = Date()
    /// Closes a connection whose next request head has not come whole in time: a client
    /// that trickles a byte a second never looks idle, yet must not hold a connection.
    private var headDeadline: Scheduled<Void>?

    init(server: HTTPFileServer) { self.server = server }

    func handlerAdded(context: ChannelHandlerContext) { armHeadDeadline(context) }

    func handlerRemoved(context: ChannelHandlerContext) { headDeadline?.cancel() }

    private func armHeadDeadline(_ context: ChannelHandlerContext) {
        headDeadline?.cancel()
        let channel = context.channel
        headDeadline = context.eventLoop.scheduleTask(in: .seconds(server.configuration.idleSeconds)) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(request):
            headDeadline?.cancel()
            headDeadline = nil
            head = request
            started = Date()
        case .body:
            break
        case .end:
            guard let request = head else { return }
            head = nil
            answer(request, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Idle for the limit (a client that sends a byte now and then, or nothing): closed.
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    private func answer(_ request: HTTPRequestHead, context: ChannelHandlerContext) {
        let client = context.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let method = request.method.rawValue
        let server = server
        let started = started
        let target = String(request.uri.prefix(512))
        @Sendable func record(_ status: Int, bytes: Int = 0, reason: String = "") {
            server.log(HTTPRequestRecord(client: client, method: method, path: target, status: status,
                                         bytes: bytes, seconds: Date().timeIntervalSince(started), reason: reason))
        }
        guard request.method == .GET || request.method == .HEAD else {
            refuse(.methodNotAllowed, request, context: context, extra: [("Allow", "GET, HEAD")])
            return record(405, reason: "only GET and HEAD")
        }
        let path: String
        do { path = try HTTPRequestPath.resolve(target: request.uri, with: server.resolver, extraFiles: server.configuration.extraFiles) } catch {
            switch error {
            case let .badRequest(reason):
                refuse(.badRequest, request, context: context)
                record(400, reason: reason)
            case let .refused(status, reason):
                refuse(status == 404 ? .notFound : .forbidden, request, context: context)
                record(status, reason: reason)
            }
            return
        }
        let file: NIOFileHandle
        let size: Int
        do {
            file = try NIOFileHandle(_deprecatedPath: path)
            size = try file.withUnsafeFileDescriptor { descriptor -> Int in
                var info = stat()
                guard fstat(descriptor, &info) == 0 else { throw IOError(errnoCode: errno, reason: "fstat") }
                return Int(info.st_size)
            }
        } catch {
            refuse(.notFound, request, context: context)
            return record(404, reason: "cannot open the file: \(error)")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Accept-Ranges", value: "bytes")
        headers.add(name: "Content-Type", value: "application/octet-stream")
        let relative = path.hasPrefix(server.resolver.realRoot + "/") ? String(path.dropFirst(server.resolver.realRoot.count + 1)) : ""
        let etag = server.etags[relative].map { "\"\($0)\"" }
        if let etag { headers.add(name: "ETag", value: etag) }
        var status = HTTPResponseStatus.ok
        var first = 0
        var count = size
        switch ByteRange(header: request.headers.first(name: "Range"), size: size) {
        case .whole:
            break
        case let .part(low, high):
            // A Range with If-Range that no longer matches gets the whole file.
            if let ifRange = request.headers.first(name: "If-Range"), ifRange != etag { break }
            status = .partialContent
            first = low
            count = high - low + 1
            headers.add(name: "Content-Range", value: "bytes \(low)-\(high)/\(size)")
        case .unsatisfiable:
            try? file.close()
            refuse(.rangeNotSatisfiable, request, context: context, extra: [("Content-Range", "bytes */\(size)")])
            return record(416, reason: "range \(request.headers.first(name: "Range") ?? "") outside the file's \(size) bytes")
        }
        headers.add(name: "Content-Length", value: String(count))
        let body: IOData? = request.method == .GET && count > 0
            ? .fileRegion(FileRegion(fileHandle: file, readerIndex: first, endIndex: first + count)) : nil
        let sent = request.method == .GET ? count : 0
        let code = Int(status.code)
        respond(status, headers: headers, body: body, to: request, context: context) { result in
            try? file.close()
            if case .failure = result { record(code, bytes: 0, reason: "the client went away") } else { record(code, bytes: sent) }
        }
    }

    private func refuse(_ status: HTTPResponseStatus, _ request: HTTPRequestHead, context: ChannelHandlerContext, extra: [(String, String)] = []) {
        let text = "\(status.code) \(status.reasonPhrase)\n"
        var headers = HTTPHeaders(extra)
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        let body: IOData? = request.method == .HEAD ? nil : .byteBuffer(context.channel.allocator.buffer(string: text))
        respond(status, headers: headers, body: body, to: request, context: context) { _ in }
    }

    /// Writes a response and ends it; then the connection waits for its next request head
    /// (keep-alive) or closes, and `done` learns whether the client took it all.
    private func respond(_ status: HTTPResponseStatus, headers: HTTPHeaders, body: IOData?, to request: HTTPRequestHead,
                         context: ChannelHandlerContext, done: @escaping @Sendable (Result<Void, Error>) -> Void) {
        var headers = headers
        let keepAlive = request.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if let body { context.write(wrapOutboundOut(.body(body)), promise: nil) }
        let channel = context.channel
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { result in
            if keepAlive { loopBound.value.0.armHeadDeadline(loopBound.value.1) } else { channel.close(promise: nil) }
            done(result)
        }
    }
}
