import B2Client
import B2Simulator
import BackupArchive
import Core
import Foundation
import Storage
import SupervisorSimulator
import Testing
@testable import App

/// Restorability checks read backups back from B2 and take them apart: after every upload, on request, and
/// on the `verify_days` schedule.
@Suite(.timeLimit(.minutes(2)))
struct RestorabilityTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/fixtures/backups").standardizedFileURL

    /// Puts a fixture into the bucket the way an earlier run of the add-on would have (our file info).
    func upload(_ fixture: String, slug: String, date: Date, harness: PipelineHarness) async throws {
        let b2 = B2Client(credentials: B2Credentials(keyID: PipelineHarness.keyID, applicationKey: PipelineHarness.applicationKey),
                          realm: harness.b2.realmURL, logger: quiet)
        let remote = B2RemoteStore(client: b2, journal: MemoryLessJournal(), bucketName: PipelineHarness.bucket, prefix: "homeassistant", logger: quiet)
        _ = try await remote.upload(path: Self.fixtures.appendingPathComponent(fixture).path, name: fixture,
                                    info: ["ha_slug": slug, "ha_name": fixture, "ha_date": ISO8601.string(date), "job_id": "fixture"],
                                    settings: UploadSettings(concurrency: 1, bytesPerSecond: nil)) { _, _ in }
    }

    @Test func everyUploadIsReadBackAndCheckedBeforeTheBackupCounts() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let check = try #require(job.check)
            #expect(check.ok && check.mode == "full")
            let retention = try #require(pipeline.retention)
            let slug = try #require(job.slug)
            let entry = try #require(try await retention.snapshot().entry(slug: slug))
            #expect(entry.lastCheck == check)
            #expect(entry.isVerified)
        }
    }

    @Test(arguments: [
        ("full-plain.tar", "5efcaa2d", "restorable", "restorable"),
        ("broken-inner-gzip-crc.tar", "5efcaa2d", "not_restorable", "restorable"), // only the full check inflates the archives
        ("broken-missing-archive.tar", "5efcaa2d", "not_restorable", "not_restorable"),
        ("lying-protected.tar", "5efcaa2d", "flagged", "flagged"),
    ])
    func storedBackupsAreJudgedLikeTheFixturesSay(fixture: String, slug: String, full: String, quick: String) async throws {
        try await withHarness(options: { $0.verifyMode = "full" }) { harness in
            try await upload(fixture, slug: slug, date: PipelineHarness.start.addingTimeInterval(-86_400), harness: harness)
            let pipeline = try await harness.pipeline()
            let check = try #require(await pipeline.checkRestorability(slug: slug))
            #expect(check.verdict == full, "\(check.problems)")
            if full != "restorable" {
                let event = try #require(await harness.events("b2_backup_verify_failed").first)
                #expect(event["slug"]?.stringValue == slug)
                #expect(await harness.supervisor.notifications()["b2_backup_failure"] != nil)
                // It no longer counts as a verified backup: retention will not keep it as "the newest verified".
                let retention = try #require(pipeline.retention)
                let entry = try #require(try await retention.snapshot().entry(slug: slug))
                #expect(!entry.isVerified)
            }
            var quickOptions = harness.options
            quickOptions.verifyMode = "quick"
            let quickCheck = try #require(await harness.pipeline(options: quickOptions).checkRestorability(slug: slug))
            #expect(quickCheck.verdict == quick, "\(quickCheck.problems)")
        }
    }

    @Test func aBackupDamagedInTheBucketIsCaughtByTheSHA1() async throws {
        try await withHarness { harness in
            try await upload("full-plain.tar", slug: "5efcaa2d", date: PipelineHarness.start.addingTimeInterval(-86_400), harness: harness)
            let pipeline = try await harness.pipeline()
            _ = try await #require(pipeline.retention).snapshot()
            await harness.b2.faults.corruptDownload(times: 100)
            let check = try #require(await pipeline.checkRestorability(slug: "5efcaa2d"))
            #expect(!check.ok)
        }
    }

    @Test func theScheduleChecksADifferentBackupEachTimeOldestCheckFirst() async throws {
        try await withHarness(options: { $0.verifyDays = 7; $0.scheduleEnabled = false }) { harness in
            try await upload("full-plain.tar", slug: "5efcaa2d", date: PipelineHarness.start.addingTimeInterval(-2 * 86_400), harness: harness)
            try await upload("partial-plain.tar", slug: "fae8136f", date: PipelineHarness.start.addingTimeInterval(-86_400), harness: harness)
            let pipeline = try await harness.pipeline()
            let retention = try #require(pipeline.retention)
            let loops = Task { await pipeline.run() }
            defer { loops.cancel() }
            func checked() async throws -> [String: Date] {
                var result: [String: Date] = [:]
                for entry in try await retention.snapshot().backups { if let at = entry.lastCheck?.at { result[entry.slug] = at } }
                return result
            }
            await harness.clock.waitForSleepers(3)
            // At start: never checked, so the older one goes first.
            #expect(try await Set(checked().keys) == ["5efcaa2d"])
            harness.clock.advance(by: 86_400)
            await harness.clock.waitForSleepers(3)
            #expect(try await checked().count == 1) // a day later: not due yet
            harness.clock.advance(by: 6 * 86_400)
            await harness.clock.waitForSleepers(3)
            #expect(try await Set(checked().keys) == ["5efcaa2d", "fae8136f"]) // a week later: the other one
            loops.cancel()
            _ = await loops.value
        }
    }
}
