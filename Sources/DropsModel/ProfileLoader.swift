import Foundation

/// Finds profiles by name in a folder and merges their include chains.
public struct ProfileLoader: Sendable {
    public var directory: String

    /// `directory` may be relative; it is made absolute so that recorded paths do not depend
    /// on the working directory of a later reader.
    public init(directory: String) {
        self.directory = absolutePath(directory, relativeTo: FileManager.default.currentDirectoryPath)
    }

    /// Names of the profiles in the folder (`NAME.toml`), sorted.
    public func profileNames() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// The path a profile name or path refers to. A name with a slash or a `.toml` ending is a path.
    public func path(for reference: String, relativeTo base: String? = nil) -> String {
        if reference.contains("/") || reference.hasSuffix(".toml") {
            return absolutePath(reference, relativeTo: base ?? FileManager.default.currentDirectoryPath)
        }
        return (base ?? directory) + "/" + reference + ".toml"
    }

    /// Loads and merges a profile and everything it includes.
    public func load(_ reference: String) throws(ModelError) -> Profile {
        let path = path(for: reference)
        guard FileManager.default.fileExists(atPath: path) else {
            throw .unknownProfile(name: reference, directory: directory, known: profileNames())
        }
        let name = String(path.split(separator: "/").last ?? "profile").replacingOccurrences(of: ".toml", with: "")
        let chain = try decodeChain(path: path, seen: [])
        return try merge(name: name, chain: chain)
    }

    /// The profile files from the outermost to the innermost include.
    private func decodeChain(path: String, seen: [String]) throws(ModelError) -> [ProfileFile] {
        if seen.contains(path) { throw .includeCycle(chain: seen + [path]) }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .syntax(SourceLocation(file: path, line: 1), message: "cannot read the file: \(error.localizedDescription)")
        }
        let file = try ProfileDecoder.decode(text: text, path: path)
        guard let include = file.include else { return [file] }
        let includePath = self.path(for: include, relativeTo: parentDirectory(of: path))
        guard FileManager.default.fileExists(atPath: includePath) else {
            throw .invalidValue(file.location("include"), key: "include",
                                message: "no profile file \(includePath); name a profile in the same folder or give a path")
        }
        return [file] + (try decodeChain(path: includePath, seen: seen + [path]))
    }

    /// Applies the files innermost first, so each including profile overrides what it includes.
    func merge(name: String, chain: [ProfileFile]) throws(ModelError) -> Profile {
        var description: String?
        var api: API?
        var arch: Architecture?
        var searchPath: [String] = []
        var origins: [ComponentOrigin] = []
        var milestones: [Milestone] = []
        var failures: [FailurePattern]?
        var configDelivery = ConfigDelivery.auto
        var variables: [String: Variable] = [:]
        var loader: ModuleSpec?
        var modules: [ModuleSpec] = []

        for file in chain.reversed() {
            if let v = file.description { description = v }
            if let v = file.api { api = v }
            if let v = file.arch { arch = v }
            searchPath = file.searchPath + searchPath
            origins = file.origins + origins
            if let v = file.milestones { milestones = v }
            if let v = file.failures { failures = v }
            if let v = file.configDelivery { configDelivery = v }
            variables.merge(file.variables) { _, new in new }
            if let child = file.loader {
                if var base = loader, base.name == child.name {
                    base.override(with: child)
                    loader = base
                } else {
                    loader = child
                }
            }
            for (removed, at) in file.remove {
                guard let index = modules.firstIndex(where: { $0.name == removed }) else {
                    throw .unknownAnchor(at, key: "remove", name: removed)
                }
                modules.remove(at: index)
            }
            var seen = Set<String>()
            for child in file.modules {
                guard seen.insert(child.name).inserted else {
                    throw .duplicateModule(child.location, name: child.name)
                }
                var merged = child
                if let index = modules.firstIndex(where: { $0.name == child.name }) {
                    merged = modules[index]
                    merged.override(with: child)
                    if child.after == nil && child.before == nil {
                        modules[index] = merged
                        continue
                    }
                    modules.remove(at: index)
                }
                if let anchor = child.after {
                    guard let index = modules.firstIndex(where: { $0.name == anchor }) else {
                        throw .unknownAnchor(child.location, key: "after", name: anchor)
                    }
                    modules.insert(merged, at: index + 1)
                } else if let anchor = child.before {
                    guard let index = modules.firstIndex(where: { $0.name == anchor }) else {
                        throw .unknownAnchor(child.location, key: "before", name: anchor)
                    }
                    modules.insert(merged, at: index)
                } else {
                    modules.append(merged)
                }
            }
        }

        let outer = chain[0]
        guard let api else {
            throw .invalidValue(outer.location("api"), key: "api",
                                message: "the profile sets no api; add api = one of \(API.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let loader else {
            throw .invalidValue(outer.location("loader"), key: "loader",
                                message: "the profile has no [loader] (the first-stage image the boot loader starts)")
        }
        guard let loaderRole = loader.role, Role.firstStage.contains(loaderRole) else {
            throw .invalidValue(loader.location, key: "loader.role",
                                message: "the first stage needs role = one of \(Role.firstStage.map(\.rawValue).sorted().joined(separator: ", "))")
        }
        var names: Set<String> = [loader.name]
        for module in modules {
            guard module.role != nil else {
                throw .invalidValue(module.location, key: "role",
                                    message: "module '\(module.name)' has no role; add role = one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard names.insert(module.name).inserted else {
                throw .duplicateModule(module.location, name: module.name)
            }
        }
        return Profile(
            name: name, description: description ?? "", api: api, arch: arch ?? .ia32,
            searchPath: searchPath, origins: origins, milestones: milestones,
            failures: failures ?? APIRules.rules(for: api).failures, configDelivery: configDelivery, variables: variables,
            loader: loader, modules: modules, sources: chain.map { ($0.path, $0.text) })
    }
}
