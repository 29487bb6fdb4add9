import B2Client
import BackupArchive
import B2Simulator
import Core
import Foundation
import Hashing
import Storage
import SupervisorClient
import SupervisorSimulator
import Testing
@testable import App

/// The whole pipeline against both simulators: Supervisor backup → B2 → verify → record → Home Assistant.
@Suite(.timeLimit(.minutes(2)))
struct PipelineCycleTests {
    @Test func aManualBackupEndsUpByteIdenticalInB2AndIsReported() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            let started = try await pipeline.startManual(BackupRequest())
            #expect(started.state == .creating)
            let job = try #require(await pipeline.engine.wait(for: started.id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            #expect(job.error == nil)

            // The Supervisor made one backup, under our own unique file name.
            let backups = await harness.supervisor.backups()
            #expect(backups.count == 1)
            let backup = try #require(backups.first)
            #expect(backup.slug == job.slug)
            #expect(backup.fileName == job.plan.filename)
            #expect(backup.name == job.plan.name)
            #expect(job.plan.name.hasPrefix("B2 2026-11-29 full"))

            // B2 holds exactly those bytes, as a multi-part large file, with the backup's metadata.
            let objects = await harness.objects()
            #expect(objects.map(\.fileName) == ["homeassistant/\(job.plan.filename)"])
            let object = try #require(objects.first)
            #expect(object.fileInfo["ha_slug"] == backup.slug)
            let local = try Data(contentsOf: backup.file)
            #expect(try await harness.download(object.fileName) == local)
            #expect(job.remote?.sha1 == StreamingDigest.sha1Hex(Array(local)))
            #expect((job.remote?.parts ?? 0) > 1)
            #expect(job.bytesTotal == Int64(local.count))

            // History and status.
            let stored = try #require(try await harness.store().job(id: job.id))
            #expect(stored.state == "done")
            let status = await pipeline.status()
            #expect(status.state == "idle")
            #expect(status.lastSuccess?.id == job.id)
            #expect(status.lastFailure == nil)

            // Home Assistant heard about it.
            #expect(await harness.events("b2_backup_started").count == 1)
            let succeeded = try #require(await harness.events("b2_backup_succeeded").first)
            #expect(succeeded["slug"]?.stringValue == backup.slug)
            #expect(succeeded["job_id"]?.stringValue == job.id)
            let sensor = try #require(await harness.supervisor.states()["sensor.b2_backup"])
            #expect(sensor.state == "idle")
            #expect(sensor.attributes["last_backup"]?.stringValue == job.plan.name)
            #expect(await harness.supervisor.states()["binary_sensor.b2_backup_stale"]?.state == "off")
            #expect(await harness.supervisor.notifications()["b2_backup_failure"] == nil)
        }
    }

    @Test func excludedAddonsAndFoldersMakeAPartialBackupOfTheRest() async throws {
        try await withHarness(options: {
            $0.excludeAddons = ["core_mosquitto"]
            $0.excludeFolders = ["media", "ssl"]
            $0.excludeDatabase = true
        }) { harness in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let backup = try #require(await harness.supervisor.backups().first)
            #expect(backup.type == "partial")
            #expect(backup.content.homeassistant)
            #expect(backup.content.addons == ["45df7312_zigbee2mqtt"])
            #expect(Set(backup.content.folders) == ["share", "addons/local"])
        }
    }

    @Test func aRequestOverridesTheOptionsForOneRun() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            let request = BackupRequest(name: "Before the Z2M update", type: .partial, excludeAddons: ["45df7312_zigbee2mqtt"], excludeFolders: [], excludeDatabase: nil)
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(request).id))
            #expect(job.state == .done)
            let backup = try #require(await harness.supervisor.backups().first)
            #expect(backup.name == "Before the Z2M update")
            #expect(backup.type == "partial")
            #expect(backup.content.addons == ["core_mosquitto"])
            #expect(job.plan.filename.hasPrefix("Before_the_Z2M_update_2026-11-29_"))
        }
    }

    @Test func aPasswordProtectsTheBackupAndIsNeverStored() async throws {
        let password = "correct horse battery staple"
        try await withHarness(options: { $0.backupPassword = password }) { harness in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done)
            #expect(await harness.supervisor.backups().first?.protected == true)
            let record = try #require(try await harness.store().job(id: job.id)).record
            #expect(!record.contains(password))
            #expect(record.contains("\"protected\":true"))
        }
    }

    @Test func withoutKeepLocalTheHomeAssistantCopyIsRemovedAfterUpload() async throws {
        try await withHarness(options: { $0.keepLocal = false }) { harness in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done)
            #expect(await harness.supervisor.backups().isEmpty)
            #expect(await harness.objects().count == 1)
        }
    }

    /// Backups on a network mount are not in /backup: the add-on streams them from the Supervisor and removes its copy.
    @Test func aBackupNotInTheFolderIsDownloadedThenRemoved() async throws {
        try await withHarness { harness in
            var settings = harness.settings()
            let elsewhere = harness.directory.appendingPathComponent("empty-mount")
            try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
            settings.backupDirectory = elsewhere
            let pipeline = try #require(try await PipelineAssembly.make(settings: settings, store: harness.store(), logger: quiet))
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let local = try #require(job.local)
            #expect(local.temporary)
            #expect(!FileManager.default.fileExists(atPath: local.path))
            let backup = try #require(await harness.supervisor.backups().first)
            #expect(try await harness.download("homeassistant/\(job.plan.filename)") == Data(contentsOf: backup.file))
        }
    }

    @Test func oneJobAtATime() async throws {
        try await withHarness(supervisor: { $0.jobDuration = .milliseconds(400) }) { harness in
            let pipeline = try await harness.pipeline()
            let first = try await pipeline.startManual(BackupRequest())
            await #expect(throws: EngineRefusal.jobRunning(id: first.id)) { try await pipeline.startManual(BackupRequest()) }
            _ = await pipeline.engine.wait(for: first.id)
            let second = try await pipeline.startManual(BackupRequest())
            #expect(await pipeline.engine.wait(for: second.id)?.state == .done)
            #expect(await harness.supervisor.backups().count == 2)
            #expect(Set(await harness.objects().map(\.fileName)).count == 2)
        }
    }
}

/// Each fault fails the run with the step and the reason in words, tells Home Assistant, and changes nothing else;
/// the next good run clears the failure notification.
@Suite(.timeLimit(.minutes(2)))
struct PipelineFaultTests {
    enum Fault: String, CaseIterable, Sendable {
        case supervisorBackupFails, supervisorBusy, b2CapReached, wrongB2Key, unknownBucket
    }

    @Test(arguments: Fault.allCases)
    func aFaultFailsTheRunAndIsReported(fault: Fault) async throws {
        try await withHarness { harness in
            var options = harness.options
            let expected: (code: String, step: JobStep, words: String)
            switch fault {
            case .supervisorBackupFails:
                await harness.supervisor.faults.failNextBackup(message: "Backup failed: no space left on device")
                expected = ("backup_failed", .create, "no space left on device")
            case .supervisorBusy:
                await harness.supervisor.faults.busy()
                expected = ("supervisor_refused", .create, "blocked from execution")
            case .b2CapReached:
                await harness.b2.faults.capExceeded(operation: "b2_start_large_file")
                expected = ("b2_cap_exceeded", .upload, "Caps & Alerts")
            case .wrongB2Key:
                options.b2Key = "K004NotTheRightKey"
                expected = ("b2_auth_failed", .upload, "b2_authorize_account")
            case .unknownBucket:
                options.b2Bucket = "someone-elses-bucket"
                expected = ("b2_invalid_request", .upload, "restricted to bucket")
            }
            let pipeline = try await harness.pipeline(options: options)
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .failed)
            #expect(job.error?.code == expected.code, "\(job.error?.message ?? "")")
            #expect(job.error?.step == expected.step)
            #expect(job.error?.message.contains(expected.words) == true, "\(job.error?.message ?? "")")
            #expect(await harness.objects().isEmpty)

            let failed = try #require(await harness.events("b2_backup_failed").first)
            #expect(failed["code"]?.stringValue == expected.code)
            #expect(failed["step"]?.stringValue == expected.step.rawValue)
            let notification = try #require(await harness.supervisor.notifications()["b2_backup_failure"])
            #expect(notification.message.contains(expected.words))
            #expect(notification.message.contains(expected.step.activity))
            let status = await pipeline.status()
            #expect(status.state == "failed")
            #expect(status.lastFailure?.id == job.id)
            #expect(await harness.supervisor.states()["sensor.b2_backup"]?.state == "failed")
            #expect(await harness.supervisor.states()["sensor.b2_backup"]?.attributes["last_error"]?.stringValue == job.error?.message)

            // The fault goes away; the next run succeeds and the failure notification is dismissed.
            await harness.supervisor.faults.clear()
            await harness.b2.faults.clear()
            harness.clock.advance(by: 15 * 60)
            let fixed = try await harness.pipeline()
            let next = try #require(await fixed.engine.wait(for: try await fixed.startManual(BackupRequest()).id))
            #expect(next.state == .done, "\(next.error?.message ?? "")")
            #expect(await harness.supervisor.notifications()["b2_backup_failure"] == nil)
            #expect(await fixed.status().state == "idle")
            #expect(await fixed.status().lastFailure == nil)
        }
    }

    @Test func homeAssistantBeingDownDoesNotFailTheBackup() async throws {
        try await withHarness { harness in
            await harness.supervisor.faults.coreUnavailable(times: 100)
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done)
            #expect(await harness.objects().count == 1)
        }
    }

    @Test func theSupervisorsNotifyErrorDoesNotFailTheBackup() async throws {
        try await withHarness(options: { $0.notifyService = "notify.mobile_app_gone"; $0.notifyOnSuccess = true }) { harness in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done)
        }
    }

    @Test func aSuccessNotificationGoesToTheNotifyService() async throws {
        try await withHarness(options: { $0.notifyService = "notify.mobile_app_phone"; $0.notifyOnSuccess = true }) { harness in
            let pipeline = try await harness.pipeline()
            _ = await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id)
            let calls = await harness.supervisor.coreCalls().filter { $0.path == "/core/api/services/notify/mobile_app_phone" }
            #expect(calls.count == 1)
            #expect(calls.first?.status == 200)
            #expect(calls.first?.body?["title"]?.stringValue == "B2 Backup done")
        }
    }
}

/// A restart at any step continues the same job and does nothing twice: one Supervisor backup, one B2 object.
@Suite(.timeLimit(.minutes(2)))
struct PipelineRestartTests {
    /// Where the process died, expressed as the record it left behind.
    enum Crash: String, CaseIterable, Sendable {
        /// Asked the Supervisor, saved its job id, died while it worked.
        case whileTheSupervisorWorked
        /// Asked the Supervisor but died before the job id was saved.
        case beforeTheSupervisorJobWasSaved
        /// The Supervisor restarted too and no longer lists the job.
        case supervisorForgotTheJob
        case beforeLocating, beforeUploading, afterUploadingBeforeSaving, beforeVerifying, beforeRecording, beforeRetention, beforeNotifying
    }

    @Test(arguments: Crash.allCases)
    func aRestartContinuesTheJobWithoutRepeatingSteps(crash: Crash) async throws {
        try await withHarness { harness in
            // A run that completed gives the record; rewinding it is what a crash at that point leaves in the database.
            let first = try await harness.pipeline()
            let done = try #require(await first.engine.wait(for: try await first.startManual(BackupRequest()).id))
            #expect(done.state == .done)
            var record = done
            record.finishedAt = nil
            switch crash {
            case .whileTheSupervisorWorked:
                record.step = .create; record.slug = nil; record.local = nil; record.remote = nil
            case .beforeTheSupervisorJobWasSaved:
                record.step = .create; record.supervisorJobID = nil; record.slug = nil; record.local = nil; record.remote = nil
            case .supervisorForgotTheJob:
                record.step = .create; record.slug = nil; record.local = nil; record.remote = nil
                await harness.supervisor.forgetFinishedJobs()
            case .beforeLocating: record.step = .locate; record.local = nil; record.remote = nil
            case .beforeUploading, .afterUploadingBeforeSaving: record.step = .upload; record.remote = nil
            case .beforeVerifying: record.step = .verify
            case .beforeRecording: record.step = .record
            case .beforeRetention: record.step = .retention
            case .beforeNotifying: record.step = .notify
            }
            if crash == .beforeUploading {
                // Nothing reached B2 yet.
                let client = B2Client(credentials: B2Credentials(keyID: PipelineHarness.keyID, applicationKey: PipelineHarness.applicationKey),
                                      realm: harness.b2.realmURL, logger: quiet)
                for object in await harness.objects() { try await client.deleteFileVersion(fileName: object.fileName, fileID: object.fileID) }
            }
            let store = try harness.store()
            try await StoredJobStore(store: store).save(record)
            let uploadsBefore = await harness.objects().count

            let restarted = try await harness.pipeline(store: store)
            let resumed = try #require(await restarted.engine.resumeUnfinished())
            #expect(resumed.id == done.id)
            let finished = try #require(await restarted.engine.wait(for: done.id))
            #expect(finished.state == .done, "\(finished.error?.message ?? "")")
            #expect(await harness.supervisor.backups().count == 1)
            #expect(await harness.supervisor.requestCount("/backups/new/full") == 1)
            let objects = await harness.objects()
            #expect(objects.count == 1)
            if crash != .beforeUploading { #expect(uploadsBefore == 1 && objects.first?.fileID == done.remote?.fileID) }
            #expect(finished.remote?.sha1 == done.remote?.sha1)
            #expect(try await StoredJobStore(store: store).unfinishedJobs().isEmpty)
        }
    }

    @Test func shutdownDuringAnUploadLeavesTheJobToBeContinued() async throws {
        // 1 MiB at 256 KiB/s: the upload is still going when the add-on stops.
        try await withHarness(options: { $0.uploadLimitKbps = 2048 }) { harness in
            let pipeline = try await harness.pipeline()
            let started = try await pipeline.startManual(BackupRequest())
            while await pipeline.engine.runningJob.map({ $0.step != .upload || $0.bytesDone == 0 }) ?? false { await Task.yield() }
            await pipeline.engine.suspend()
            let store = try harness.store()
            let suspended = try #require(try await StoredJobStore(store: store).job(id: started.id))
            #expect(suspended.finishedAt == nil)
            #expect(suspended.step == .upload)

            var fast = harness.options
            fast.uploadLimitKbps = 0
            let restarted = try await harness.pipeline(options: fast, store: store)
            #expect(await restarted.engine.resumeUnfinished()?.id == started.id)
            let finished = try #require(await restarted.engine.wait(for: started.id))
            #expect(finished.state == .done, "\(finished.error?.message ?? "")")
            #expect(await harness.supervisor.backups().count == 1)
            let objects = await harness.objects()
            #expect(objects.count == 1)
            let backup = try #require(await harness.supervisor.backups().first)
            #expect(try await harness.download(objects[0].fileName) == Data(contentsOf: backup.file))
        }
    }

    @Test func shutdownWhileTheSupervisorWorksWaitsForTheSameBackupAfterTheRestart() async throws {
        try await withHarness(supervisor: { $0.jobDuration = .seconds(3) }) { harness in
            let pipeline = try await harness.pipeline()
            let started = try await pipeline.startManual(BackupRequest())
            while await pipeline.engine.runningJob?.supervisorJobID == nil { await Task.yield() }
            await pipeline.engine.suspend()
            let store = try harness.store()
            let suspended = try #require(try await StoredJobStore(store: store).job(id: started.id))
            #expect(suspended.step == .create) // the wait was cancelled, not sat out
            #expect(suspended.supervisorJobID != nil)
            #expect(suspended.finishedAt == nil)

            let restarted = try await harness.pipeline(store: store)
            #expect(await restarted.engine.resumeUnfinished()?.id == started.id)
            let finished = try #require(await restarted.engine.wait(for: started.id))
            #expect(finished.state == .done, "\(finished.error?.message ?? "")")
            #expect(await harness.supervisor.requestCount("/backups/new/full") == 1)
            #expect(await harness.objects().count == 1)
        }
    }

    @Test func olderUnfinishedJobsAreMarkedInterrupted() async throws {
        try await withHarness { harness in
            let store = try harness.store()
            let jobs = StoredJobStore(store: store)
            let plan = BackupSettings().plan(for: BackupRequest(), at: PipelineHarness.start, homeAssistantVersion: nil, randomSuffix: "aaaa")
            try await jobs.save(Job(id: "old", trigger: .schedule, plan: plan, startedAt: PipelineHarness.start.addingTimeInterval(-86_400)))
            let pipeline = try await harness.pipeline(store: store)
            // The newer one (none here besides "old") is continued; with two, only the newest runs.
            let plan2 = BackupSettings().plan(for: BackupRequest(), at: PipelineHarness.start, homeAssistantVersion: nil, randomSuffix: "bbbb")
            try await jobs.save(Job(id: "new", trigger: .manual, plan: plan2, startedAt: PipelineHarness.start))
            #expect(await pipeline.engine.resumeUnfinished()?.id == "new")
            _ = await pipeline.engine.wait(for: "new")
            let old = try #require(try await jobs.job(id: "old"))
            #expect(old.state == .failed)
            #expect(old.error?.code == "interrupted")
            #expect(try await jobs.job(id: "new")?.state == .done)
        }
    }
}

/// The verify step against a bucket that answers with other facts than what was sent (B2 itself never does:
/// the store is wrapped to report a different size or SHA-1, as a corrupted or replaced object would).
@Suite(.timeLimit(.minutes(1)))
struct PipelineVerifyTests {
    struct TamperedRemote: RemoteStore {
        let real: any RemoteStore
        let tamper: @Sendable (RemoteFileFacts) -> RemoteFileFacts
        func upload(path: String, name: String, info: [String: String], settings: UploadSettings,
                    progress: @escaping @Sendable (Int64, Int64) -> Void) async throws(PortError) -> RemoteObject {
            try await real.upload(path: path, name: name, info: info, settings: settings, progress: progress)
        }
        func facts(fileID: String) async throws(PortError) -> RemoteFileFacts { tamper(try await real.facts(fileID: fileID)) }
        func summary() async throws(PortError) -> RemoteSummary { try await real.summary() }
    }

    @Test(arguments: ["size", "sha1", "no sha1"])
    func aRemoteCopyThatDiffersFailsVerification(tampered: String) async throws {
        try await withHarness { harness in
            let store = try harness.store()
            let supervisor = SupervisorClient(baseURL: harness.supervisor.url, token: harness.supervisor.configuration.token, logger: quiet)
            let source = SupervisorBackupSource(client: supervisor, index: LocalBackupIndex(directory: harness.backupDirectory),
                                                temporaryDirectory: harness.directory.appendingPathComponent("tmp"), pollInterval: .milliseconds(10))
            let b2 = B2Client(credentials: B2Credentials(keyID: PipelineHarness.keyID, applicationKey: PipelineHarness.applicationKey),
                              realm: harness.b2.realmURL, logger: quiet)
            let real = B2RemoteStore(client: b2, journal: StoredUploadJournal(store: store), bucketName: PipelineHarness.bucket, prefix: "homeassistant", logger: quiet)
            let remote = TamperedRemote(real: real) { facts in
                switch tampered {
                case "size": RemoteFileFacts(size: facts.size - 1, sha1: facts.sha1)
                case "sha1": RemoteFileFacts(size: facts.size, sha1: String(repeating: "0", count: 40))
                default: RemoteFileFacts(size: facts.size, sha1: nil)
                }
            }
            let engine = BackupEngine(source: source, remote: remote, store: StoredJobStore(store: store), observer: nil, clock: harness.clock,
                                      settings: BackupSettings(), logger: quiet)
            let job = try await engine.run(trigger: .manual)
            #expect(job.state == .failed)
            #expect(job.error?.code == "verify_mismatch")
            #expect(job.error?.step == .verify)
            let done = try await StoredJobStore(store: store).lastJob(kind: .backup, state: .done)
            #expect(done == nil)
        }
    }
}
