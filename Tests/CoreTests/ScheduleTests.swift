import Foundation
import Testing
@testable import Core

/// An instant written as ISO 8601 ("2026-03-29T01:30:00Z").
func utcDate(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }

func zone(_ identifier: String) -> TimeZone { TimeZone(identifier: identifier)! }

func time(_ text: String) -> TimeOfDay { TimeOfDay(parsing: text)! }

@Suite struct TimeOfDayTests {
    @Test(arguments: [("03:30", 3, 30), ("00:00", 0, 0), ("23:59", 23, 59), ("12:05", 12, 5)])
    func parsesTwoDigitHoursAndMinutes(text: String, hour: Int, minute: Int) throws {
        let parsed = try #require(TimeOfDay(parsing: text))
        #expect(parsed.hour == hour && parsed.minute == minute)
        #expect(parsed.description == text)
    }

    @Test(arguments: ["24:00", "3:30", "03:60", "ab:cd", "", "03:30:00", "03:3", " 3:30", "+3:30", "03-30", "０３:３０", "-1:00"])
    func rejectsAnythingElse(text: String) {
        #expect(TimeOfDay(parsing: text) == nil)
    }
}

@Suite struct ScheduleTests {
    // 2026-05-04 is a Monday.

    /// The next `count` slots, each found from the one before.
    func slots(of schedule: Schedule, after start: String, count: Int) -> [Date] {
        var cursor = utcDate(start)
        return (0..<count).map { _ in
            cursor = schedule.nextSlot(after: cursor) ?? .distantFuture
            return cursor
        }
    }

    @Test func severalTimesADayInOrder() {
        let schedule = Schedule(times: [time("21:45"), time("03:30"), time("15:00"), time("03:30")], timeZone: .gmt)
        #expect(schedule.times == [time("03:30"), time("15:00"), time("21:45")]) // sorted, duplicates collapsed
        #expect(slots(of: schedule, after: "2026-05-04T00:00:00Z", count: 4) == ["2026-05-04T03:30:00Z", "2026-05-04T15:00:00Z", "2026-05-04T21:45:00Z", "2026-05-05T03:30:00Z"].map(utcDate))
    }

    @Test func nextSlotIsStrictlyAfter() {
        let schedule = Schedule(times: [time("03:30"), time("15:00")], timeZone: .gmt)
        #expect(schedule.nextSlot(after: utcDate("2026-05-04T03:30:00Z")) == utcDate("2026-05-04T15:00:00Z"))
        #expect(schedule.nextSlot(after: utcDate("2026-05-04T03:29:59Z")) == utcDate("2026-05-04T03:30:00Z"))
    }

    @Test func selectedWeekdaysOnly() {
        let schedule = Schedule(times: [time("03:30")], days: [.mon, .thu], timeZone: .gmt)
        #expect(schedule.nextSlot(after: utcDate("2026-05-04T04:00:00Z")) == utcDate("2026-05-07T03:30:00Z"))
        #expect(schedule.nextSlot(after: utcDate("2026-05-07T03:30:00Z")) == utcDate("2026-05-11T03:30:00Z"))
        #expect(schedule.lastSlot(atOrBefore: utcDate("2026-05-07T03:30:00Z")) == utcDate("2026-05-07T03:30:00Z"))
        #expect(schedule.lastSlot(atOrBefore: utcDate("2026-05-07T03:29:00Z")) == utcDate("2026-05-04T03:30:00Z"))
    }

    /// The weekday is that of the local date, which here differs from the UTC date.
    @Test(arguments: [
        ("UTC", "23:30", "2026-05-04T23:30:00Z"),
        ("America/New_York", "23:30", "2026-05-05T03:30:00Z"), // Monday evening EDT is Tuesday in UTC
        ("Europe/Amsterdam", "23:30", "2026-05-04T21:30:00Z"),
        ("Asia/Kolkata", "00:15", "2026-05-03T18:45:00Z"), // Monday 00:15 IST is Sunday in UTC
    ])
    func mondaysInTimeZones(identifier: String, at text: String, expected: String) {
        let schedule = Schedule(times: [time(text)], days: [.mon], timeZone: zone(identifier))
        let slot = schedule.nextSlot(after: utcDate("2026-05-01T00:00:00Z"))
        #expect(slot == utcDate(expected))
        #expect(schedule.nextSlot(after: slot!) == utcDate(expected).addingTimeInterval(7 * 86_400))
        #expect(schedule.lastSlot(atOrBefore: utcDate(expected).addingTimeInterval(7 * 86_400 - 1)) == utcDate(expected))
    }

    @Test(arguments: [
        Schedule(times: [time("03:30")], timeZone: .gmt, enabled: false),
        Schedule(times: [], timeZone: .gmt),
        Schedule(times: [time("03:30")], days: [], timeZone: .gmt),
    ])
    func nothingScheduled(schedule: Schedule) {
        #expect(schedule.nextSlot(after: utcDate("2026-05-04T00:00:00Z")) == nil)
        #expect(schedule.lastSlot(atOrBefore: utcDate("2026-05-04T00:00:00Z")) == nil)
    }

    @Test func lastSlotLooksBackAWeek() {
        let schedule = Schedule(times: [time("03:30")], days: [.mon], timeZone: .gmt)
        #expect(schedule.lastSlot(atOrBefore: utcDate("2026-05-11T03:29:00Z")) == utcDate("2026-05-04T03:30:00Z"))
    }

    /// Each case: the next two slots. Spring forward runs the missing time shifted by the gap; fall back
    /// runs the repeated time once, at its first occurrence, and not again an hour later.
    @Test(arguments: [
        ("Europe/Amsterdam", "02:30", "2026-03-28T12:00:00Z", ["2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"]), // 03:30 CEST
        ("Europe/Amsterdam", "02:30", "2026-10-24T12:00:00Z", ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]), // 02:30 CEST
        ("Europe/Amsterdam", "02:30", "2026-10-25T00:30:00Z", ["2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"]), // not 01:30Z
        ("America/New_York", "02:30", "2026-03-07T12:00:00Z", ["2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"]), // 03:30 EDT
        ("America/New_York", "01:30", "2026-10-31T12:00:00Z", ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]), // 01:30 EDT
        ("America/New_York", "01:30", "2026-11-01T05:30:00Z", ["2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"]), // not 06:30Z
    ])
    func daylightSavingTransitions(identifier: String, at text: String, after start: String, expected: [String]) {
        let schedule = Schedule(times: [time(text)], timeZone: zone(identifier))
        let first = schedule.nextSlot(after: utcDate(start))
        #expect(first == utcDate(expected[0]))
        #expect(schedule.nextSlot(after: first!) == utcDate(expected[1]))
        #expect(schedule.lastSlot(atOrBefore: utcDate(expected[1]).addingTimeInterval(-1)) == utcDate(expected[0]))
    }

    /// 02:30 shifted by the gap is 03:30, which is also scheduled: one run, not two.
    @Test func gapTimeShiftedOntoAnotherSlotRunsOnce() {
        let schedule = Schedule(times: [time("02:30"), time("03:30")], timeZone: zone("Europe/Amsterdam"))
        let first = schedule.nextSlot(after: utcDate("2026-03-29T00:00:00Z"))
        #expect(first == utcDate("2026-03-29T01:30:00Z"))
        #expect(schedule.nextSlot(after: first!) == utcDate("2026-03-30T00:30:00Z"))
    }

    /// Samoa skipped 2011-12-30 entirely (UTC-10 to UTC+14): that day's slot collapses into the next one's,
    /// so the runs stay a day apart.
    @Test func skippedCalendarDayRunsOnce() {
        let schedule = Schedule(times: [time("03:30")], timeZone: zone("Pacific/Apia"))
        #expect(slots(of: schedule, after: "2011-12-28T00:00:00Z", count: 4) == ["2011-12-28T13:30:00Z", "2011-12-29T13:30:00Z", "2011-12-30T13:30:00Z", "2011-12-31T13:30:00Z"].map(utcDate))
    }

    /// A year of daily slots: exactly one per local day, always at the scheduled local time except on the
    /// spring-forward day, where the missing time runs an hour later.
    @Test(arguments: [("Europe/Amsterdam", "02:30", 1), ("America/New_York", "02:30", 1), ("America/New_York", "01:30", 0)])
    func aYearOfDailySlots(identifier: String, at text: String, shiftedDays: Int) {
        let timeZone = zone(identifier)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let start = calendar.date(from: DateComponents(year: 2026, month: 1, day: 1))!
        let end = calendar.date(from: DateComponents(year: 2027, month: 1, day: 1))!
        let schedule = Schedule(times: [time(text)], timeZone: timeZone)

        var slots: [Date] = []
        var cursor = start
        while let slot = schedule.nextSlot(after: cursor), slot < end {
            slots.append(slot)
            cursor = slot
        }
        let localDays = Set(slots.map { calendar.dateComponents([.year, .month, .day], from: $0) })
        let localTimes = slots.map { calendar.dateComponents([.hour, .minute], from: $0) }
        #expect(slots.count == 365)
        #expect(localDays.count == 365)
        #expect(localTimes.filter { $0 != DateComponents(hour: time(text).hour, minute: time(text).minute) }
            == Array(repeating: DateComponents(hour: time(text).hour + 1, minute: time(text).minute), count: shiftedDays))
    }
}
