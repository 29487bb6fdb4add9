import B2Client
import B2Simulator
import BackupArchive
import Core
import Foundation
import HTTPClient
import Storage
import SupervisorSimulator
import Testing
@testable import App

/// Retention against both simulators: the catalog rebuilt from B2 alone, the policies applied to B2 and to
/// Home Assistant, pins, manual deletion and its refusals, hide mode, stale unfinished uploads.
@Suite(.timeLimit(.minutes(2)))
struct RetentionEndToEndTests {
    /// Midday in Amsterdam on each of `days` consecutive days ending the day before the harness starts.
    func seedDates(_ days: Int) -> [Date] {
        (1...days).map { PipelineHarness.start.addingTimeInterval(-Double(days - $0 + 1) * 86_400 + 2 * 3600) }
    }

    /// Backups as an earlier run of the add-on left them: in Home Assistant and uploaded with our file info,
    /// but no catalog index in the bucket (as after a reinstall). Returns the slugs, oldest first.
    @discardableResult
    func seed(_ harness: PipelineHarness, days: Int, uploaded: Bool = true) async throws -> [String] {
        let store = try harness.store()
        let b2 = B2Client(credentials: B2Credentials(keyID: PipelineHarness.keyID, applicationKey: PipelineHarness.applicationKey),
                          realm: harness.b2.realmURL, logger: quiet)
        let remote = B2RemoteStore(client: b2, journal: StoredUploadJournal(store: store), bucketName: PipelineHarness.bucket, prefix: "homeassistant", logger: quiet)
        var slugs: [String] = []
        for (index, date) in seedDates(days).enumerated() {
            let name = "Seeded \(index)"
            let slug = try await harness.supervisor.addExistingBackup(name: name, date: date, fileName: "seeded_\(index).tar")
            slugs.append(slug)
            guard uploaded else { continue }
            let path = harness.backupDirectory.appendingPathComponent("seeded_\(index).tar").path
            _ = try await remote.upload(path: path, name: "seeded_\(index).tar",
                                        info: ["ha_slug": slug, "ha_name": name, "ha_date": ISO8601.string(date), "ha_type": "full", "job_id": "seed\(index)"],
                                        settings: UploadSettings(concurrency: 2, bytesPerSecond: nil)) { _, _ in }
        }
        return slugs
    }

    func tarNames(_ harness: PipelineHarness) async -> Set<String> {
        Set(await harness.objects().map(\.fileName).filter { $0.hasSuffix(".tar") })
    }

    @Test func theCatalogIsRebuiltFromTheBucketAloneAndSavedAsAnIndex() async throws {
        try await withHarness { harness in
            let slugs = try await seed(harness, days: 3)
            let pipeline = try await harness.pipeline()
            let retention = try #require(pipeline.retention)
            let snapshot = try await retention.snapshot()
            #expect(Set(snapshot.backups.map(\.slug)) == Set(slugs))
            #expect(snapshot.backups.allSatisfy { $0.madeByAddon && $0.verifiedAt != nil && $0.sha1 != nil })
            let oldest = try #require(snapshot.entry(slug: slugs[0]))
            #expect(oldest.facts.date == seedDates(3)[0])
            #expect(oldest.name == "Seeded 0")
            // The index object now exists; a fresh install reads it.
            #expect(await harness.b2.fileVersions(bucket: PipelineHarness.bucket).filter { $0.fileName == "homeassistant/b2-backup-index.json" }.count == 1)
            let elsewhere = try #require(try await PipelineAssembly.make(settings: {
                var settings = harness.settings()
                settings.dataDirectory = harness.directory.appendingPathComponent("fresh-data")
                return settings
            }(), store: StateStore(path: harness.directory.appendingPathComponent("fresh.db").path, logger: quiet), logger: quiet))
            let fresh = try await #require(elsewhere.retention).snapshot()
            #expect(Set(fresh.backups.map(\.slug)) == Set(slugs))
        }
    }

    @Test func whileB2IsUnreachableTheListingShowsTheLastKnownCatalogAndRetentionDeletesNothing() async throws {
        try await withHarness(options: { $0.keepLast = 1; $0.keepDaily = 0; $0.keepWeekly = 0; $0.keepMonthly = 0 }) { harness in
            let slugs = try await seed(harness, days: 2)
            let store = try harness.store()
            _ = try await #require(try await harness.pipeline(store: store).retention).snapshot()
            await harness.b2.shutdown()
            // A restarted add-on (new service, same database) with B2 gone.
            let restarted = try #require(try await harness.pipeline(store: store).retention)
            let listed = try await restarted.listing()
            #expect(Set(listed.compactMap { $0.remote?.slug }) == Set(slugs))
            let report = await restarted.apply()
            #expect(report.skipped?.hasPrefix("cannot read the catalog") == true)
            #expect(report.deletedLocally.isEmpty && report.deletedFromB2.isEmpty)
        }
    }

    @Test func thePoliciesDeleteOldBackupsEverywhereButKeepTheNewest() async throws {
        try await withHarness(options: {
            $0.keepLast = 0; $0.keepDaily = 2; $0.keepWeekly = 0; $0.keepMonthly = 0; $0.keepYearly = 0
            $0.localKeepLast = 1
        }) { harness in
            let slugs = try await seed(harness, days: 5)
            let pipeline = try await harness.pipeline()
            let retention = try #require(pipeline.retention)
            let preview = try await retention.preview()
            #expect(preview.b2.filter(\.keep).map(\.slug) == [slugs[4], slugs[3]])
            #expect(preview.b2.first?.reasons.first?.hasPrefix("daily 2026-11-28") == true)
            #expect(preview.local.filter(\.keep).map(\.slug) == [slugs[4]])

            let report = await retention.apply()
            #expect(report.skipped == nil)
            #expect(Set(report.deletedFromB2) == Set(slugs[0...2]))
            #expect(Set(report.deletedLocally) == Set(slugs[0...3]))
            #expect(await tarNames(harness) == ["homeassistant/seeded_3.tar", "homeassistant/seeded_4.tar"])
            // Every version is gone, not just hidden.
            let versions = await harness.b2.fileVersions(bucket: PipelineHarness.bucket)
            #expect(!versions.contains { $0.fileName.hasSuffix("seeded_0.tar") })
            #expect(await harness.supervisor.backups().map(\.slug) == [slugs[4]])
            // The index agrees, and a second run deletes nothing more.
            #expect(Set(try await retention.snapshot().backups.map(\.slug)) == [slugs[3], slugs[4]])
            let again = await retention.apply()
            #expect(again.deletedFromB2.isEmpty && again.deletedLocally.isEmpty)
        }
    }

    @Test func aNewBackupRunsRetentionAfterItIsVerified() async throws {
        try await withHarness(options: { $0.keepLast = 2; $0.keepDaily = 0; $0.keepWeekly = 0; $0.keepMonthly = 0; $0.localKeepLast = 0 }) { harness in
            let slugs = try await seed(harness, days: 3)
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            #expect(job.warnings.isEmpty, "\(job.warnings)")
            let kept = try await #require(pipeline.retention).snapshot().backups.map(\.slug)
            #expect(Set(kept) == [slugs[2], try #require(job.slug)])
            #expect(await tarNames(harness).count == 2)
            // Local retention is off (0): nothing removed from Home Assistant.
            #expect(await harness.supervisor.backups().count == 4)
        }
    }

    @Test func aPinnedBackupIsKeptUntilUnpinned() async throws {
        try await withHarness(options: { $0.keepLast = 1; $0.keepDaily = 0; $0.keepWeekly = 0; $0.keepMonthly = 0; $0.localKeepLast = 0 }) { harness in
            let slugs = try await seed(harness, days: 3)
            let pipeline = try await harness.pipeline()
            let retention = try #require(pipeline.retention)
            try await retention.setPinned(slugs[0], true)
            let preview = try await retention.preview()
            #expect(preview.b2.first { $0.slug == slugs[0] }?.reasons == ["pinned"])
            await retention.apply()
            #expect(await tarNames(harness) == ["homeassistant/seeded_0.tar", "homeassistant/seeded_2.tar"])
            // The pin lives in B2's index: a fresh install sees it.
            #expect(try await retention.snapshot().pins == [slugs[0]])
            try await retention.setPinned(slugs[0], false)
            await retention.apply()
            #expect(await tarNames(harness) == ["homeassistant/seeded_2.tar"])
            await #expect(throws: RetentionRefusal.self) { try await retention.setPinned("nope", true) }
        }
    }

    @Test func manualDeletionRefusesToBreakAnInvariantUnlessForced() async throws {
        try await withHarness { harness in
            let slugs = try await seed(harness, days: 2)
            let localOnly = try await harness.supervisor.addExistingBackup(name: "Not uploaded", date: PipelineHarness.start.addingTimeInterval(-600))
            let pipeline = try await harness.pipeline()
            let retention = try #require(pipeline.retention)
            func refusal(_ slug: String, _ location: BackupLocation) async -> String? {
                do throws(RetentionRefusal) {
                    try await retention.delete(slug, from: location, force: false)
                    return nil
                } catch {
                    return error.code
                }
            }
            #expect(await refusal(slugs[1], .b2) == "newest_verified")
            #expect(await refusal(localOnly, .local) == "no_verified_copy")
            try await retention.setPinned(slugs[0], true)
            #expect(await refusal(slugs[0], .all) == "pinned")
            #expect(await tarNames(harness).count == 2)
            #expect(await harness.supervisor.backups().count == 3)

            try await retention.delete(slugs[0], from: .all, force: true)
            try await retention.delete(localOnly, from: .local, force: true)
            #expect(await tarNames(harness) == ["homeassistant/seeded_1.tar"])
            #expect(Set(await harness.supervisor.backups().map(\.slug)) == [slugs[1]])
            await #expect(throws: RetentionRefusal.self) { try await retention.delete("nope", from: .all, force: true) }
        }
    }

    @Test func backupsThisAddOnDidNotMakeAreLeftAloneByDefault() async throws {
        try await withHarness(options: { $0.localKeepLast = 1 }) { harness in
            _ = try await seed(harness, days: 2)
            let theirs = try await harness.supervisor.addExistingBackup(name: "Automatic backup 2026.11.2", date: PipelineHarness.start.addingTimeInterval(-30 * 86_400))
            let pipeline = try await harness.pipeline()
            let report = try await #require(pipeline.retention).apply()
            #expect(!report.deletedLocally.contains(theirs))
            #expect(await harness.supervisor.backups().contains { $0.slug == theirs })
        }
    }

    @Test func hideModeLeavesDeletionToTheBucketsLifecycleRules() async throws {
        try await withHarness(options: { $0.keepLast = 1; $0.keepDaily = 0; $0.keepWeekly = 0; $0.keepMonthly = 0; $0.b2Deletion = "hide" }) { harness in
            _ = try await seed(harness, days: 2)
            let pipeline = try await harness.pipeline()
            let report = try await #require(pipeline.retention).apply()
            #expect(report.deletedFromB2.count == 1)
            #expect(await tarNames(harness) == ["homeassistant/seeded_1.tar", "homeassistant/seeded_0.tar"]) // the upload version stays…
            let versions = await harness.b2.fileVersions(bucket: PipelineHarness.bucket).filter { $0.fileName.hasSuffix("seeded_0.tar") }
            #expect(versions.first?.action == .hide) // …behind a hide marker
        }
    }

    @Test func objectLockKeepsABackupUntilItUnlocks() async throws {
        try await withHarness(options: { $0.keepLast = 1; $0.keepDaily = 0; $0.keepWeekly = 0; $0.keepMonthly = 0; $0.immutableDays = 30 },
                              objectLock: true) { harness in
            let pipeline = try await harness.pipeline()
            let retention = try #require(pipeline.retention)
            let first = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(first.state == .done, "\(first.error?.message ?? "")")
            let locked = try #require(await harness.objects().first?.retention)
            #expect(locked.mode == .governance)
            let lockedUntil = Date(timeIntervalSince1970: Double(locked.retainUntilTimestamp) / 1000)
            #expect(abs(lockedUntil.timeIntervalSinceNow - 30 * 86_400) < 3600)

            harness.clock.advance(by: 60)
            let second = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(second.state == .done)
            // keep_last 1 drops the first, but B2 holds it until it unlocks: kept, and said so.
            #expect(await harness.objects().count == 2)
            let preview = try await retention.preview()
            let reasons = try #require(preview.b2.first { $0.slug == first.slug }?.reasons)
            #expect(reasons.count == 1 && reasons[0].hasPrefix("locked until 20"))
            let report = await retention.apply()
            #expect(report.locked.count == 1)
            #expect(report.deletedFromB2.isEmpty && report.warnings.isEmpty)
            let firstSlug = try #require(first.slug)
            do throws(RetentionRefusal) {
                try await retention.delete(firstSlug, from: .b2, force: true)
                Issue.record("a locked backup was deleted")
            } catch {
                #expect(error.code == "locked")
            }
        }
    }

    @Test func staleUnfinishedUploadsAreCancelledAndNothingRunsWhileAJobIsUnfinished() async throws {
        try await withHarness { harness in
            let b2 = B2Client(credentials: B2Credentials(keyID: PipelineHarness.keyID, applicationKey: PipelineHarness.applicationKey),
                              realm: harness.b2.realmURL, logger: quiet)
            let bucket = try await b2.bucket(named: PipelineHarness.bucket)
            _ = try await b2.startLargeFile(bucketID: bucket.bucketId, fileName: "homeassistant/abandoned.tar",
                                            fileInfo: [UploadEngine.markerKey: UploadEngine.markerValue])
            _ = try await b2.startLargeFile(bucketID: bucket.bucketId, fileName: "homeassistant/someone-elses.tar", fileInfo: [:])
            let pipeline = try await harness.pipeline()
            let retention = try #require(pipeline.retention)

            // An unfinished run blocks retention altogether.
            let plan = BackupSettings().plan(for: BackupRequest(), at: PipelineHarness.start, homeAssistantVersion: nil, randomSuffix: "0000")
            try await StoredJobStore(store: harness.store()).save(Job(id: "unfinished", trigger: .schedule, plan: plan, startedAt: PipelineHarness.start))
            #expect(await retention.apply().skipped == "a backup run is unfinished")
            #expect(await harness.b2.unfinishedLargeFiles(bucket: PipelineHarness.bucket).count == 2)
            var done = try #require(try await StoredJobStore(store: harness.store()).job(id: "unfinished"))
            done.failed = true
            done.finishedAt = PipelineHarness.start
            try await StoredJobStore(store: harness.store()).save(done)

            // Younger than a day: left alone. Older: ours cancelled, others' kept. (The simulator stamps uploads
            // with the real time, so the manual clock first catches up with it.)
            harness.clock.advance(to: Date())
            #expect(await retention.apply().cancelledUploads == 0)
            harness.clock.advance(by: 2 * 86_400)
            #expect(await retention.apply().cancelledUploads == 1)
            #expect(await harness.b2.unfinishedLargeFiles(bucket: PipelineHarness.bucket).map(\.fileName) == ["homeassistant/someone-elses.tar"])
        }
    }
}
