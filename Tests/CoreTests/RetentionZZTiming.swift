import Foundation
import Testing
import PropertyBased
import Core

@Test func zzTiming() async {
    var rng = Xoshiro()
    let clock = ContinuousClock()
    func best(_ body: () -> Void) -> Duration { (0..<5).map { _ in clock.measure(body) }.min()! }
    var histories: [RetentionHistory] = []
    for _ in 0..<500 { histories.append(RetentionGen.history.run(using: &rng)) }
    let gen = best { for _ in 0..<500 { _ = RetentionGen.history.run(using: &rng) } }
    let plan = best { for h in histories { _ = h.plan() } }
    let off = best { for h in histories { _ = h.plan(policy: RetentionPolicy()) } }
    let last = best { for h in histories { _ = h.plan(policy: RetentionPolicy(keepLast: 2)) } }
    let daily = best { for h in histories { _ = h.plan(policy: RetentionPolicy(keepDaily: 2)) } }
    let all = best { for h in histories { _ = h.plan(policy: RetentionPolicy(keepLast: 2, keepDaily: 2, keepWeekly: 2, keepMonthly: 2, keepYearly: 2)) } }
    let safety = best { for h in histories { _ = RetentionPropertyTests.safetyProblems(h) } }
    let rules = best { for h in histories { _ = RetentionPropertyTests.ruleProblems(h) } }
    let sort = best { for h in histories { _ = h.ordered } }
    print("TIMING per 500: gen \(gen) plan \(plan) off \(off) last \(last) daily \(daily) all \(all) safety \(safety) rules \(rules) sort \(sort)")
}
