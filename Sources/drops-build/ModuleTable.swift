import DropsModel

/// The module table printed after a build.
enum ModuleTable {
    static func render(first: Manifest.Module, modules: [Manifest.Module], runtime: [Manifest.Module]) -> String {
        var rows = [["#", "name", "role", "size", "sha256", "command line"]]
        rows.append(["-", first.name, first.role.rawValue, String(first.size), String(first.sha256.prefix(12)), first.cmdline])
        for (index, module) in modules.enumerated() {
            rows.append([String(index), module.name, module.role.rawValue, String(module.size), String(module.sha256.prefix(12)), module.cmdline])
        }
        for module in runtime {
            rows.append(["rt", module.name, module.role.rawValue, String(module.size), String(module.sha256.prefix(12)), module.cmdline])
        }
        let widths = (0..<5).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            (0..<5).map { row[$0].padding(toLength: widths[$0] + 2, withPad: " ", startingAt: 0) }.joined() + row[5]
        }.joined(separator: "\n")
    }
}
