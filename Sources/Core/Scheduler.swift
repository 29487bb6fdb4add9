import Foundation
import Logging

/// The loop that decides when backups run: regular slots (plus a random delay), one catch-up at start for
/// a missed slot, and retries after a failure. It only decides and waits; `perform` does the backup.
public actor Scheduler {
    public enum RunOutcome: Sendable {
        /// `skipped`: a job was already running. Neither success nor failure: it is not retried and
        /// does not reset a retry sequence's position.
        case succeeded, failed, skipped
    }

    public enum Trigger: String, Sendable {
        case schedule, catchUp = "catch_up", retry
    }

    private let schedule: Schedule
    private let clock: any WallClock
    private let catchUpMissed: Bool
    private let retryDelays: [TimeInterval]
    private let lastRunStart: Date?
    private let randomFraction: @Sendable () -> Double
    private let logger: Logger

    /// What the loop is sleeping until; nil while disabled or while a run is running.
    public private(set) var nextRun: Date?
    public private(set) var nextTrigger: Trigger?
    /// Told each decided next run before the loop sleeps (the sensor's `next_run`, the failure notification's retry time).
    private var planListener: (@Sendable (Date, Trigger) async -> Void)?

    public func onPlan(_ listener: @escaping @Sendable (Date, Trigger) async -> Void) {
        planListener = listener
    }

    /// - Parameter lastRunStart: when the most recent run of any kind started (run history); nil on a fresh install.
    /// - Parameter randomFraction: in 0..<1, scales `schedule.randomDelay`; injected so tests know the delay.
    public init(schedule: Schedule, clock: any WallClock, catchUpMissed: Bool, retryDelays: [TimeInterval] = [15 * 60, 3600, 4 * 3600],
                lastRunStart: Date?, randomFraction: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }, logger: Logger) {
        self.schedule = schedule
        self.clock = clock
        self.catchUpMissed = catchUpMissed
        self.retryDelays = retryDelays
        self.lastRunStart = lastRunStart
        self.randomFraction = randomFraction
        self.logger = logger
    }

    /// Runs until the task is cancelled. All waiting is on the clock, so tests drive it with a `ManualClock`.
    public func run(_ perform: @escaping @Sendable (Trigger, Date) async -> RunOutcome) async {
        let start = clock.now()
        guard schedule.nextSlot(after: start) != nil else {
            logger.info("backup schedule disabled; no scheduled backups")
            try? await clock.sleep(until: .distantFuture) // visible to tests, and ends on cancellation
            return
        }
        /// The last slot run (or the start): slots after it that passed while a run was running are skipped.
        var handled = start
        /// The upcoming slot and its due time (slot + random delay), kept so a retry in between doesn't redraw it.
        var planned: (slot: Date, due: Date)?
        var retry: (at: Date, slot: Date)?
        /// Index into `retryDelays` of the next retry; reset by a success or a regular run.
        var retryStep = 0

        func finished(_ outcome: RunOutcome, slot: Date) {
            switch outcome {
            case .succeeded: retry = nil; retryStep = 0
            case .skipped: retry = nil
            case .failed:
                if retryStep < retryDelays.count {
                    retry = (clock.now().addingTimeInterval(retryDelays[retryStep]), slot)
                    retryStep += 1
                } else {
                    retry = nil // retries exhausted: wait for the next regular slot
                }
            }
        }

        if catchUpMissed, let lastRunStart, let missed = schedule.lastSlot(atOrBefore: start), missed > lastRunStart {
            logger.info("backup slot missed since the last run; catching up", metadata: [
                "schedule.slot": "\(Self.format(missed))", "schedule.last_run": "\(Self.format(lastRunStart))",
            ])
            handled = missed
            finished(await perform(.catchUp, missed), slot: missed)
        }

        while !Task.isCancelled {
            let now = clock.now()
            let upcoming: (slot: Date, due: Date)
            if let planned, planned.due > now {
                upcoming = planned // only a retry ran since it was drawn
            } else {
                if let passed = schedule.nextSlot(after: handled), passed <= now {
                    logger.info("backup slot passed while a backup was running; skipped", metadata: [
                        "schedule.skipped": "\(Self.format(passed))",
                        "schedule.skipped_last": "\(Self.format(schedule.lastSlot(atOrBefore: now) ?? passed))",
                    ])
                }
                guard let slot = schedule.nextSlot(after: now) else { return }
                upcoming = (slot, slot.addingTimeInterval(randomFraction() * schedule.randomDelay))
            }
            planned = upcoming

            let trigger: Trigger
            let wakeAt: Date
            if let pending = retry, pending.at < upcoming.due {
                (trigger, wakeAt) = (.retry, pending.at)
            } else {
                // The regular slot comes first (or the retries are exhausted): it wins and the sequence resets.
                (trigger, wakeAt, retry, retryStep) = (.schedule, upcoming.due, nil, 0)
            }
            (nextRun, nextTrigger) = (wakeAt, trigger)
            var metadata: Logger.Metadata = ["schedule.next": "\(Self.format(wakeAt))", "schedule.trigger": "\(trigger.rawValue)"]
            if trigger == .retry { metadata["schedule.retry"] = "\(retryStep)/\(retryDelays.count)" }
            if trigger == .schedule { metadata["schedule.slot"] = "\(Self.format(upcoming.slot))" }
            logger.info("next backup run decided", metadata: metadata)
            await planListener?(wakeAt, trigger)

            do { try await clock.sleep(until: wakeAt) } catch { break }
            (nextRun, nextTrigger) = (nil, nil)
            if Task.isCancelled { break }

            if trigger == .retry, let slot = retry?.slot {
                finished(await perform(.retry, slot), slot: slot) // the slot whose run is being retried
            } else {
                (handled, planned) = (upcoming.slot, nil)
                finished(await perform(.schedule, upcoming.slot), slot: upcoming.slot)
            }
        }
        (nextRun, nextTrigger) = (nil, nil)
    }

    private static func format(_ date: Date) -> String { date.formatted(.iso8601) }
}
