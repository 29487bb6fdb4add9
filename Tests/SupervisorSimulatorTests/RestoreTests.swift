import BackupArchive
import Foundation
import SupervisorSimulator
import Testing

/// `POST /backups/{slug}/restore/full|partial`: jobs, records, passwords, Core going down.
@Suite(.timeLimit(.minutes(1)))
struct RestoreTests {
    @Test func fullRestoreIsAJobThatStopsCoreAndReplacesAddons() async throws {
        try await withSupervisor(.make(jobDuration: .milliseconds(800))) { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Before"])
            // An add-on installed after the backup is uninstalled by a full restore.
            _ = try await harness.supervisor.addExistingBackup(name: "unused", type: "partial", date: Date(timeIntervalSince1970: 1_700_000_000))
            let data = try await harness.ok("POST", "/backups/\(slug)/restore/full", ["background": true])
            let jobID = try #require(data["job_id"]?.stringValue)
            #expect(data.objectValue?.keys == ["job_id"])

            // While Home Assistant is stopped the proxy answers 502.
            let proxied = try await harness.send("GET", "/core/api/states")
            #expect(proxied.status == 502)
            #expect(proxied.text == "502: Bad Gateway")
            let job = try await harness.waitForJob(jobID)
            #expect(job["name"] == "backup_manager_full_restore")
            #expect(job["reference"] == .string(slug))
            #expect(job["progress"] == 100)
            #expect(job["errors"] == [])
            #expect(try await harness.send("GET", "/core/api/states").status == 200)

            let restores = await harness.supervisor.restores()
            #expect(restores == [RestoreRecord(slug: slug, type: "full", password: nil, homeassistant: true,
                                               addons: ["core_mosquitto", "45df7312_zigbee2mqtt"], folders: ["share", "addons/local", "ssl", "media"],
                                               jobID: jobID)])
        }
    }

    @Test func partialRestoreRecordsWhatWasAskedFor() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Parts"])
            let data = try await harness.ok("POST", "/backups/\(slug)/restore/partial", ["addons": ["core_mosquitto"], "folders": ["share"], "homeassistant": false])
            let jobID = try #require(data["job_id"]?.stringValue)
            // Not in the background: the job is done when the call returns.
            #expect(try await harness.job(jobID)?["done"] == true)
            #expect(try await harness.job(jobID)?["name"] == "backup_manager_partial_restore")
            let record = try #require(await harness.supervisor.restores().last)
            #expect(record.type == "partial")
            #expect(record.addons == ["core_mosquitto"])
            #expect(record.folders == ["share"])
            #expect(!record.homeassistant)
        }
    }

    @Test func partialRestoreOfSomethingNotInTheBackupFailsInAChildJob() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup(full: false, ["name": "Only HA", "homeassistant": true])
            let reply = try await harness.post("/backups/\(slug)/restore/partial", ["addons": ["core_mosquitto"]])
            #expect(reply.status == 400)
            let jobID = try #require(reply.json?["job_id"]?.stringValue)
            #expect(reply.message == "An error occurred during restore of \(slug), check job '\(jobID)' or supervisor logs for details")
            let job = try #require(try await harness.job(jobID))
            // The top-level job shows no error; its child jobs do.
            #expect(job["done"] == true)
            #expect(job["errors"] == [])
            let child = try #require(job["child_jobs"]?.arrayValue?.first)
            #expect(child["name"] == "backup_restore_addons")
            #expect(child["parent_id"] == .string(jobID))
            let grandchild = try #require(child["child_jobs"]?.arrayValue?.first)
            #expect(grandchild["name"] == "backup_addon_restore")
            #expect(grandchild["reference"] == "core_mosquitto")
            #expect(grandchild["errors"]?.arrayValue?.first?["message"] == "Can't find backup core_mosquitto")
        }
    }

    @Test func wrongPasswordFailsBeforeAnythingChanges() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Locked", "password": "right horse battery"])
            for password: JSONValue in ["wrong", nil, ""] {
                // Even in the background the call fails: the check runs before the system freezes.
                let reply = try await harness.post("/backups/\(slug)/restore/full", ["password": password, "background": true])
                #expect(reply.status == 400)
                #expect(reply.text == #"{"result":"error","message":"Invalid password for backup \#(slug)"}"#)
            }
            let failed = try #require(await harness.supervisor.jobs().last)
            #expect(failed.name == "backup_manager_full_restore")
            #expect(failed.done == true)
            #expect(failed.progress == 0) // raised, not returned: progress never reached 100
            #expect(failed.errors == [SimulatedJob.Failure(type: "BackupInvalidError", message: "Invalid password for backup \(slug)", stage: nil)])
            #expect(await harness.supervisor.restores().isEmpty)

            let data = try await harness.ok("POST", "/backups/\(slug)/restore/full", ["password": "right horse battery"])
            #expect(data["job_id"] != nil)
            #expect(await harness.supervisor.restores().map(\.password) == ["right horse battery"])
        }
    }

    @Test func restoreRulesOfTheBackupManager() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let partial = try await harness.backup(full: false, ["name": "Folders only", "folders": ["ssl"]])
            let full = try await harness.post("/backups/\(partial)/restore/full", [:])
            #expect(full.status == 400)
            #expect(full.message == "\(partial) is only a partial backup!")
            let core = try await harness.post("/backups/\(partial)/restore/partial", ["homeassistant": true])
            #expect(core.message == "No Home Assistant Core data inside the backup")
            let unknown = try await harness.post("/backups/feedface/restore/full", [:])
            #expect(unknown.status == 404)
            #expect(unknown.message == "Backup does not exist")
            let extra = try await harness.post("/backups/\(partial)/restore/full", ["addons": ["x"]])
            #expect(extra.message == "extra keys not allowed @ data['addons']. Got ['x']")
            let cloud = try await harness.post("/backups/\(partial)/restore/partial", ["location": ".cloud_backup"])
            #expect(cloud.status == 403)
        }
    }

    @Test func restoreOfABackupFromANewerSupervisorIsRefused() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            // A backup made by a newer Supervisor, uploaded.
            var tar: [UInt8] = []
            let writer = TarWriter { tar += $0 }
            let json = Array(#"{"slug":"0a1b2c3d","version":2,"name":"Future","date":"2027-01-01T00:00:00+00:00","type":"partial","supervisor_version":"2027.01.0","homeassistant":null,"folders":["share"],"addons":[]}"#.utf8)
            try writer.add(TarEntry(name: "share.tar.gz"), contents: [])
            try writer.add(TarEntry(name: "./backup.json"), contents: json)
            try writer.finish()
            let (body, contentType) = multipart(tar)
            #expect(try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", contentType)], body: body).data?["slug"] == "0a1b2c3d")
            let reply = try await harness.post("/backups/0a1b2c3d/restore/partial", ["folders": ["share"]])
            #expect(reply.status == 400)
            #expect(reply.message == "Backup was made on supervisor version 2027.01.0, can't restore on 2026.08.0. Must update supervisor first.")
        }
    }
}
