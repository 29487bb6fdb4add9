import Foundation
import HTTPClient
import SupervisorSimulator
import Testing

/// Every fault rule, and waiting for idle.
@Suite(.timeLimit(.minutes(1)))
struct FaultTests {
    @Test func failNextBackupEndsTheJobWithItsErrorAndNoFile() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            await harness.supervisor.faults.failNextBackup(message: "Can't backup add-on core_mosquitto: disk full")
            let jobID = try #require(try await harness.ok("POST", "/backups/new/full", ["background": true])["job_id"]?.stringValue)
            let job = try await harness.waitForJob(jobID)
            #expect(job["done"] == true)
            #expect(job["progress"] == 100)
            let error = try #require(job["errors"]?.arrayValue?.first)
            #expect(error["type"] == "BackupError")
            #expect(error["message"] == "Can't backup add-on core_mosquitto: disk full")
            #expect(error["stage"]?.stringValue != nil)
            #expect(await harness.supervisor.backups().isEmpty)
            #expect(try FileManager.default.contentsOfDirectory(atPath: harness.configuration.backupDirectory.path).isEmpty)

            // Waiting for it instead: 400 naming the job; the rule is used up after that.
            await harness.supervisor.faults.failNextBackup()
            let reply = try await harness.post("/backups/new/partial", ["homeassistant": true])
            #expect(reply.status == 400)
            #expect(reply.json?["job_id"]?.stringValue != nil)
            #expect(try await harness.backup().count == 8)
        }
    }

    @Test func busyRefusesTheNextRequestsAsIfAJobRan() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup()
            await harness.supervisor.faults.busy(times: 2)
            let first = try await harness.post("/backups/new/full", [:])
            #expect(first.status == 400)
            #expect(first.message == "'BackupManager.do_backup_full' blocked from execution, system is not running - freeze")
            let second = try await harness.post("/backups/\(slug)/restore/partial", ["folders": ["share"]])
            #expect(second.message == "'BackupManager.do_restore_partial' blocked from execution, system is not running - freeze")
            #expect(try await harness.post("/backups/new/full", [:]).status == 200)
            #expect(await harness.supervisor.faults.pendingRuleCount == 0)
        }
    }

    @Test func slowJobsKeepTheJobRunning() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            await harness.supervisor.faults.slowJobs(by: .milliseconds(500))
            let clock = ContinuousClock()
            let start = clock.now
            let jobID = try #require(try await harness.ok("POST", "/backups/new/full", ["background": true])["job_id"]?.stringValue)
            #expect(try await harness.job(jobID)?["done"] == false)
            await harness.supervisor.waitForIdle()
            #expect(clock.now - start >= .milliseconds(500))
            #expect(try await harness.job(jobID)?["done"] == true)
            await harness.supervisor.faults.clear()
            #expect(await harness.supervisor.faults.pendingRuleCount == 0)
        }
    }

    @Test func dropDownloadCutsTheConnectionMidStream() async throws {
        try await withSupervisor(.make(payloadBytes: 200_000)) { (harness: Harness) async throws in
            let slug = try await harness.backup()
            await harness.supervisor.faults.dropDownload(afterBytes: 50_000)
            var failure: HTTPClientError?
            do {
                let reply = try await harness.get("/backups/\(slug)/download")
                Issue.record("the download completed: \(reply.status), \(reply.body.count) bytes")
            } catch let error as HTTPClientError {
                failure = error
            }
            #expect(failure?.kind == .transfer, "\(String(describing: failure))")
            let full = try await harness.get("/backups/\(slug)/download")
            #expect(full.status == 200)
            #expect(full.body == [UInt8](try Data(contentsOf: harness.file("\(slug).tar"))))
        }
    }

    @Test func coreUnavailableAnswers502ThenRecovers() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            await harness.supervisor.faults.coreUnavailable(times: 1)
            let down = try await harness.send("POST", "/core/api/events/b2_backup_finished", json: [:])
            #expect(down.status == 502)
            #expect(down.text == "502: Bad Gateway")
            #expect(try await harness.send("POST", "/core/api/events/b2_backup_finished", json: [:]).status == 200)
            #expect(await harness.supervisor.coreCalls().count == 1)
            #expect(await harness.supervisor.requestCount("/core/api/events/b2_backup_finished") == 2)
        }
    }

    @Test func failUploadAnswersTheGenericErrorOnce() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup()
            let bytes = [UInt8](try Data(contentsOf: harness.file("\(slug).tar")))
            try await harness.ok("DELETE", "/backups/\(slug)")
            await harness.supervisor.faults.failUpload(times: 1)
            let (body, contentType) = multipart(bytes)
            let failed = try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", contentType)], body: body)
            #expect(failed.status == 400)
            #expect(failed.message == "Unknown error, see Supervisor logs")
            #expect(await harness.supervisor.backups().isEmpty)
            let ok = try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", contentType)], body: body)
            #expect(ok.data?["slug"] == .string(slug))
        }
    }

    @Test func waitForIdleReturnsAtOnceWhenNothingRuns() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            await harness.supervisor.waitForIdle()
            // Several waiters are all released when the job ends.
            _ = try await harness.ok("POST", "/backups/new/full", ["background": true])
            async let first: Void = harness.supervisor.waitForIdle()
            async let second: Void = harness.supervisor.waitForIdle()
            _ = await (first, second)
            #expect(await harness.supervisor.jobs().allSatisfy { $0.done == true })
        }
    }

    @Test func freezeAndThawHoldOffBackups() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            try await harness.ok("POST", "/backups/freeze", ["timeout": 60])
            #expect(try await harness.ok("GET", "/info")["state"] == "freeze")
            #expect(try await harness.post("/backups/new/full", [:]).status == 400)
            try await harness.ok("POST", "/backups/thaw")
            #expect(try await harness.ok("GET", "/info")["state"] == "running")
            let again = try await harness.post("/backups/thaw")
            #expect(again.message == "'BackupManager.thaw_all' blocked from execution, system is not frozen - running")
        }
    }
}
