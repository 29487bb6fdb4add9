import Foundation
import Testing
import Core

/// A managed, verified, unpinned backup (override what the case is about); its id doubles as its name.
func backup(_ id: String, _ date: String, pinned: Bool = false, managed: Bool = true, verified: Bool = true,
            lockedUntil: String? = nil) -> RetentionCandidate {
    RetentionCandidate(id: id, name: id, date: utcDate(date), pinned: pinned, managed: managed, verified: verified,
                       lockedUntil: lockedUntil.map(utcDate))
}

/// Every hand-checked case plans at the same instant, after all of its backups.
let retentionNow = utcDate("2026-11-30T12:00:00Z")

/// id → reasons of the kept backups only, so a case states exactly what survives and why.
func keptReasons(_ candidates: [RetentionCandidate], _ policy: RetentionPolicy, in timeZone: TimeZone = .gmt) -> [String: [String]] {
    let decisions = RetentionPlanner.plan(candidates, policy: policy, timeZone: timeZone, now: retentionNow)
    return Dictionary(uniqueKeysWithValues: decisions.filter(\.keep).map { ($0.id, $0.reasons) })
}

@Suite struct RetentionPlannerTests {
    /// Ten daily backups, 2026-11-19 … 2026-11-28 at 03:30 UTC, ids "d19" … "d28".
    let tenDays = (19...28).map { backup("d\($0)", "2026-11-\($0)T03:30:00Z") }

    @Test(arguments: [(1, ["d28"]), (3, ["d28", "d27", "d26"]), (10, (19...28).map { "d\($0)" }), (15, (19...28).map { "d\($0)" })])
    func keepDailyKeepsTheNewestDays(days: Int, kept: [String]) {
        let decisions = RetentionPlanner.plan(tenDays.shuffled(), policy: RetentionPolicy(keepDaily: days), timeZone: .gmt, now: retentionNow)
        #expect(decisions.map(\.id) == (19...28).reversed().map { "d\($0)" }) // newest first whatever the input order
        #expect(decisions.filter(\.keep).map(\.id) == kept.sorted(by: >))
        #expect(decisions.filter { !$0.keep }.allSatisfy { $0.reasons == ["outside the policy"] })
    }

    @Test func keepDailyThreeReasons() {
        #expect(keptReasons(tenDays, RetentionPolicy(keepDaily: 3)) == [
            "d28": ["daily 2026-11-28", "newest verified backup"],
            "d27": ["daily 2026-11-27"],
            "d26": ["daily 2026-11-26"],
        ])
    }

    @Test func twoOnOneDayKeepOnlyTheNewerForDaily() {
        let candidates = [backup("early", "2026-11-28T03:30:00Z"), backup("late", "2026-11-28T15:00:00Z"), backup("before", "2026-11-27T03:30:00Z")]
        #expect(keptReasons(candidates, RetentionPolicy(keepDaily: 2)) == [
            "late": ["daily 2026-11-28", "newest verified backup"],
            "before": ["daily 2026-11-27"],
        ])
    }

    /// Backups at the same instant are ordered by id, so the bucket's "newest" is still well defined.
    @Test func equalDatesAreOrderedById() {
        let candidates = [backup("b", "2026-11-28T03:30:00Z"), backup("a", "2026-11-28T03:30:00Z")]
        let decisions = RetentionPlanner.plan(candidates, policy: RetentionPolicy(keepDaily: 1), timeZone: .gmt, now: retentionNow)
        #expect(decisions == [
            RetentionDecision(id: "a", keep: true, reasons: ["daily 2026-11-28", "newest verified backup"]),
            RetentionDecision(id: "b", keep: false, reasons: ["outside the policy"]),
        ])
    }

    /// 2026 starts on a Thursday, so it has an ISO week 53 that runs Mon 2026-12-28 … Sun 2027-01-03.
    @Test func weeklyBucketSpansTheYearBoundary() {
        let candidates = ["2026-12-28", "2026-12-31", "2027-01-01", "2027-01-03", "2027-01-04"].map { backup($0, "\($0)T12:00:00Z") }
        let reasons = RetentionPlanner.plan(candidates, policy: RetentionPolicy(keepWeekly: 2), timeZone: .gmt, now: utcDate("2027-01-05T00:00:00Z"))
            .map { "\($0.id): \($0.reasons.joined(separator: ", "))" }
        #expect(reasons == [
            "2027-01-04: weekly 2027-W01, newest verified backup",
            "2027-01-03: weekly 2026-W53",
            "2027-01-01: outside the policy",
            "2026-12-31: outside the policy",
            "2026-12-28: outside the policy",
        ])
    }

    /// ISO week-numbering years around New Year, checked against the ISO 8601 rule (week 1 holds the first Thursday).
    @Test(arguments: [
        ("2026-01-01T12:00:00Z", "2026-W01"), // Thursday: week 1 starts Mon 2025-12-29
        ("2025-12-31T12:00:00Z", "2026-W01"),
        ("2026-12-31T12:00:00Z", "2026-W53"),
        ("2027-01-01T12:00:00Z", "2026-W53"),
        ("2027-01-03T12:00:00Z", "2026-W53"), // Sunday ends the week
        ("2027-01-04T12:00:00Z", "2027-W01"),
        ("2024-12-30T12:00:00Z", "2025-W01"),
        ("2020-12-31T12:00:00Z", "2020-W53"),
        ("2021-01-03T12:00:00Z", "2020-W53"),
        ("2022-01-01T12:00:00Z", "2021-W52"),
        ("2023-01-01T12:00:00Z", "2022-W52"),
        ("2018-12-31T12:00:00Z", "2019-W01"),
        ("2026-11-28T12:00:00Z", "2026-W48"),
    ])
    func isoWeekAroundNewYear(date: String, week: String) {
        #expect(keptReasons([backup("b", date)], RetentionPolicy(keepWeekly: 1))["b"]?.first == "weekly \(week)")
    }

    /// Buckets follow the local date in the policy's time zone, not the UTC one.
    @Test(arguments: [
        ("Asia/Tokyo", "2026-11-27T23:30:00Z", ["daily 2026-11-28", "weekly 2026-W48", "monthly 2026-11", "yearly 2026"]),
        ("UTC", "2026-11-27T23:30:00Z", ["daily 2026-11-27", "weekly 2026-W48", "monthly 2026-11", "yearly 2026"]),
        ("Asia/Tokyo", "2026-12-31T15:30:00Z", ["daily 2027-01-01", "weekly 2026-W53", "monthly 2027-01", "yearly 2027"]),
        ("Asia/Tokyo", "2027-01-03T15:30:00Z", ["daily 2027-01-04", "weekly 2027-W01", "monthly 2027-01", "yearly 2027"]),
        ("UTC", "2027-01-03T15:30:00Z", ["daily 2027-01-03", "weekly 2026-W53", "monthly 2027-01", "yearly 2027"]),
        ("America/New_York", "2027-01-01T03:00:00Z", ["daily 2026-12-31", "weekly 2026-W53", "monthly 2026-12", "yearly 2026"]),
        // Amsterdam: CET (+1) until 01:00Z on 2026-03-29, CEST (+2) until 01:00Z on 2026-10-25.
        ("Europe/Amsterdam", "2026-03-28T22:59:00Z", ["daily 2026-03-28", "weekly 2026-W13", "monthly 2026-03", "yearly 2026"]),
        ("Europe/Amsterdam", "2026-03-28T23:00:00Z", ["daily 2026-03-29", "weekly 2026-W13", "monthly 2026-03", "yearly 2026"]),
        ("Europe/Amsterdam", "2026-03-29T21:59:00Z", ["daily 2026-03-29", "weekly 2026-W13", "monthly 2026-03", "yearly 2026"]),
        ("Europe/Amsterdam", "2026-03-29T22:00:00Z", ["daily 2026-03-30", "weekly 2026-W14", "monthly 2026-03", "yearly 2026"]),
        ("Europe/Amsterdam", "2026-10-24T22:00:00Z", ["daily 2026-10-25", "weekly 2026-W43", "monthly 2026-10", "yearly 2026"]),
        ("Europe/Amsterdam", "2026-10-25T22:59:00Z", ["daily 2026-10-25", "weekly 2026-W43", "monthly 2026-10", "yearly 2026"]),
        ("Europe/Amsterdam", "2026-10-25T23:00:00Z", ["daily 2026-10-26", "weekly 2026-W44", "monthly 2026-10", "yearly 2026"]),
    ])
    func bucketsUseTheLocalDate(timeZone: String, date: String, reasons: [String]) {
        let policy = RetentionPolicy(keepDaily: 1, keepWeekly: 1, keepMonthly: 1, keepYearly: 1)
        #expect(keptReasons([backup("b", date)], policy, in: zone(timeZone))["b"] == reasons + ["newest verified backup"])
    }

    /// The spring-forward day in Amsterdam has 23 hours; both ends of it are one daily bucket.
    @Test func dstDayInAmsterdamIsOneBucket() {
        let candidates = [
            backup("sat-late", "2026-03-28T22:59:00Z"),  // 23:59 CET, Saturday
            backup("sun-early", "2026-03-28T23:30:00Z"), // 00:30 CET, Sunday
            backup("sun-late", "2026-03-29T21:59:00Z"),  // 23:59 CEST, Sunday
            backup("mon-early", "2026-03-29T22:01:00Z"), // 00:01 CEST, Monday
        ]
        #expect(keptReasons(candidates, RetentionPolicy(keepDaily: 3), in: zone("Europe/Amsterdam")) == [
            "mon-early": ["daily 2026-03-30", "newest verified backup"],
            "sun-late": ["daily 2026-03-29"],
            "sat-late": ["daily 2026-03-28"],
        ])
    }

    /// 23:30 UTC is already the next morning in Tokyo: two backups on two UTC days share one Tokyo day.
    @Test(arguments: [("UTC", ["late", "early"]), ("Asia/Tokyo", ["late"])])
    func utcDateIsNotTheLocalDate(timeZone: String, kept: [String]) {
        let candidates = [backup("early", "2026-11-27T23:30:00Z"), backup("late", "2026-11-28T10:00:00Z")]
        let decisions = RetentionPlanner.plan(candidates, policy: RetentionPolicy(keepDaily: 2), timeZone: zone(timeZone), now: retentionNow)
        #expect(decisions.filter(\.keep).map(\.id) == kept)
    }

    @Test func keepLastAndKeepDailyBothListed() {
        let candidates = [backup("a", "2026-11-28T15:00:00Z"), backup("b", "2026-11-28T03:30:00Z"),
                          backup("c", "2026-11-27T03:30:00Z"), backup("d", "2026-11-26T03:30:00Z")]
        #expect(keptReasons(candidates, RetentionPolicy(keepLast: 2, keepDaily: 2)) == [
            "a": ["last", "daily 2026-11-28", "newest verified backup"],
            "b": ["last"],
            "c": ["daily 2026-11-27"],
        ])
    }

    @Test func everyRuleListedInOrder() {
        let policy = RetentionPolicy(keepLast: 1, keepDaily: 1, keepWeekly: 1, keepMonthly: 1, keepYearly: 1)
        #expect(keptReasons([backup("a", "2026-11-28T15:00:00Z", verified: false, lockedUntil: "2026-12-05T00:00:00Z")], policy) == [
            "a": ["last", "daily 2026-11-28", "weekly 2026-W48", "monthly 2026-11", "yearly 2026", "no verified copy in B2",
                  "locked until 2026-12-05T00:00:00Z"],
        ])
    }

    /// A pinned backup is kept anyway, so it must not use up the day: the newest unpinned one of that day is kept too.
    @Test func pinnedDoesNotFillABucket() {
        let candidates = [backup("pinned", "2026-11-28T15:00:00Z", pinned: true), backup("plain", "2026-11-28T03:30:00Z"),
                          backup("yesterday", "2026-11-27T03:30:00Z")]
        #expect(keptReasons(candidates, RetentionPolicy(keepDaily: 1)) == [
            "pinned": ["pinned", "newest verified backup"],
            "plain": ["daily 2026-11-28"],
        ])
    }

    @Test func unmanagedKeptAndNotCounted() {
        let candidates = [backup("theirs", "2026-11-28T15:00:00Z", managed: false), backup("ours", "2026-11-28T03:30:00Z"),
                          backup("older", "2026-11-27T03:30:00Z"), backup("theirs-old", "2020-01-01T00:00:00Z", managed: false)]
        #expect(keptReasons(candidates, RetentionPolicy(keepLast: 1)) == [
            "theirs": ["not made by this add-on", "newest verified backup"],
            "ours": ["last"],
            "theirs-old": ["not made by this add-on"],
        ])
    }

    /// keepYearly keeps 2026's newest, which is unverified: the newest verified one is kept on top, so there is
    /// always a proven restore point.
    @Test func newestVerifiedKeptWhenThePolicyWouldDropIt() {
        let candidates = [backup("unverified", "2026-11-28T03:30:00Z", verified: false), backup("verified", "2026-11-27T03:30:00Z"),
                          backup("june", "2026-06-01T03:30:00Z"), backup("last-year", "2025-12-31T03:30:00Z")]
        #expect(keptReasons(candidates, RetentionPolicy(keepYearly: 1)) == [
            "unverified": ["yearly 2026", "no verified copy in B2"],
            "verified": ["newest verified backup"],
        ])
    }

    @Test func newestVerifiedEvenWhenPinnedOrUnmanaged() {
        let candidates = [backup("theirs", "2026-11-28T03:30:00Z", managed: false), backup("ours", "2026-11-27T03:30:00Z"),
                          backup("old", "2026-11-26T03:30:00Z")]
        #expect(keptReasons(candidates, RetentionPolicy(keepLast: 1)) == [
            "theirs": ["not made by this add-on", "newest verified backup"],
            "ours": ["last"],
        ])
    }

    @Test func unverifiedNeverDeleted() {
        let candidates = [backup("new", "2026-11-28T03:30:00Z"), backup("old", "2026-01-01T03:30:00Z", verified: false)]
        #expect(keptReasons(candidates, RetentionPolicy(keepLast: 1)) == [
            "new": ["last", "newest verified backup"],
            "old": ["no verified copy in B2"],
        ])
    }

    /// Only a lock that has not expired at `now` keeps a backup; one ending exactly now no longer does.
    @Test func lockedKeptWithItsDate() {
        let candidates = [backup("new", "2026-11-28T03:30:00Z"),
                          backup("locked", "2026-10-01T03:30:00Z", lockedUntil: "2026-12-05T00:00:00Z"),
                          backup("expired", "2026-09-01T03:30:00Z", lockedUntil: "2026-11-01T00:00:00Z"),
                          backup("ends-now", "2026-08-01T03:30:00Z", lockedUntil: "2026-11-30T12:00:00Z")]
        #expect(keptReasons(candidates, RetentionPolicy(keepLast: 1)) == [
            "new": ["last", "newest verified backup"],
            "locked": ["locked until 2026-12-05T00:00:00Z"],
        ])
    }

    @Test func allZeroKeepsEverything() {
        let candidates = [backup("a", "2026-11-28T03:30:00Z", pinned: true), backup("b", "2026-11-27T03:30:00Z"),
                          backup("c", "2020-11-27T03:30:00Z", managed: false, verified: false)]
        #expect(keptReasons(candidates, RetentionPolicy()) == [
            "a": ["retention off", "pinned", "newest verified backup"],
            "b": ["retention off"],
            "c": ["retention off", "not made by this add-on", "no verified copy in B2"],
        ])
    }

    @Test func nothingToPlan() {
        #expect(RetentionPlanner.plan([], policy: RetentionPolicy(keepLast: 3), timeZone: .gmt, now: retentionNow).isEmpty)
        #expect(RetentionPlanner.plan([], policy: RetentionPolicy(), timeZone: .gmt, now: retentionNow).isEmpty)
    }

    @Test(arguments: [
        (RetentionPolicy(), true), (RetentionPolicy(keepLast: 1), false), (RetentionPolicy(keepDaily: 1), false),
        (RetentionPolicy(keepWeekly: 1), false), (RetentionPolicy(keepMonthly: 1), false), (RetentionPolicy(keepYearly: 1), false),
    ])
    func isOffOnlyWhenEveryRuleIsZero(policy: RetentionPolicy, off: Bool) throws {
        #expect(policy.isOff == off)
        #expect(try JSONDecoder().decode(RetentionPolicy.self, from: JSONEncoder().encode(policy)) == policy)
    }
}
