import Foundation
import Logging
import Synchronization
import Testing
@testable import Core

/// Records each run the scheduler starts and answers with scripted outcomes; a run with a duration
/// moves the clock itself, as a long backup would.
actor RunRecorder {
    struct Run: Equatable, CustomStringConvertible {
        let trigger: Scheduler.Trigger
        let slot: Date
        let at: Date
        var description: String { "\(trigger) slot \(slot.formatted(.iso8601)) at \(at.formatted(.iso8601))" }
    }

    private(set) var runs: [Run] = []
    private var outcomes: [Scheduler.RunOutcome]
    private var durations: [TimeInterval]
    private let clock: ManualClock

    init(clock: ManualClock, outcomes: [Scheduler.RunOutcome], durations: [TimeInterval]) {
        self.clock = clock
        self.outcomes = outcomes
        self.durations = durations
    }

    func perform(_ trigger: Scheduler.Trigger, _ slot: Date) -> Scheduler.RunOutcome {
        runs.append(Run(trigger: trigger, slot: slot, at: clock.now()))
        if !durations.isEmpty { clock.advance(by: durations.removeFirst()) }
        return outcomes.isEmpty ? .succeeded : outcomes.removeFirst()
    }
}

/// Log lines at info, so a test can see what the scheduler said.
final class CapturedLog: Sendable {
    let lines = Mutex<[(message: String, metadata: Logger.Metadata)]>([])

    var logger: Logger { Logger(label: "test") { _ in Handler(sink: self) } }

    func metadata(of message: String) -> [Logger.Metadata] {
        lines.withLock { $0.filter { $0.message == message }.map(\.metadata) }
    }

    struct Handler: LogHandler {
        let sink: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            sink.lines.withLock { $0.append(("\(event.message)", event.metadata ?? [:])) }
        }
    }
}

/// A scheduler running on a manual clock, with helpers that step it from one wake-up to the next.
struct SchedulerHarness {
    let clock: ManualClock
    let recorder: RunRecorder
    let scheduler: Scheduler
    let log = CapturedLog()
    let task: Task<Void, Never>

    init(start: String, schedule: Schedule, catchUpMissed: Bool = true, lastRunStart: String? = nil,
         outcomes: [Scheduler.RunOutcome] = [], durations: [TimeInterval] = [], fractions: [Double] = []) {
        clock = ManualClock(utcDate(start))
        recorder = RunRecorder(clock: clock, outcomes: outcomes, durations: durations)
        let fractions = Mutex(fractions)
        scheduler = Scheduler(schedule: schedule, clock: clock, catchUpMissed: catchUpMissed, lastRunStart: lastRunStart.map(utcDate),
                              randomFraction: { fractions.withLock { $0.isEmpty ? 0 : $0.removeFirst() } }, logger: log.logger)
        task = Task { [scheduler, recorder] in await scheduler.run { await recorder.perform($0, $1) } }
    }

    /// Waits until the loop sleeps and checks it sleeps until `deadline` for `trigger`, as `nextRun` says too.
    func expectSleeping(until deadline: String, for trigger: Scheduler.Trigger,
                        sourceLocation: SourceLocation = #_sourceLocation) async {
        await expectSleeping(until: utcDate(deadline), for: trigger, sourceLocation: sourceLocation)
    }

    func expectSleeping(until deadline: Date, for trigger: Scheduler.Trigger,
                        sourceLocation: SourceLocation = #_sourceLocation) async {
        await clock.waitForSleepers(1)
        #expect(clock.sleeperDeadlines == [deadline], sourceLocation: sourceLocation)
        #expect(await scheduler.nextRun == deadline, sourceLocation: sourceLocation)
        #expect(await scheduler.nextTrigger == trigger, sourceLocation: sourceLocation)
    }

    /// Moves the clock to the current sleeper's deadline, then waits until the loop sleeps again.
    func wake() async {
        await clock.waitForSleepers(1)
        clock.advance(to: clock.sleeperDeadlines[0])
        await clock.waitForSleepers(1)
    }

    func expectRuns(_ expected: [(Scheduler.Trigger, slot: String, at: String)], sourceLocation: SourceLocation = #_sourceLocation) async {
        let runs = await recorder.runs
        #expect(runs == expected.map { RunRecorder.Run(trigger: $0.0, slot: utcDate($0.slot), at: utcDate($0.at)) },
                sourceLocation: sourceLocation)
    }

    func stop() async {
        task.cancel()
        await task.value
        #expect(await scheduler.nextRun == nil)
    }
}

/// A daily 03:00 UTC schedule; 2026-05-04 is a Monday.
let daily0300 = Schedule(times: [time("03:00")], timeZone: .gmt)

@Suite(.timeLimit(.minutes(1))) struct SchedulerTests {
    @Test func freshInstallWaitsForTheFirstSlot() async {
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: daily0300, lastRunStart: nil)
        await harness.expectSleeping(until: "2026-05-05T03:00:00Z", for: .schedule)
        await harness.expectRuns([])
        await harness.wake()
        await harness.expectRuns([(.schedule, "2026-05-05T03:00:00Z", "2026-05-05T03:00:00Z")])
        await harness.expectSleeping(until: "2026-05-06T03:00:00Z", for: .schedule)
        await harness.stop()
    }

    /// Only a slot after the last run's start was missed; three missed slots still make one catch-up.
    @Test(arguments: [
        ("2026-05-01T03:00:00Z", true, true),
        ("2026-05-04T02:59:59Z", true, true),
        ("2026-05-04T03:00:00Z", true, false),
        ("2026-05-01T03:00:00Z", false, false),
    ])
    func catchUpAtStart(lastRunStart: String, catchUpMissed: Bool, catchesUp: Bool) async {
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: daily0300, catchUpMissed: catchUpMissed,
                                       lastRunStart: lastRunStart)
        await harness.expectSleeping(until: "2026-05-05T03:00:00Z", for: .schedule)
        await harness.expectRuns(catchesUp ? [(.catchUp, "2026-05-04T03:00:00Z", "2026-05-04T12:00:00Z")] : [])
        await harness.stop()
    }

    @Test func failedCatchUpIsRetried() async {
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: daily0300, lastRunStart: "2026-05-01T03:00:00Z",
                                       outcomes: [.failed])
        await harness.expectSleeping(until: "2026-05-04T12:15:00Z", for: .retry)
        await harness.wake()
        await harness.expectRuns([
            (.catchUp, "2026-05-04T03:00:00Z", "2026-05-04T12:00:00Z"), (.retry, "2026-05-04T03:00:00Z", "2026-05-04T12:15:00Z"),
        ])
        await harness.expectSleeping(until: "2026-05-05T03:00:00Z", for: .schedule)
        await harness.stop()
    }

    /// Retries count from when the failed run ended (the first run takes ten minutes), then the schedule resumes.
    @Test func retriesAfterFailuresThenBackToTheSchedule() async {
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: daily0300,
                                       outcomes: [.failed, .failed, .failed, .failed], durations: [600])
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T03:25:00Z", for: .retry)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T04:25:00Z", for: .retry)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T08:25:00Z", for: .retry)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-06T03:00:00Z", for: .schedule)
        await harness.wake()
        await harness.expectRuns([
            (.schedule, "2026-05-05T03:00:00Z", "2026-05-05T03:00:00Z"),
            (.retry, "2026-05-05T03:00:00Z", "2026-05-05T03:25:00Z"),
            (.retry, "2026-05-05T03:00:00Z", "2026-05-05T04:25:00Z"),
            (.retry, "2026-05-05T03:00:00Z", "2026-05-05T08:25:00Z"),
            (.schedule, "2026-05-06T03:00:00Z", "2026-05-06T03:00:00Z"),
        ])
        await harness.expectSleeping(until: "2026-05-07T03:00:00Z", for: .schedule)
        await harness.stop()
    }

    /// The second retry (04:15) would come after the 03:30 slot: the slot runs instead, and its failure
    /// starts the sequence over at +15 minutes, not +4 hours.
    @Test func regularSlotPreemptsARetry() async {
        let schedule = Schedule(times: [time("03:00"), time("03:30")], timeZone: .gmt)
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: schedule, outcomes: [.failed, .failed, .failed])
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T03:15:00Z", for: .retry)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T03:30:00Z", for: .schedule)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T03:45:00Z", for: .retry)
        await harness.expectRuns([
            (.schedule, "2026-05-05T03:00:00Z", "2026-05-05T03:00:00Z"),
            (.retry, "2026-05-05T03:00:00Z", "2026-05-05T03:15:00Z"),
            (.schedule, "2026-05-05T03:30:00Z", "2026-05-05T03:30:00Z"),
        ])
        await harness.stop()
    }

    @Test func successEndsTheRetrySequence() async {
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: daily0300, outcomes: [.failed, .succeeded, .failed])
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T03:15:00Z", for: .retry)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-06T03:00:00Z", for: .schedule)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-06T03:15:00Z", for: .retry)
        await harness.stop()
    }

    /// A skipped run (another job was running) is not a failure: nothing to retry.
    @Test func skippedRunIsNotRetried() async {
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: daily0300, outcomes: [.skipped])
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-06T03:00:00Z", for: .schedule)
        await harness.stop()
    }

    /// The delay is `randomFraction() * randomDelay`: none at 0, just under the maximum near 1.
    @Test(arguments: [(0.0, 0.0), (0.25, 900.0), (0.5, 1800.0), (1 - 1.0 / 1024, 3600.0 - 3600.0 / 1024)])
    func randomDelayWithinBounds(fraction: Double, delay: TimeInterval) async {
        var schedule = daily0300
        schedule.randomDelay = 3600
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: schedule, fractions: [fraction])
        let runsAt = utcDate("2026-05-05T03:00:00Z").addingTimeInterval(delay)
        await harness.expectSleeping(until: runsAt, for: .schedule)
        await harness.wake()
        #expect(await harness.recorder.runs == [RunRecorder.Run(trigger: .schedule, slot: utcDate("2026-05-05T03:00:00Z"), at: runsAt)])
        await harness.stop()
    }

    /// The 12:00 slot's delay is drawn once (0.75 of 2 h): retries in between don't redraw it.
    @Test func randomDelayDrawnOncePerSlot() async {
        var schedule = Schedule(times: [time("03:00"), time("12:00")], timeZone: .gmt)
        schedule.randomDelay = 7200
        let harness = SchedulerHarness(start: "2026-05-04T12:30:00Z", schedule: schedule, outcomes: [.failed, .failed, .failed],
                                       fractions: [0, 0.75, 0.1])
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T03:15:00Z", for: .retry)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T04:15:00Z", for: .retry)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T08:15:00Z", for: .retry)
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-05T13:30:00Z", for: .schedule)
        await harness.wake()
        await harness.expectRuns([
            (.schedule, "2026-05-05T03:00:00Z", "2026-05-05T03:00:00Z"),
            (.retry, "2026-05-05T03:00:00Z", "2026-05-05T03:15:00Z"),
            (.retry, "2026-05-05T03:00:00Z", "2026-05-05T04:15:00Z"),
            (.retry, "2026-05-05T03:00:00Z", "2026-05-05T08:15:00Z"),
            (.schedule, "2026-05-05T12:00:00Z", "2026-05-05T13:30:00Z"),
        ])
        await harness.expectSleeping(until: "2026-05-06T03:12:00Z", for: .schedule) // 03:00 + 0.1 of 2 h
        await harness.stop()
    }

    @Test(arguments: [
        Schedule(times: [time("03:00")], timeZone: .gmt, enabled: false),
        Schedule(times: [], timeZone: .gmt),
        Schedule(times: [time("03:00")], days: [], timeZone: .gmt),
    ])
    func disabledNeverRuns(schedule: Schedule) async {
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: schedule, lastRunStart: "2026-05-01T03:00:00Z")
        await harness.clock.waitForSleepers(1)
        #expect(harness.clock.sleeperDeadlines == [.distantFuture])
        #expect(await harness.scheduler.nextRun == nil)
        #expect(await harness.scheduler.nextTrigger == nil)
        harness.clock.advance(by: 30 * 86_400)
        await harness.expectRuns([])
        await harness.stop()
    }

    /// The 03:00 run takes 90 minutes: the 04:00 slot passes meanwhile and is skipped (and logged), not run late.
    @Test func slotPassingDuringALongRunIsSkipped() async {
        let schedule = Schedule(times: [time("03:00"), time("04:00")], timeZone: .gmt)
        let harness = SchedulerHarness(start: "2026-05-04T12:00:00Z", schedule: schedule, durations: [5400])
        await harness.wake()
        await harness.expectSleeping(until: "2026-05-06T03:00:00Z", for: .schedule)
        await harness.expectRuns([(.schedule, "2026-05-05T03:00:00Z", "2026-05-05T03:00:00Z")])
        let skipped = harness.log.metadata(of: "backup slot passed while a backup was running; skipped")
        #expect(skipped.map { $0["schedule.skipped"]?.description } == ["2026-05-05T04:00:00Z"])
        await harness.stop()
    }

    /// A long catch-up run also makes a slot it overlaps pass unrun.
    @Test func slotPassingDuringALongCatchUpIsSkipped() async {
        let harness = SchedulerHarness(start: "2026-05-05T02:00:00Z", schedule: daily0300, lastRunStart: "2026-05-03T03:00:00Z",
                                       durations: [2 * 3600])
        await harness.expectSleeping(until: "2026-05-06T03:00:00Z", for: .schedule)
        await harness.expectRuns([(.catchUp, "2026-05-04T03:00:00Z", "2026-05-05T02:00:00Z")])
        await harness.stop()
    }

    @Test func nextRunIsNilWhileRunning() async {
        let clock = ManualClock(utcDate("2026-05-04T12:00:00Z"))
        let seen = Mutex<(Date?, Scheduler.Trigger?)?>(nil)
        let scheduler = Scheduler(schedule: daily0300, clock: clock, catchUpMissed: false, lastRunStart: nil,
                                  logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        let task = Task {
            await scheduler.run { _, _ in
                let state = (await scheduler.nextRun, await scheduler.nextTrigger)
                seen.withLock { $0 = state }
                return .succeeded
            }
        }
        await clock.waitForSleepers(1)
        clock.advance(by: 86_400)
        await clock.waitForSleepers(1)
        #expect(seen.withLock { $0?.0 == nil && $0?.1 == nil && $0 != nil })
        task.cancel()
        await task.value
    }
}
