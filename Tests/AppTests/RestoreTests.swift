import B2Client
import B2Simulator
import Core
import Foundation
import HTTPClient
import Storage
import SupervisorSimulator
import Testing
@testable import App

/// Pull and restore against both simulators: disaster recovery on a fresh install, the skip when the backup
/// is still local, refusals, corrupted downloads, and the outcome of a full restore learned after a restart.
@Suite(.timeLimit(.minutes(2)))
struct RestoreTests {
    /// A backup made and uploaded, then the local copy and the add-on's data folder wiped: a new machine.
    /// Returns the fresh pipeline, the backup's slug and its original bytes.
    func disasterAfterOneBackup(_ harness: PipelineHarness, password: String? = nil) async throws -> (Pipeline, String, Data) {
        var options = harness.options
        options.backupPassword = password
        let first = try await harness.pipeline(options: options)
        let job = try #require(await first.engine.wait(for: try await first.startManual(BackupRequest()).id))
        #expect(job.state == .done)
        let slug = try #require(job.slug)
        let backup = try #require(await harness.supervisor.backups().first)
        let bytes = try Data(contentsOf: backup.file)
        let client = SupervisorClientFactory.client(harness)
        try await client.deleteBackup(slug: slug)
        #expect(await harness.supervisor.backups().isEmpty)
        var settings = harness.settings(options: options)
        settings.dataDirectory = harness.directory.appendingPathComponent("new-machine")
        let store = try StateStore(path: harness.directory.appendingPathComponent("new-machine.db").path, logger: quiet)
        let fresh = try #require(try await PipelineAssembly.make(settings: settings, store: store, logger: quiet))
        return (fresh, slug, bytes)
    }

    @Test func aFreshInstallListsTheCloudAndRestoresAByteIdenticalBackup() async throws {
        try await withHarness { harness in
            let (pipeline, slug, original) = try await disasterAfterOneBackup(harness)
            let listed = try await #require(pipeline.retention).listing()
            #expect(listed.map(\.slug) == [slug])
            #expect(listed.first?.remote != nil && listed.first?.local == nil)

            let started = try await pipeline.startRestore(slug: slug, RestoreOptions(type: "full"), pullOnly: false)
            #expect(started.kind == .restore)
            let job = try #require(await pipeline.engine.wait(for: started.id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let back = try #require(await harness.supervisor.backups().first)
            #expect(back.slug == slug)
            #expect(try Data(contentsOf: back.file) == original)
            let restore = try #require(await harness.supervisor.restores().first)
            #expect(restore.slug == slug && restore.type == "full")
            // The temporary download is gone, and Home Assistant heard the outcome.
            #expect(!FileManager.default.fileExists(atPath: harness.directory.appendingPathComponent("new-machine/tmp/\(job.plan.filename)").path))
            let finished = try #require(await harness.events("b2_backup_restore_finished").last)
            #expect(finished["result"]?.stringValue == "success")
            #expect(finished["slug"]?.stringValue == slug)
            #expect(finished["type"]?.stringValue == "full")
        }
    }

    @Test func aPullSkipsTheDownloadWhenTheBackupIsAlreadyInHomeAssistant() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            let backup = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let slug = try #require(backup.slug)
            let pull = try #require(await pipeline.engine.wait(for: try await pipeline.startRestore(slug: slug, RestoreOptions(), pullOnly: true).id))
            #expect(pull.state == .done)
            #expect(pull.local == nil) // nothing downloaded
            #expect(await harness.supervisor.requestCount("/backups/new/upload") == 0)
            #expect(await harness.supervisor.restores().isEmpty)
        }
    }

    @Test func aPartialRestoreRestoresOnlyWhatItNames() async throws {
        try await withHarness { harness in
            let (pipeline, slug, _) = try await disasterAfterOneBackup(harness)
            let options = RestoreOptions(type: "partial", homeassistant: true, addons: ["core_mosquitto"])
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startRestore(slug: slug, options, pullOnly: false).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let restore = try #require(await harness.supervisor.restores().first)
            #expect(restore.type == "partial")
            #expect(restore.addons == ["core_mosquitto"] && restore.homeassistant && restore.folders.isEmpty)
        }
    }

    @Test func aWrongPasswordFailsWithTheSupervisorsWordsAndRestoresNothing() async throws {
        try await withHarness(options: { $0.backupPassword = "the right one" }) { harness in
            let pipeline = try await harness.pipeline()
            let backup = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let slug = try #require(backup.slug)
            let started = try await pipeline.startRestore(slug: slug, RestoreOptions(password: "a wrong one"), pullOnly: false)
            let job = try #require(await pipeline.engine.wait(for: started.id))
            #expect(job.state == .failed)
            #expect(job.error?.code == "supervisor_refused")
            #expect(job.error?.message.contains("Invalid password for backup \(slug)") == true)
            #expect(job.error?.step == .restore)
            #expect(await harness.supervisor.restores().isEmpty)
            let finished = try #require(await harness.events("b2_backup_restore_finished").last)
            #expect(finished["result"]?.stringValue == "failed")
            #expect(await harness.supervisor.notifications()["b2_backup_restore"]?.message.contains("failed") == true)
        }
    }

    @Test func anUnknownSlugOrABadRequestIsRefusedBeforeAnythingStarts() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            await #expect(throws: EngineRefusal.notFound(slug: "nope")) { try await pipeline.startRestore(slug: "nope", RestoreOptions(), pullOnly: false) }
            await #expect(throws: EngineRefusal.self) { try await pipeline.startRestore(slug: "nope", RestoreOptions(type: "weird"), pullOnly: false) }
            await #expect(throws: EngineRefusal.self) { try await pipeline.startRestore(slug: "nope", RestoreOptions(type: "partial"), pullOnly: false) }
            #expect(await pipeline.engine.runningJob == nil)
        }
    }

    @Test func aCorruptedDownloadIsCaughtAndNothingReachesHomeAssistant() async throws {
        try await withHarness { harness in
            let (pipeline, slug, _) = try await disasterAfterOneBackup(harness)
            _ = try await #require(pipeline.retention).snapshot() // reads the index before the faults start
            await harness.b2.faults.corruptDownload(times: 5)
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startRestore(slug: slug, RestoreOptions(), pullOnly: true).id))
            #expect(job.state == .failed)
            #expect(job.error?.step == .pull)
            #expect(job.error?.code == "verify_mismatch", "\(job.error?.message ?? "")")
            #expect(await harness.supervisor.backups().isEmpty)
            #expect(await harness.supervisor.requestCount("/backups/new/upload") == 0)
        }
    }

    @Test func aDownloadCutShortIsResumedAndArrivesIdentical() async throws {
        try await withHarness { harness in
            let (pipeline, slug, original) = try await disasterAfterOneBackup(harness)
            _ = try await #require(pipeline.retention).snapshot()
            await harness.b2.faults.truncateDownload(afterBytes: 200_000, times: 2)
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startRestore(slug: slug, RestoreOptions(), pullOnly: true).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let back = try #require(await harness.supervisor.backups().first)
            #expect(try Data(contentsOf: back.file) == original)
        }
    }

    /// A full restore stops the add-on and replaces its data folder; the intent kept in the backup folder
    /// lets the next start learn and report the outcome.
    @Test func afterAFullRestoreRestartsTheAddOnTheOutcomeIsReported() async throws {
        try await withHarness(supervisor: { $0.jobDuration = .milliseconds(500) }) { harness in
            let pipeline = try await harness.pipeline()
            let backup = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let slug = try #require(backup.slug)
            let started = try await pipeline.startRestore(slug: slug, RestoreOptions(), pullOnly: false)
            while await pipeline.engine.runningJob?.supervisorJobID == nil { await Task.yield() }
            await pipeline.engine.suspend() // the Supervisor stops the add-on
            #expect(FileManager.default.fileExists(atPath: harness.backupDirectory.appendingPathComponent(".b2-backup/restore-\(started.id).json").path))

            // The restore brought back an older data folder: a database that never heard of this job.
            var settings = harness.settings()
            settings.dataDirectory = harness.directory.appendingPathComponent("restored-data")
            let store = try StateStore(path: harness.directory.appendingPathComponent("restored.db").path, logger: quiet)
            let restarted = try #require(try await PipelineAssembly.make(settings: settings, store: store, logger: quiet))
            #expect(await restarted.engine.resumeUnfinished()?.id == started.id)
            let finished = try #require(await restarted.engine.wait(for: started.id))
            #expect(finished.state == .done, "\(finished.error?.message ?? "")")
            #expect(await harness.supervisor.restores().count == 1) // waited for, not started again
            let event = try #require(await harness.events("b2_backup_restore_finished").last)
            #expect(event["result"]?.stringValue == "success")
            #expect(!FileManager.default.fileExists(atPath: harness.backupDirectory.appendingPathComponent(".b2-backup/restore-\(started.id).json").path))
            #expect(try await StoredJobStore(store: store).job(id: started.id)?.state == .done)
        }
    }
}

import SupervisorClient

enum SupervisorClientFactory {
    static func client(_ harness: PipelineHarness) -> SupervisorClient {
        SupervisorClient(baseURL: harness.supervisor.url, token: harness.supervisor.configuration.token, logger: quiet)
    }
}

/// Backups of another prefix in the same bucket (another installation, or an older `b2_prefix`).
@Suite(.timeLimit(.minutes(2)))
struct OtherPrefixTests {
    @Test func anotherPrefixIsListedAndRestoredFrom() async throws {
        try await withHarness { harness in
            let b2 = B2Client(credentials: B2Credentials(keyID: PipelineHarness.keyID, applicationKey: PipelineHarness.applicationKey),
                              realm: harness.b2.realmURL, logger: quiet)
            let other = B2RemoteStore(client: b2, journal: MemoryLessJournal(), bucketName: PipelineHarness.bucket, prefix: "old-house", logger: quiet)
            let fixture = RestorabilityTests.fixtures.appendingPathComponent("full-plain.tar")
            _ = try await other.upload(path: fixture.path, name: "full-plain.tar",
                                       info: ["ha_slug": "5efcaa2d", "ha_name": "Old house", "ha_date": "2026-09-14T03:00:04Z"],
                                       settings: UploadSettings(concurrency: 1, bytesPerSecond: nil)) { _, _ in }
            let pipeline = try await harness.pipeline()
            let bucket = try #require(pipeline.bucket)
            #expect(try await bucket.prefixes().contains("old-house"))
            let listed = try await bucket.catalog(prefix: "old-house").load().snapshot
            #expect(listed.backups.map(\.slug) == ["5efcaa2d"])
            await #expect(throws: EngineRefusal.notFound(slug: "5efcaa2d")) { try await pipeline.startRestore(slug: "5efcaa2d", RestoreOptions(), pullOnly: true) }
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startRestore(slug: "5efcaa2d", RestoreOptions(), pullOnly: true,
                                                                                                  prefix: "old-house").id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let back = try #require(await harness.supervisor.backups().first { $0.slug == "5efcaa2d" })
            #expect(try Data(contentsOf: back.file) == Data(contentsOf: fixture))
        }
    }
}
