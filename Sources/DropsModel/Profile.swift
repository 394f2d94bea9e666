/// One component line of a profile: a first stage or a module, as written (before the
/// include chain is merged and before variables are expanded). Optional fields stay nil
/// when the profile does not set them, so an including profile can override field by field.
public struct ModuleSpec: Sendable, Equatable {
    /// Name in the tree (`bin/NAME`) and the first word of the command line the kernel sees.
    public var name: String
    public var role: Role?
    /// File name to look for in the search path; defaults to `name`.
    public var file: String?
    /// Arguments after the name; may contain `${variables}`.
    public var args: String?
    /// A missing file leaves the module out instead of failing the build.
    public var optional: Bool?
    public var inspect: Inspection?
    /// `boot` or `runtime`, possibly through a variable (`${ramdisk_delivery}`).
    public var delivery: String?
    /// GRUB legacy `modaddr` issued before this module (bootstrap/RMGR relocation address).
    public var modaddr: String?
    /// Text written into the tree instead of a file from the search path (config files).
    public var content: String?
    /// Built from a root folder by drops-build instead of found in the search path.
    public var ramdisk: RamDiskSpec?
    /// An archive (tar, tar.gz/xz/zst, cpio, zip, .deb) the file is taken from, absolute.
    public var archive: String?
    /// A URL (http, https, ftp, tftp, file) the file, or with `member` the archive, is fetched from.
    public var url: String?
    /// The SHA-256 the download must have; required with `url`.
    public var sha256: String?
    /// The path inside `archive` (or inside the archive `url` names); default: the file name.
    public var member: String?
    /// Where an including profile inserts a new module.
    public var after: String?
    public var before: String?
    public var location: SourceLocation

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }

    /// Fields of `other` that are set replace this module's.
    mutating func override(with other: ModuleSpec) {
        if let v = other.role { role = v }
        if let v = other.file { file = v }
        if let v = other.args { args = v }
        if let v = other.optional { optional = v }
        if let v = other.inspect { inspect = v }
        if let v = other.delivery { delivery = v }
        if let v = other.modaddr { modaddr = v }
        if let v = other.content { content = v }
        if let v = other.ramdisk { ramdisk = v }
        if let v = other.archive { archive = v; url = nil; sha256 = nil }
        if let v = other.url { url = v; archive = nil }
        if let v = other.sha256 { sha256 = v }
        if let v = other.member { member = v }
        location = other.location
    }
}

/// A serial-console line that proves a stage booted, with its own time budget.
public struct Milestone: Sendable, Equatable, Codable {
    public var pattern: String
    /// Seconds allowed since the previous milestone.
    public var timeout: Double

    public static let defaultTimeout: Double = 60

    public init(pattern: String, timeout: Double = Milestone.defaultTimeout) {
        self.pattern = pattern
        self.timeout = timeout
    }
}

/// A serial-console line that means the boot failed: the run ends at once with its verdict.
public struct FailurePattern: Sendable, Equatable, Codable {
    public var pattern: String
    /// True for a regular expression, false for plain text found anywhere in a line.
    public var regex: Bool
    /// What a match means, for people ("kernel debugger entered").
    public var verdict: String

    public init(pattern: String, regex: Bool = false, verdict: String) {
        self.pattern = pattern
        self.regex = regex
        self.verdict = verdict
    }

    /// `/regex/` or `'text'`, as progress lines and verdicts show it.
    public var shown: String { regex ? "/\(pattern)/" : "'\(pattern)'" }
}

/// A variable value and where it was defined.
public struct Variable: Sendable, Equatable {
    public var value: String
    public var origin: String
    public init(value: String, origin: String) {
        self.value = value
        self.origin = origin
    }
}

/// One profile file as decoded, before includes are merged.
public struct ProfileFile: Sendable {
    public var path: String
    public var text: String
    public var description: String?
    public var api: API?
    public var arch: Architecture?
    public var include: String?
    public var searchPath: [String] = []
    /// `sources = [...]`: archives and archive URLs searched after the folders.
    public var origins: [ComponentOrigin] = []
    public var remove: [(name: String, location: SourceLocation)] = []
    public var milestones: [Milestone]?
    public var failures: [FailurePattern]?
    public var configDelivery: ConfigDelivery?
    public var variables: [String: Variable] = [:]
    public var loader: ModuleSpec?
    public var modules: [ModuleSpec] = []
    public var locator: TOMLKeyLocatorBox

    /// Where a key path stands in this file (see `TOMLKeyLocator`).
    public func location(_ keyPath: String) -> SourceLocation { locator.value.location(keyPath) }
}

/// Wraps the locator so `ProfileFile` can be public without exposing the scanner.
public struct TOMLKeyLocatorBox: Sendable {
    let value: TOMLKeyLocator
}

/// A profile with its include chain merged: what one bootable system is.
public struct Profile: Sendable {
    public var name: String
    public var description: String
    public var api: API
    public var arch: Architecture
    /// Folders from the profile files, absolute, in the order they are searched.
    public var searchPath: [String]
    /// Archives and archive URLs searched for components not found in the folders.
    public var origins: [ComponentOrigin]
    public var milestones: [Milestone]
    /// Console lines that end a run as a failure: the profile's `failures`, else the API's defaults.
    public var failures: [FailurePattern]
    /// How the root task's configuration is delivered (`config_delivery`, default auto).
    public var configDelivery: ConfigDelivery
    public var variables: [String: Variable]
    public var loader: ModuleSpec
    public var modules: [ModuleSpec]
    /// The files this profile was made of, outermost first, with their text (hashed into the manifest).
    public var sources: [(path: String, text: String)]
}

/// A module made by drops-build from a root folder (`ramdisk = { … }` in a profile): what
/// DropsArchive's RAM disk builder takes. Paths are absolute (resolved against the profile).
public struct RamDiskSpec: Sendable, Equatable {
    public static let formats = ["cpio", "ext2"]
    public static let compressions = ["none", "gzip", "xz", "zstd", "lz4"]

    public var rootfs: String
    public var overlays: [String] = []
    public var devices: String?
    public var format = "cpio"
    public var compression = "gzip"
    public var size: String?
    /// A BusyBox binary, "none", or "auto": the busybox-static of the profile's architecture
    /// (/bin/busybox for amd64; for ia32 the i386 one `make busybox-i386` unpacks to
    /// build/busybox-i386/ beside the rootfs folder, or $DROPS_BUSYBOX_I386).
    public var busybox = "auto"

    public init(rootfs: String) {
        self.rootfs = rootfs
    }
}

/// An archive or a URL components can be taken from.
public enum ComponentOrigin: Sendable, Equatable, CustomStringConvertible {
    /// A local archive file (absolute path).
    case archive(path: String)
    /// A URL with the SHA-256 it must have (nil when the profile gives none: an error the
    /// fetcher reports with the hash to pin). `location` is where the profile names it.
    case url(String, sha256: String?, location: SourceLocation?)

    public var description: String {
        switch self {
        case let .archive(path): return path
        case let .url(url, _, _): return url
        }
    }

    /// URL schemes libcurl fetches for us.
    public static let schemes = ["http", "https", "ftp", "tftp", "file"]

    /// `URL#sha256=HEX` (the form `--source` takes) split into the URL and its pin.
    public static func parse(_ text: String, relativeTo directory: String, location: SourceLocation? = nil) -> ComponentOrigin {
        guard let scheme = text.range(of: "://").map({ text[..<$0.lowerBound].lowercased() }), schemes.contains(scheme) else {
            return .archive(path: absolutePath(text, relativeTo: directory))
        }
        if let pin = text.range(of: "#sha256=") {
            return .url(String(text[..<pin.lowerBound]), sha256: String(text[pin.upperBound...]).lowercased(), location: location)
        }
        return .url(text, sha256: nil, location: location)
    }

    /// A SHA-256 as profiles write it: 64 hex digits.
    public static func isSHA256(_ text: String) -> Bool {
        text.count == 64 && text.allSatisfy { $0.isHexDigit }
    }
}
