/// Enforces an API's rules (`APIRules`) and its first stage's module order (`FirstStageLayout`).
public enum RuleChecker {
    public static func check(_ plan: BuildPlan) throws(ModelError) {
        let rules = APIRules.rules(for: plan.api)
        func fail(_ message: String) -> ModelError {
            .ruleViolation(profile: plan.profileName, message: "\(message) (\(plan.api.rawValue): \(rules.note))")
        }
        guard rules.architectures.contains(plan.arch) else {
            throw fail("arch \(plan.arch.rawValue) is not possible; use \(rules.architectures.map(\.rawValue).sorted().joined(separator: " or "))")
        }
        guard rules.firstStages.contains(plan.firstStage.role) else {
            throw fail("the first stage '\(plan.firstStage.name)' has role \(plan.firstStage.role.rawValue), but this API boots with \(rules.firstStages.map(\.rawValue).sorted().joined(separator: " or "))")
        }
        let roles = Set(plan.modules.map(\.role))
        for required in rules.required where !roles.contains(required) {
            throw fail("no module has role \(required.rawValue), which this API requires")
        }
        for module in plan.modules where rules.forbidden.contains(module.role) || Role.firstStage.contains(module.role) {
            throw fail("module '\(module.name)' has role \(module.role.rawValue), which cannot be a module here")
        }

        let boot = plan.bootModules
        let layout = FirstStageLayout.layout(for: plan.firstStage.role, args: plan.firstStage.args)
        for (index, accepted) in layout.slots.enumerated() {
            let expected = accepted.map(\.rawValue).sorted().joined(separator: " or ")
            guard index < boot.count else {
                throw fail("\(plan.firstStage.role.rawValue) expects module \(index) to be the \(expected), but there are only \(boot.count) boot modules")
            }
            guard accepted.contains(boot[index].role) else {
                throw fail("\(plan.firstStage.role.rawValue) expects module \(index) to be the \(expected), but it is '\(boot[index].name)' (\(boot[index].role.rawValue)); reorder the modules")
            }
        }

        // -symbols, -lines and -configfile each take the module after the fixed slots.
        let owner = layout.rootTaskSlot.flatMap { $0 < boot.count ? boot[$0] : nil } ?? plan.firstStage
        let words = owner.args.split(separator: " ").map(String.init)
        var next = layout.slots.count
        for word in words {
            guard let consumed = consumingRootTaskOptions.first(where: { $0.option == word }) else { continue }
            guard next < boot.count, boot[next].role == consumed.role else {
                let found = next < boot.count ? "'\(boot[next].name)' (\(boot[next].role.rawValue))" : "nothing"
                throw fail("'\(owner.name)' has \(consumed.option), which takes the next module (\(next)) as its \(consumed.role.rawValue) file, but that is \(found)")
            }
            next += 1
        }
    }
}
