import DropsImage
import DropsModel
import DropsTestSupport
import Foundation
import Testing

/// The error of a typed-throwing call, or nil when it succeeded, so tests can match the case.
func imageError<T>(_ body: () throws(ImageError) -> T) -> ImageError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// A shipped profile from profiles/ planned against a components folder.
func shippedPlan(_ name: String, components: String, options: PlanOptions = PlanOptions()) throws -> BuildPlan {
    var options = options
    options.searchPath = [components] + options.searchPath
    let profile = try ProfileLoader(directory: Repository.profiles).load(name)
    return try Planner.plan(profile, options: options)
}

/// A profile written as text into `folder/profiles/NAME.toml`, then loaded and planned.
func writtenPlan(_ text: String, name: String, in folder: TemporaryDirectory,
                 options: PlanOptions) throws -> BuildPlan {
    folder.write("profiles/\(name).toml", text: text)
    let profile = try ProfileLoader(directory: folder.path + "/profiles").load(name)
    return try Planner.plan(profile, options: options)
}

/// A builder that does not log "wrote …" lines into the test output.
func quietBuilder() -> ImageBuilder {
    var builder = ImageBuilder()
    builder.logger.logLevel = .critical
    return builder
}

/// Every regular file below `root`, by path relative to it, with its bytes.
func snapshot(_ root: String) -> [String: Data] {
    var files: [String: Data] = [:]
    let manager = FileManager.default
    for relative in (try? manager.subpathsOfDirectory(atPath: root)) ?? [] {
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
        files[relative] = manager.contents(atPath: root + "/" + relative)
    }
    return files
}

/// Entries directly in a folder, sorted, hidden ones included.
func entries(_ folder: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
}

/// SHA-256 of files computed by coreutils, an oracle independent of the code under test.
func coreutilsSHA256(_ paths: [String]) throws -> [String: String] {
    let output = try ChildProcess.run(["/usr/bin/sha256sum"] + paths).stdout
    var result: [String: String] = [:]
    for line in output.split(separator: "\n") {
        let parts = line.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { continue }
        result[String(parts[1].drop(while: { $0 == " " || $0 == "*" }))] = String(parts[0])
    }
    return result
}

let sha256sumAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/sha256sum")

/// Whether the host has every PXELINUX file the builder copies into trees.
let pxelinuxInstalled = BootLoaderFiles.pxelinux.allSatisfy { FileManager.default.fileExists(atPath: $0.hostPath) }
