import Foundation
import Testing
import PropertyBased
import Core

/// A random backup history, the policy to plan it with and the time zone of its buckets.
struct RetentionHistory: Sendable, CustomStringConvertible, CustomTestStringConvertible {
    static let now = utcDate("2027-06-01T00:00:00Z")

    var candidates: [RetentionCandidate]
    var policy: RetentionPolicy
    var timeZone: TimeZone

    func plan(_ candidates: [RetentionCandidate]? = nil, policy: RetentionPolicy? = nil) -> [RetentionDecision] {
        RetentionPlanner.plan(candidates ?? self.candidates, policy: policy ?? self.policy, timeZone: timeZone, now: Self.now)
    }

    /// Newest first, ties by id: the order decisions come in.
    var ordered: [RetentionCandidate] {
        candidates.sorted { $0.date.timeIntervalSince1970 != $1.date.timeIntervalSince1970 ? $0.date > $1.date : $0.id < $1.id }
    }

    /// One line per backup, so a failing case can be read (and pasted into a table test).
    var description: String {
        let lines = candidates.map { c in
            [c.id, c.date.formatted(.iso8601), c.pinned ? "pinned" : "", c.managed ? "" : "unmanaged", c.verified ? "" : "unverified",
             c.lockedUntil.map { "locked<\($0.formatted(.iso8601))" } ?? ""].filter { !$0.isEmpty }.joined(separator: " ")
        }
        return "\(policy) in \(timeZone.identifier), \(candidates.count) backups:\n" + lines.joined(separator: "\n")
    }
    var testDescription: String { description }
}

enum RetentionGen {
    /// Whole-hour, half-hour and 45-minute offsets, DST in both hemispheres (Lord Howe shifts by 30 minutes), ±14 h.
    static let zones = ["UTC", "Europe/Amsterdam", "Asia/Tokyo", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
                        "Pacific/Chatham", "America/St_Johns", "Pacific/Kiritimati", "Pacific/Pago_Pago"].map { TimeZone(identifier: $0)! }

    /// How far back a history reaches (days): two weeks crowds several backups into a day, three years spreads them.
    static let spans = [14, 120, 1_100]

    /// A backup before its id and date: half-hours before `now` (scaled into the history's span), so equal dates
    /// happen and so do local midnights; pinned, managed, verified; a lock ending in 12-hour steps around `now`,
    /// exactly at `now` included.
    static let candidate = zip(Gen.int(in: 0...(spans.last! * 48)), Gen.bool(0.1), Gen.bool(0.85), Gen.bool(0.8),
                               Gen.int(in: -4...4).optional(valueRate: 0.15))

    /// Each rule 0…6; one policy in ten is off altogether (all five zero by chance is too rare to test).
    static let policy = zip(Gen.bool(0.1), Gen.int(in: 0...6), Gen.int(in: 0...6), Gen.int(in: 0...6), Gen.int(in: 0...6), Gen.int(in: 0...6))
        .map { off, last, daily, weekly, monthly, yearly in
            off ? RetentionPolicy() : RetentionPolicy(keepLast: last, keepDaily: daily, keepWeekly: weekly, keepMonthly: monthly, keepYearly: yearly)
        }

    static let history = zip(candidate.array(of: 0...60), policy, Gen.int(in: 0...(zones.count - 1)), Gen.int(in: 0...(spans.count - 1)))
        .map { candidates, policy, zone, span in
            let halfHours = spans[span] * 48 + 1
            return RetentionHistory(candidates: candidates.enumerated().map { index, candidate in
                let (offset, pinned, managed, verified, lock) = candidate
                return RetentionCandidate(id: "b\(index)", date: RetentionHistory.now.addingTimeInterval(-Double(offset % halfHours * 1_800)),
                                          pinned: pinned, managed: managed, verified: verified,
                                          lockedUntil: lock.map { RetentionHistory.now.addingTimeInterval(Double($0 * 43_200)) })
            }, policy: policy, timeZone: zones[zone])
        }
}

/// Bucket keys by hand from the zone's UTC offset and civil-date arithmetic (H. Hinnant's days ↔ civil
/// algorithms), independent of `Calendar`, so the planner's calendar use is checked on every random date.
enum ReferenceBuckets {
    struct Keys: Equatable {
        var daily: String, weekly: String, monthly: String, yearly: String
    }

    static func keys(of date: Date, in zone: TimeZone) -> Keys {
        let local = Int(date.timeIntervalSince1970) + zone.secondsFromGMT(for: date)
        let day = Int((Double(local) / 86_400).rounded(.down))
        let (year, month, dayOfMonth) = civil(fromDays: day)
        // 1970-01-01 was a Thursday; an ISO week belongs to the year of its Thursday.
        let thursday = day - ((day + 3) % 7 + 7) % 7 + 3
        let weekYear = civil(fromDays: thursday).year
        let week = (thursday - days(fromYear: weekYear, month: 1, day: 1)) / 7 + 1
        func digits(_ value: Int, _ width: Int) -> String { String(String(value + 100_000).suffix(width)) }
        return Keys(daily: "\(digits(year, 4))-\(digits(month, 2))-\(digits(dayOfMonth, 2))", weekly: "\(digits(weekYear, 4))-W\(digits(week, 2))",
                    monthly: "\(digits(year, 4))-\(digits(month, 2))", yearly: digits(year, 4))
    }

    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, doy - (153 * mp + 2) / 5 + 1)
    }

    static func days(fromYear year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        return era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    }
}

/// Each property is checked on random histories; a failure names the input and the seed that reproduces it.
/// Checks collect problems as text and expect none, so a case with many backups fails with one readable message.
@Suite struct RetentionPropertyTests {
    static let bucketRules: [(label: String, count: @Sendable (RetentionPolicy) -> Int, key: @Sendable (ReferenceBuckets.Keys) -> String)] = [
        ("daily", \.keepDaily, \.daily), ("weekly", \.keepWeekly, \.weekly), ("monthly", \.keepMonthly, \.monthly),
        ("yearly", \.keepYearly, \.yearly),
    ]

    /// Every keeping reason's kind, in the order reasons are listed: rules first, then the invariants.
    static let reasonOrder = ["last", "daily", "weekly", "monthly", "yearly", "retention off", "pinned", "not made by this add-on",
                              "newest verified backup", "no verified copy in B2", "locked until", "would delete every backup"]
    static let reasonRank = Dictionary(uniqueKeysWithValues: reasonOrder.enumerated().map { ($1, $0) })

    /// A reason's kind ("daily", "pinned", "locked until", …) and what follows it ("2026-11-28", a date, or "").
    static func parse(_ reason: String) -> (kind: String, detail: String) {
        if reason.hasPrefix("locked until ") { return ("locked until", String(reason.dropFirst("locked until ".count))) }
        if let space = reason.firstIndex(of: " "), ["daily", "weekly", "monthly", "yearly"].contains(reason[..<space]) {
            return (String(reason[..<space]), String(reason[reason.index(after: space)...]))
        }
        return (reason, "")
    }

    @Test func safetyInvariants() async {
        await propertyCheck(count: 1_000, input: RetentionGen.history) { history in
            #expect(Self.safetyProblems(history) == [])
        }
    }

    static func safetyProblems(_ history: RetentionHistory) -> [String] {
        var problems: [String] = []
        let decisions = history.plan()
        let ordered = history.ordered
        if decisions.map(\.id) != ordered.map(\.id) { problems.append("not one decision per backup, newest first: \(decisions.map(\.id))") }
        if Set(decisions.map(\.id)).count != decisions.count { problems.append("ids repeat") }
        if !history.candidates.isEmpty && !decisions.contains(where: \.keep) { problems.append("everything deleted") }
        let newestVerified = ordered.first(where: \.verified)?.id

        for (candidate, decision) in zip(ordered, decisions) {
            let kinds = decision.reasons.map { parse($0).kind }
            func expectKept(_ kind: String, when condition: Bool) {
                if condition && !(decision.keep && kinds.contains(kind)) { problems.append("\(candidate.id) not kept as \(kind): \(decision.reasons)") }
            }
            expectKept("retention off", when: history.policy.isOff)
            expectKept("pinned", when: candidate.pinned)
            expectKept("not made by this add-on", when: !candidate.managed)
            expectKept("no verified copy in B2", when: !candidate.verified)
            expectKept("locked until", when: (candidate.lockedUntil ?? .distantPast) > RetentionHistory.now)
            expectKept("newest verified backup", when: candidate.id == newestVerified)

            // Deleted exactly when nothing keeps it; a kept one lists each keeping reason once, in the documented order.
            let ranks = kinds.map { reasonRank[$0] ?? -1 }
            let inOrder = !ranks.isEmpty && !ranks.contains(-1) && zip(ranks, ranks.dropFirst()).allSatisfy { $0 < $1 }
            if decision.keep ? !inOrder : decision.reasons != ["outside the policy"] {
                problems.append("\(candidate.id) keep=\(decision.keep) with \(decision.reasons)")
            }
        }
        return problems
    }

    @Test func eachRuleKeepsTheNewestOfAtMostNBuckets() async {
        await propertyCheck(count: 1_000, input: RetentionGen.history) { history in
            #expect(Self.ruleProblems(history) == [])
        }
    }

    /// The rules against a brute-force reading of restic's: the n newest participants, and the newest participant
    /// of each of the n newest buckets, with bucket keys from `ReferenceBuckets`.
    static func ruleProblems(_ history: RetentionHistory) -> [String] {
        var problems: [String] = []
        let policy = history.policy
        var keptBy: [String: [String: String]] = [:] // kind → id → bucket
        for decision in history.plan() {
            for (kind, detail) in decision.reasons.map(parse) { keptBy[kind, default: [:]][decision.id] = detail }
        }

        let participants = history.ordered.filter { $0.managed && !$0.pinned }
        let expectedLast = Set(policy.isOff ? [] : participants.prefix(policy.keepLast).map(\.id))
        if Set(keptBy["last", default: [:]].keys) != expectedLast { problems.append("last keeps \(keptBy["last", default: [:]].keys.sorted()), not \(expectedLast.sorted())") }

        let keys = policy.isOff ? [] : participants.map { ReferenceBuckets.keys(of: $0.date, in: history.timeZone) }
        for rule in bucketRules {
            let kept = keptBy[rule.label, default: [:]]
            let count = policy.isOff ? 0 : rule.count(policy)
            if kept.count > count { problems.append("\(rule.label) keeps \(kept.count) > \(count)") }
            if Set(kept.values).count != kept.count { problems.append("\(rule.label) keeps two in one bucket: \(kept)") }
            var expected: [String: String] = [:]
            var seen: Set<String> = []
            for (participant, keys) in zip(participants, keys) where seen.count < count && !seen.contains(rule.key(keys)) {
                seen.insert(rule.key(keys))
                expected[participant.id] = rule.key(keys)
            }
            if kept != expected { problems.append("\(rule.label) keeps \(kept.sorted { $0.key < $1.key }), not \(expected.sorted { $0.key < $1.key })") }
        }
        return problems
    }

    /// Stable: the input order does not matter, and what a plan keeps is a fixed point (planning only those
    /// again keeps every one, for the same reasons), so a retention run repeated after a crash changes nothing.
    @Test func stableAndIdempotent() async {
        await propertyCheck(count: 500, input: RetentionGen.history) { history in
            let decisions = history.plan()
            #expect(history.plan(history.candidates.reversed()) == decisions, "depends on the input order")
            let kept = decisions.filter(\.keep)
            let keptIds = Set(kept.map(\.id))
            #expect(history.plan(history.candidates.filter { keptIds.contains($0.id) }) == kept)
        }
    }

    /// Raising a rule's count never costs a backup. (Turning retention on from all-zero is the exception
    /// by design: "off" keeps everything, so those policies are skipped.)
    @Test func raisingARuleNeverDeletesMore() async {
        await propertyCheck(count: 500, input: RetentionGen.history, Gen.int(in: 0...4), Gen.int(in: 1...3)) { history, rule, raise in
            guard !history.policy.isOff else { return }
            var raised = history.policy
            switch rule {
            case 0: raised.keepLast += raise
            case 1: raised.keepDaily += raise
            case 2: raised.keepWeekly += raise
            case 3: raised.keepMonthly += raise
            default: raised.keepYearly += raise
            }
            let keptAfter = Set(history.plan(policy: raised).filter(\.keep).map(\.id))
            let lost = history.plan().filter { $0.keep && !keptAfter.contains($0.id) }.map(\.id)
            #expect(lost == [], "raised to \(raised)")
        }
    }

    /// The reference itself, on the dates the table tests check by hand.
    @Test(arguments: [
        ("2026-12-31T12:00:00Z", "UTC", ["2026-12-31", "2026-W53", "2026-12", "2026"]),
        ("2027-01-03T15:30:00Z", "Asia/Tokyo", ["2027-01-04", "2027-W01", "2027-01", "2027"]),
        ("2024-12-30T12:00:00Z", "UTC", ["2024-12-30", "2025-W01", "2024-12", "2024"]),
        ("2023-01-01T12:00:00Z", "UTC", ["2023-01-01", "2022-W52", "2023-01", "2023"]),
        ("2026-03-28T23:00:00Z", "Europe/Amsterdam", ["2026-03-29", "2026-W13", "2026-03", "2026"]),
    ])
    func referenceBucketsMatchHandCheckedDates(date: String, timeZone: String, keys: [String]) {
        let reference = ReferenceBuckets.keys(of: utcDate(date), in: zone(timeZone))
        #expect([reference.daily, reference.weekly, reference.monthly, reference.yearly] == keys)
    }
}

