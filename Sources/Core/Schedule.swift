import Foundation

/// A wall-clock time of day ("03:30"), as the add-on options spell it.
public struct TimeOfDay: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let hour: Int
    public let minute: Int

    public init?(hour: Int, minute: Int) {
        guard (0...23).contains(hour), (0...59).contains(minute) else { return nil }
        self.hour = hour
        self.minute = minute
    }

    /// Strict "HH:MM", two digits each: a typo in the options should be an error, not a guess.
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == 5, bytes[2] == UInt8(ascii: ":") else { return nil }
        let digits = [bytes[0], bytes[1], bytes[3], bytes[4]].map { Int($0) - Int(UInt8(ascii: "0")) }
        guard digits.allSatisfy({ (0...9).contains($0) }) else { return nil }
        self.init(hour: digits[0] * 10 + digits[1], minute: digits[2] * 10 + digits[3])
    }

    public var description: String {
        (hour < 10 ? "0" : "") + "\(hour):" + (minute < 10 ? "0" : "") + "\(minute)"
    }

    public static func < (a: TimeOfDay, b: TimeOfDay) -> Bool { (a.hour, a.minute) < (b.hour, b.minute) }

    var secondsIntoDay: Int { hour * 3600 + minute * 60 }
}

public enum Weekday: String, CaseIterable, Sendable {
    case mon, tue, wed, thu, fri, sat, sun
}

/// When backups run: local wall-clock times on selected weekdays in one time zone (Home Assistant's).
///
/// Slots are computed by hand from the zone's UTC offsets rather than with `Calendar`, so the DST rules
/// are ours and the same on every platform: a time in the spring-forward gap runs once, shifted forward
/// by the gap; a time that occurs twice at fall-back runs once, at the first occurrence.
public struct Schedule: Sendable, Equatable {
    /// Sorted, without duplicates.
    public var times: [TimeOfDay]
    public var days: Set<Weekday>
    public var timeZone: TimeZone
    public var enabled: Bool
    /// Upper bound of a random delay (seconds) added to each slot, so many installs don't hit B2 at once; 0 = none.
    public var randomDelay: TimeInterval

    public init(times: [TimeOfDay], days: Set<Weekday> = Set(Weekday.allCases), timeZone: TimeZone, enabled: Bool = true,
                randomDelay: TimeInterval = 0) {
        self.times = Set(times).sorted()
        self.days = days
        self.timeZone = timeZone
        self.enabled = enabled
        self.randomDelay = randomDelay
    }

    /// The first slot strictly after `date`; nil when nothing is ever scheduled.
    public func nextSlot(after date: Date) -> Date? {
        // A day of margin each side, for a slot a transition moves across midnight.
        let today = localDay(of: date)
        return slots(onDays: (today - 1)...(today + 8)).first { $0 > date }
    }

    /// The most recent slot at or before `date`, looking back at most 8 days (enough to see a missed run).
    public func lastSlot(atOrBefore date: Date) -> Date? {
        let today = localDay(of: date)
        return slots(onDays: (today - 8)...(today + 1)).last { $0 <= date }
    }

    /// All slot instants on the given local days (days since 1970-01-01), sorted and distinct: a gap
    /// time shifted onto another slot collapses into it.
    private func slots(onDays days: ClosedRange<Int>) -> [Date] {
        guard enabled, !times.isEmpty, !self.days.isEmpty else { return [] }
        var instants = Set<Date>()
        for day in days where self.days.contains(Self.weekday(ofLocalDay: day)) {
            for time in times { instants.insert(instant(localSeconds: day * 86_400 + time.secondsIntoDay)) }
        }
        return instants.sorted()
    }

    /// Days since 1970-01-01 of the local date at `date`.
    private func localDay(of date: Date) -> Int {
        let local = date.timeIntervalSince1970 + Double(timeZone.secondsFromGMT(for: date))
        return Int((local / 86_400).rounded(.down))
    }

    /// 1970-01-01 was a Thursday.
    private static func weekday(ofLocalDay day: Int) -> Weekday {
        Weekday.allCases[((day + 3) % 7 + 7) % 7]
    }

    /// The instant of a local wall-clock time, written as seconds since 1970-01-01T00:00 local.
    /// The offsets a day either side bracket any real transition; of those that reproduce the local time,
    /// the earliest instant is the first occurrence. None reproduces it in a gap: then the offset from
    /// before the transition lands as far past it as the time was into the gap.
    private func instant(localSeconds: Int) -> Date {
        let naive = Date(timeIntervalSince1970: Double(localSeconds))
        let before = timeZone.secondsFromGMT(for: naive.addingTimeInterval(-86_400))
        let after = timeZone.secondsFromGMT(for: naive.addingTimeInterval(86_400))
        let matching = [before, after].map { Date(timeIntervalSince1970: Double(localSeconds - $0)) }
            .filter { timeZone.secondsFromGMT(for: $0) == localSeconds - Int($0.timeIntervalSince1970) }
        return matching.min() ?? Date(timeIntervalSince1970: Double(localSeconds - before))
    }
}
