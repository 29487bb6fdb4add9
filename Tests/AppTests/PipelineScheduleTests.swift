import Core
import Foundation
import Storage
import SupervisorSimulator
import Testing
@testable import App

/// The schedule driving real backups: `Pipeline.run()` on the manual clock, both simulators behind it.
/// The harness starts on Sunday 2026-11-29 10:00 in Amsterdam (the simulated Home Assistant's time zone).
@Suite(.timeLimit(.minutes(2)))
struct PipelineScheduleTests {
    /// 2026-11-30 03:30 in Amsterdam (CET, UTC+1).
    let nextSlot = Date(timeIntervalSince1970: 1_795_942_800 + 17 * 3600 + 30 * 60)

    /// Runs the pipeline's loops until `body` returns. The reporter, the scheduler and the daily retention all
    /// sleep on the clock, so three sleepers means all are idle again (a run, if any, is over).
    func running<T>(_ pipeline: Pipeline, _ harness: PipelineHarness, _ body: () async throws -> T) async throws -> T {
        let loops = Task { await pipeline.run() }
        defer { loops.cancel() }
        let result = try await body()
        loops.cancel()
        _ = await loops.value
        return result
    }

    func jobs(_ harness: PipelineHarness) async throws -> [Job] {
        try await StoredJobStore(store: harness.store()).recentJobs(limit: 10)
    }

    @Test func theScheduledSlotRunsABackupInHomeAssistantsTimeZone() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            try await running(pipeline, harness) {
                await harness.clock.waitForSleepers(3)
                #expect(await pipeline.scheduler.nextRun == nextSlot)
                #expect(try await jobs(harness).isEmpty) // a fresh install has missed nothing
                harness.clock.advance(to: nextSlot)
                await harness.clock.waitForSleepers(3)
                let ran = try await jobs(harness)
                #expect(ran.map(\.trigger) == [.schedule])
                #expect(ran.first?.state == .done, "\(ran.first?.error?.message ?? "")")
                #expect(await pipeline.scheduler.nextRun == nextSlot.addingTimeInterval(86_400))
                #expect(await pipeline.status().nextRun == nextSlot.addingTimeInterval(86_400))
                let sensor = await harness.supervisor.states()["sensor.b2_backup"]
                #expect(sensor?.attributes["next_run"]?.stringValue == "2026-12-01T02:30:00Z")
            }
        }
    }

    @Test func aSlotMissedWhileStoppedIsCaughtUpAtStart() async throws {
        try await withHarness { harness in
            // The last run was two days ago: today's 03:30 passed while the add-on was stopped.
            let store = try harness.store()
            let plan = BackupSettings().plan(for: BackupRequest(), at: PipelineHarness.start, homeAssistantVersion: nil, randomSuffix: "0000")
            var old = Job(id: "old", trigger: .schedule, plan: plan, startedAt: PipelineHarness.start.addingTimeInterval(-2 * 86_400))
            old.step = .done
            old.finishedAt = old.startedAt.addingTimeInterval(60)
            try await StoredJobStore(store: store).save(old)
            let pipeline = try await harness.pipeline(store: store)
            try await running(pipeline, harness) {
                await harness.clock.waitForSleepers(3)
                let ran = try await jobs(harness).filter { $0.id != "old" }
                #expect(ran.map(\.trigger) == [.catchUp])
                #expect(ran.first?.state == .done)
                #expect(await pipeline.scheduler.nextRun == nextSlot)
            }
        }
    }

    @Test func withCatchUpOffAMissedSlotWaitsForTheNextOne() async throws {
        try await withHarness(options: { $0.catchUpMissed = false }) { harness in
            let store = try harness.store()
            let plan = BackupSettings().plan(for: BackupRequest(), at: PipelineHarness.start, homeAssistantVersion: nil, randomSuffix: "0000")
            var old = Job(id: "old", trigger: .schedule, plan: plan, startedAt: PipelineHarness.start.addingTimeInterval(-2 * 86_400))
            old.step = .done
            old.finishedAt = old.startedAt
            try await StoredJobStore(store: store).save(old)
            let pipeline = try await harness.pipeline(store: store)
            try await running(pipeline, harness) {
                await harness.clock.waitForSleepers(3)
                let all = try await jobs(harness)
                #expect(all.count == 1)
                #expect(await pipeline.scheduler.nextRun == nextSlot)
            }
        }
    }

    @Test func aFailedScheduledBackupIsRetriedAfterFifteenMinutes() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            try await running(pipeline, harness) {
                await harness.clock.waitForSleepers(3)
                await harness.supervisor.faults.failNextBackup(message: "Backup failed: the disk is full")
                harness.clock.advance(to: nextSlot)
                await harness.clock.waitForSleepers(3)
                #expect(try await jobs(harness).map(\.state) == [.failed])
                #expect(await pipeline.scheduler.nextTrigger == .retry)
                #expect(await pipeline.scheduler.nextRun == nextSlot.addingTimeInterval(15 * 60))
                // The failure notification says when the retry comes.
                let notification = await harness.supervisor.notifications()["b2_backup_failure"]
                #expect(notification?.message.contains("the disk is full") == true)
                #expect(notification?.message.contains("2026-11-30T02:45:00Z") == true)

                harness.clock.advance(to: nextSlot.addingTimeInterval(15 * 60))
                await harness.clock.waitForSleepers(3)
                let ran = try await jobs(harness)
                #expect(ran.map(\.trigger) == [.retry, .schedule])
                #expect(ran.first?.state == .done)
                #expect(await harness.supervisor.notifications()["b2_backup_failure"] == nil)
                #expect(await pipeline.scheduler.nextRun == nextSlot.addingTimeInterval(86_400))
            }
        }
    }

    @Test func aDisabledScheduleOnlyRunsOnRequest() async throws {
        try await withHarness(options: { $0.scheduleEnabled = false }) { harness in
            let pipeline = try await harness.pipeline()
            try await running(pipeline, harness) {
                await harness.clock.waitForSleepers(3)
                #expect(await pipeline.scheduler.nextRun == nil)
                harness.clock.advance(by: 3 * 86_400)
                await harness.clock.waitForSleepers(3)
                let none = try await jobs(harness)
                #expect(none.isEmpty)
                #expect(await pipeline.status().nextRun == nil)
                #expect(await !pipeline.status().scheduleEnabled)
            }
        }
    }
}
