import Foundation

/// How many backups to keep in B2, as restic's `forget`: each rule is independent and a backup is kept
/// if any rule keeps it. A count of 0 turns its rule off.
public struct RetentionPolicy: Sendable, Hashable, Codable {
    /// Keeps the N newest backups.
    public var keepLast: Int
    /// Keeps the newest backup of each of the N newest local days that have backups.
    public var keepDaily: Int
    /// Keeps the newest backup of each of the N newest ISO-8601 weeks that have backups.
    public var keepWeekly: Int
    /// Keeps the newest backup of each of the N newest months that have backups.
    public var keepMonthly: Int
    /// Keeps the newest backup of each of the N newest years that have backups.
    public var keepYearly: Int

    public init(keepLast: Int = 0, keepDaily: Int = 0, keepWeekly: Int = 0, keepMonthly: Int = 0, keepYearly: Int = 0) {
        self.keepLast = keepLast
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
        self.keepYearly = keepYearly
    }

    /// No rule at all means "retention off: keep everything", not "keep nothing".
    public var isOff: Bool { [keepLast, keepDaily, keepWeekly, keepMonthly, keepYearly].allSatisfy { $0 <= 0 } }
}

/// One backup as retention sees it: only what the decision needs, so the same planner serves B2 and the
/// local Home Assistant backups.
public struct RetentionCandidate: Sendable, Hashable {
    /// Unique key (a backup slug).
    public var id: String
    /// For messages.
    public var name: String
    /// The backup's own date (from its backup.json), not an upload time: buckets follow when it was made.
    public var date: Date
    public var pinned: Bool
    /// Made by this add-on (or manage_other_backups is on).
    public var managed: Bool
    /// B2 side: its upload was verified; local side: it has a verified copy in B2.
    public var verified: Bool
    /// B2 Object Lock: cannot be deleted before this.
    public var lockedUntil: Date?

    public init(id: String, name: String = "", date: Date, pinned: Bool = false, managed: Bool = true, verified: Bool = true,
                lockedUntil: Date? = nil) {
        self.id = id
        self.name = name
        self.date = date
        self.pinned = pinned
        self.managed = managed
        self.verified = verified
        self.lockedUntil = lockedUntil
    }
}

public struct RetentionDecision: Sendable, Hashable {
    public var id: String
    public var keep: Bool
    /// Why it is kept (every rule and invariant that keeps it), or why it goes (`"outside the policy"`).
    public var reasons: [String]

    public init(id: String, keep: Bool, reasons: [String]) {
        self.id = id
        self.keep = keep
        self.reasons = reasons
    }
}

/// Decides which backups retention keeps. Pure: no I/O and no clock, so every decision can be shown
/// (with its reasons) before anything is deleted, and tested exhaustively.
public enum RetentionPlanner {
    static let deletedReason = "outside the policy"

    /// Decisions newest first (ties broken by id), one per candidate.
    ///
    /// The rules run first and only over candidates that are managed and not pinned, so a backup the user
    /// pinned or made elsewhere never takes a bucket from one the rules would otherwise keep. Then
    /// `enforceInvariants` adds what must be kept whatever the policy says.
    public static func plan(_ candidates: [RetentionCandidate], policy: RetentionPolicy, timeZone: TimeZone,
                            now: Date) -> [RetentionDecision] {
        // Newest first, ties by id; the sort keys are read once.
        let times = candidates.map(\.date.timeIntervalSince1970)
        let ordered = candidates.indices.sorted { times[$0] != times[$1] ? times[$0] > times[$1] : candidates[$0].id < candidates[$1].id }
            .map { candidates[$0] }
        var reasons = [[String]](repeating: [], count: ordered.count)
        if !policy.isOff {
            applyRules(ordered, policy: policy, timeZone: timeZone, reasons: &reasons)
        }
        enforceInvariants(ordered, policy: policy, now: now, reasons: &reasons)
        return ordered.indices.map { index in
            reasons[index].isEmpty ? RetentionDecision(id: ordered[index].id, keep: false, reasons: [deletedReason])
                                   : RetentionDecision(id: ordered[index].id, keep: true, reasons: reasons[index])
        }
    }

    /// The restic rules, each independent, in the order their reasons are listed. `ordered` is newest first.
    private static func applyRules(_ ordered: [RetentionCandidate], policy: RetentionPolicy, timeZone: TimeZone,
                                   reasons: inout [[String]]) {
        let participants = ordered.indices.filter { ordered[$0].managed && !ordered[$0].pinned }
        for index in participants.prefix(max(0, policy.keepLast)) { reasons[index].append("last") }

        let periods = Period.allCases.filter { $0.count(in: policy) > 0 }
        guard !periods.isEmpty else { return }
        // Local dates once per participant: the calendar is the costly part.
        let calendars = LocalCalendars(timeZone: timeZone)
        let dates = participants.map { calendars.localDate(of: ordered[$0].date) }
        for period in periods {
            var budget = period.count(in: policy)
            var lastKept: Int?
            for position in participants.indices where budget > 0 {
                // Newest first, so the first candidate seen in a bucket is that bucket's newest.
                let bucket = dates[position].bucket(period)
                guard bucket != lastKept else { continue }
                reasons[participants[position]].append("\(period) \(dates[position].label(period))")
                lastKept = bucket
                budget -= 1
            }
        }
    }

    /// The single place where the safety invariants are enforced, after the rules and whatever they decided:
    /// anything deleted was made by us, is unpinned, verified and unlocked, and is not the newest verified
    /// backup; and a plan never empties the store.
    private static func enforceInvariants(_ ordered: [RetentionCandidate], policy: RetentionPolicy, now: Date,
                                          reasons: inout [[String]]) {
        let newestVerified = ordered.firstIndex { $0.verified }
        let isOff = policy.isOff
        for (index, candidate) in ordered.enumerated() {
            if isOff { reasons[index].append("retention off") }
            if candidate.pinned { reasons[index].append("pinned") }
            if !candidate.managed { reasons[index].append("not made by this add-on") }
            // The last proven-good restore point survives whatever the policy says.
            if index == newestVerified { reasons[index].append("newest verified backup") }
            // Deleting is only safe once a copy is proven; an unverified backup may be the only good one.
            if !candidate.verified { reasons[index].append("no verified copy in B2") }
            if let lockedUntil = candidate.lockedUntil, lockedUntil > now {
                // B2 would refuse the delete anyway; saying so beats a failed delete.
                reasons[index].append("locked until \(lockedUntil.formatted(.iso8601))")
            }
        }
        // Last guard: with the invariants above it cannot trigger (the newest verified backup, or else every
        // unverified one, is kept), but "delete every backup" must stay impossible even if they change.
        if !ordered.isEmpty, reasons.allSatisfy(\.isEmpty) {
            for index in reasons.indices { reasons[index].append("would delete every backup") }
        }
    }

    /// The bucket rules; the raw value is the word their reasons start with.
    private enum Period: String, CaseIterable, CustomStringConvertible {
        case daily, weekly, monthly, yearly

        var description: String { rawValue }

        func count(in policy: RetentionPolicy) -> Int {
            switch self {
            case .daily: policy.keepDaily
            case .weekly: policy.keepWeekly
            case .monthly: policy.keepMonthly
            case .yearly: policy.keepYearly
            }
        }
    }

    /// A date's fields in the policy's time zone: the calendar day for daily/monthly/yearly, the ISO week
    /// (and its year, which differs from the calendar year around New Year) for weekly.
    private struct LocalDate {
        var year: Int, month: Int, day: Int, weekYear: Int, week: Int

        /// Equal exactly when two dates share the period's bucket; a number, so only kept buckets are spelled out.
        func bucket(_ period: Period) -> Int {
            switch period {
            case .daily: (year * 100 + month) * 100 + day
            case .weekly: weekYear * 100 + week
            case .monthly: year * 100 + month
            case .yearly: year
            }
        }

        /// "2026-11-28", "2026-W48", "2026-11", "2026".
        func label(_ period: Period) -> String {
            switch period {
            case .daily: "\(Self.padded(year, 4))-\(Self.padded(month, 2))-\(Self.padded(day, 2))"
            case .weekly: "\(Self.padded(weekYear, 4))-W\(Self.padded(week, 2))"
            case .monthly: "\(Self.padded(year, 4))-\(Self.padded(month, 2))"
            case .yearly: Self.padded(year, 4)
            }
        }

        private static func padded(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
    }

    private struct LocalCalendars {
        var gregorian: Calendar
        var iso: Calendar

        init(timeZone: TimeZone) {
            gregorian = Calendar(identifier: .gregorian)
            gregorian.timeZone = timeZone
            // ISO 8601: weeks start on Monday and week 1 holds the year's first Thursday.
            iso = Calendar(identifier: .iso8601)
            iso.timeZone = timeZone
            iso.firstWeekday = 2
            iso.minimumDaysInFirstWeek = 4
        }

        func localDate(of date: Date) -> LocalDate {
            let day = gregorian.dateComponents([.year, .month, .day], from: date)
            let week = iso.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
            return LocalDate(year: day.year!, month: day.month!, day: day.day!, weekYear: week.yearForWeekOfYear!,
                             week: week.weekOfYear!)
        }
    }
}
