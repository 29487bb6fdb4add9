import BackupArchive
import Compression
import Foundation
import SupervisorSimulator
import Testing

/// Creating backups: the job flow, the tar written, the request rules.
@Suite(.timeLimit(.minutes(1)))
struct BackupTests {
    @Test func fullBackupInTheBackgroundIsAJobThatWritesARealTar() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let data = try await harness.ok("POST", "/backups/new/full", ["name": "Nightly", "background": true])
            // With background: only the job ID.
            let jobID = try #require(data["job_id"]?.stringValue)
            #expect(data.objectValue?.keys == ["job_id"])
            let job = try await harness.waitForJob(jobID)
            #expect(job["name"] == "backup_manager_full_backup")
            #expect(job["progress"] == 100)
            #expect(job["errors"] == [])
            #expect(job["child_jobs"] == [])
            #expect(job["parent_id"] == .null)
            #expect(job["extra"] == .null)
            let slug = try #require(job["reference"]?.stringValue)
            #expect(job["stage"] == "await_addon_restarts")

            let file = harness.file("\(slug).tar")
            let size = try #require(try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? NSNumber).intValue
            #expect(size % 10240 == 0)
            let all = try members(of: file)
            #expect(all.map(\.entry.name) == ["homeassistant.tar.gz", "core_mosquitto.tar.gz", "45df7312_zigbee2mqtt.tar.gz", "share.tar.gz",
                                              "addons_local.tar.gz", "ssl.tar.gz", "media.tar.gz", "./backup.json"])
            #expect(all.dropLast().allSatisfy { $0.entry.paxRecords["mtime"] != nil && $0.entry.mode == 0o644 })

            let json = try JSONValue.parse(all.last!.data)
            let date = try #require(json["date"]?.stringValue)
            #expect(json["slug"] == .string(slug))
            #expect(String(sha1(Array("\(date) - Nightly".lowercased().utf8)).prefix(8)) == slug)
            #expect(date.hasSuffix("+00:00") && date.count >= 25)
            #expect(json["version"] == 2)
            #expect(json["name"] == "Nightly")
            #expect(json["type"] == "full")
            #expect(json["supervisor_version"] == "2026.08.0")
            #expect(json["compressed"] == true)
            #expect(json["protected"] == false)
            #expect(json["homeassistant"] == ["version": "2026.11.2", "exclude_database": false, "size": 0.0])
            #expect(json["folders"] == ["share", "addons/local", "ssl", "media"])
            #expect(json["addons"] == [
                ["slug": "core_mosquitto", "name": "Mosquitto broker", "version": "6.5.1", "size": 0.0],
                ["slug": "45df7312_zigbee2mqtt", "name": "Zigbee2MQTT", "version": "2.6.0-1", "size": 0.0],
            ])
            #expect(json["repositories"]?.arrayValue?.isEmpty == false)
            #expect(json["extra"] == [:])
            #expect(json["crypto"] == nil)
            // Written like Python's json: `"size":0.0`, compact.
            #expect(String(decoding: all.last!.data, as: UTF8.self).contains("\"size\":0.0"))

            // Inner archives: real gzip (FNAME set) of a PAX tar.
            let core = all[0].data
            #expect(Array(core.prefix(4)) == [0x1F, 0x8B, 0x08, 0x08])
            #expect(core[9] == 0xFF)
            #expect(Array(core[10..<28]) == Array("homeassistant.tar\0".utf8))
            let coreTar = try Gzip.decompress(core)
            #expect(coreTar.count % 10240 == 0)
            let coreMembers = try members(TarReader(bytes: coreTar))
            #expect(coreMembers.map(\.entry.name).prefix(3) == ["./", "./homeassistant.json", "data/"])
            #expect(coreMembers.first { $0.entry.name == "data/backup-payload.bin" }?.data.count == 8 * 1024)
            #expect(coreMembers.contains { $0.entry.name == "data/home-assistant_v2.db" })
            for member in all[1...2] {
                let inner = try members(TarReader(bytes: try Gzip.decompress(member.data)))
                let addonJSON = try JSONValue.parse(try #require(inner.first { $0.entry.name == "./addon.json" }?.data))
                #expect(addonJSON["state"] == "started")
                #expect(addonJSON["version"] != nil)
            }
            #expect(try members(TarReader(bytes: try Gzip.decompress(all[5].data))).map(\.entry.name) == ["./"])

            // The index and inspection agree with the file.
            let backups = await harness.supervisor.backups()
            #expect(backups.map(\.slug) == [slug])
            #expect(backups.first?.sizeBytes == Int64(size))
            #expect(backups.first?.content.addons == ["core_mosquitto", "45df7312_zigbee2mqtt"])
        }
    }

    @Test func partialBackupWaitsWhenNotInTheBackground() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let data = try await harness.ok("POST", "/backups/new/partial", [
                "name": "Z2M only", "filename": "Z2M_only_2026-11-20_03.00_00123456.tar", "addons": ["45df7312_zigbee2mqtt", "not_installed"],
                "folders": ["share", "homeassistant"], "homeassistant_exclude_database": true, "compressed": false,
                "extra": ["instance_id": "abc", "with_automatic_settings": true],
            ])
            let slug = try #require(data["slug"]?.stringValue)
            #expect(data["job_id"]?.stringValue != nil)
            // The job is already done when the call returns.
            let job = try #require(try await harness.job(data["job_id"]!.stringValue!))
            #expect(job["done"] == true)
            #expect(job["name"] == "backup_manager_partial_backup")

            let all = try members(of: harness.file("Z2M_only_2026-11-20_03.00_00123456.tar"))
            // Uncompressed: inner `.tar` members; `homeassistant` in folders means Home Assistant.
            #expect(all.map(\.entry.name) == ["homeassistant.tar", "45df7312_zigbee2mqtt.tar", "share.tar", "./backup.json"])
            let json = try JSONValue.parse(all.last!.data)
            #expect(json["slug"] == .string(slug))
            #expect(json["type"] == "partial")
            #expect(json["compressed"] == false)
            #expect(json["folders"] == ["share"])
            #expect(json["homeassistant"]?["exclude_database"] == true)
            #expect(json["addons"]?.arrayValue?.count == 1)
            #expect(json["extra"] == ["instance_id": "abc", "with_automatic_settings": true])
            let core = try members(TarReader(bytes: all[0].data))
            #expect(!core.contains { $0.entry.name == "data/home-assistant_v2.db" })

            let info = try await harness.ok("GET", "/backups/\(slug)/info")
            #expect(info["homeassistant_exclude_database"] == true)
            #expect(info["extra"] == ["instance_id": "abc", "with_automatic_settings": true])
        }
    }

    @Test func jobsStayAtProgressZeroUntilDone() async throws {
        try await withSupervisor(.make(jobDuration: .milliseconds(800))) { (harness: Harness) async throws in
            let jobID = try #require(try await harness.ok("POST", "/backups/new/full", ["background": true])["job_id"]?.stringValue)
            let running = try #require(try await harness.job(jobID))
            #expect(running["done"] == false)
            #expect(running["progress"] == 0)
            #expect(running["reference"]?.stringValue?.count == 8)
            #expect(running["stage"]?.stringValue != nil)
            #expect(try await harness.ok("GET", "/info")["state"] == "freeze")
            await harness.supervisor.waitForIdle()
            #expect(try await harness.job(jobID)?["progress"] == 100)
            #expect(try await harness.ok("GET", "/info")["state"] == "running")
        }
    }

    @Test func secondBackupWhileOneRunsIsRefusedWithTheJobMessage() async throws {
        try await withSupervisor(.make(jobDuration: .milliseconds(800))) { (harness: Harness) async throws in
            let first = try await harness.ok("POST", "/backups/new/full", ["background": true])
            let second = try await harness.post("/backups/new/full", ["background": true])
            #expect(second.status == 400)
            #expect(second.result == "error")
            #expect(second.message == "'BackupManager.do_backup_full' blocked from execution, system is not running - freeze")
            let partial = try await harness.post("/backups/new/partial", [:])
            #expect(partial.message == "'BackupManager.do_backup_partial' blocked from execution, system is not running - freeze")
            await harness.supervisor.waitForIdle()
            let slug = try #require(try await harness.job(first["job_id"]!.stringValue!)?["reference"]?.stringValue)
            let restore = try await harness.post("/backups/\(slug)/restore/full", [:])
            #expect(restore.status == 200) // idle again
            await harness.supervisor.waitForIdle()
        }
    }

    @Test(arguments: ["sub/dir.tar", "back\\slash.tar", "backup.tgz", ".tar", "no-extension"])
    func fileNamesMustMatchTheSupervisorRule(name: String) async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let reply = try await harness.post("/backups/new/full", ["filename": .string(name)])
            #expect(reply.status == 400)
            #expect(reply.message?.hasPrefix(#"does not match regular expression ^[^\\\/]+\.tar$ for dictionary value @ data['filename']. Got '"#) == true)
            #expect(await harness.supervisor.jobs().isEmpty)
        }
    }

    @Test func anExistingFileNameFailsTheJobAndDeletesTheExistingFile() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            _ = try await harness.backup(["name": "First", "filename": "Automatic_backup.tar"])
            #expect(FileManager.default.fileExists(atPath: harness.file("Automatic_backup.tar").path))
            // In the background: the call succeeds, the job fails.
            let jobID = try #require(try await harness.ok("POST", "/backups/new/full", ["name": "Second", "filename": "Automatic_backup.tar", "background": true])["job_id"]?.stringValue)
            let job = try await harness.waitForJob(jobID)
            #expect(job["progress"] == 100)
            let error = try #require(job["errors"]?.arrayValue?.first)
            #expect(error["type"] == "BackupFileExistError")
            #expect(error["message"] == "Cannot make new backup at /data/backup/Automatic_backup.tar, file already exists!")
            #expect(error["stage"] == "addon_repositories")
            #expect(!FileManager.default.fileExists(atPath: harness.file("Automatic_backup.tar").path))

            // Waiting for the result: 400 naming the job.
            _ = try await harness.backup(["name": "Third", "filename": "Again.tar"])
            let reply = try await harness.post("/backups/new/full", ["name": "Fourth", "filename": "Again.tar"])
            #expect(reply.status == 400)
            let failedJob = try #require(reply.json?["job_id"]?.stringValue)
            #expect(reply.message == "An error occurred while making backup, check job '\(failedJob)' or supervisor logs for details")
            #expect(!FileManager.default.fileExists(atPath: harness.file("Again.tar").path))
        }
    }

    @Test func locationsOtherThanTheLocalFolderAreRefused() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let cloud = try await harness.post("/backups/new/full", ["location": ".cloud_backup"])
            #expect(cloud.status == 403)
            #expect(cloud.result == "error")
            #expect(cloud.message == "Location .cloud_backup is only available for Home Assistant")
            let mount = try await harness.post("/backups/new/partial", ["location": ["my_nas"]])
            #expect(mount.status == 400)
            #expect(mount.message == "No mount exists with name 'my_nas'")
            for location: JSONValue in [nil, "", ".local", [nil]] {
                #expect(try await harness.backup(["location": location]).count == 8)
            }
        }
    }

    @Test func bodiesAreValidatedLikeVoluptuous() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let extra = try await harness.post("/backups/new/full", ["name": "x", "homeassistant": true])
            #expect(extra.status == 400)
            #expect(extra.message == "extra keys not allowed @ data['homeassistant']. Got True")
            let type = try await harness.post("/backups/new/partial", ["addons": ["a", 1]])
            #expect(type.message == "expected str @ data['addons'][1]. Got 1")
            let folder = try await harness.post("/backups/new/partial", ["folders": ["config"]])
            #expect(folder.message == "value must be one of ['addons/local', 'homeassistant', 'media', 'share', 'ssl'] @ data['folders'][0]. Got 'config'")
            let json = try await harness.send("POST", "/backups/new/full", headers: harness.auth + [("Content-Type", "application/json")], body: Array("{nope".utf8))
            #expect(json.status == 400)
            #expect(json.message == "Invalid json")
            // An empty body is `{}`.
            let empty = try await harness.send("POST", "/backups/new/full", body: [])
            #expect(empty.status == 200)
            #expect(empty.data?["slug"]?.stringValue?.count == 8)
        }
    }

    @Test func listsAndInfoDescribeTheBackups() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Listed", "password": "secret"])
            let list = try await harness.ok("GET", "/backups")
            let item = try #require(list["backups"]?.arrayValue?.first)
            #expect(item["slug"] == .string(slug))
            #expect(item["name"] == "Listed")
            #expect(item["type"] == "full")
            #expect(item["protected"] == true)
            #expect(item["compressed"] == true)
            #expect(item["location"] == .null)
            #expect(item["locations"] == [nil])
            let bytes = try #require(item["size_bytes"]?.intValue)
            #expect(item["location_attributes"] == [".local": ["protected": true, "size_bytes": .int(bytes)]])
            #expect(item["size"] == .double((Double(bytes) / 1_048_576 * 100).rounded() / 100))
            #expect(item["content"] == ["homeassistant": true, "addons": ["core_mosquitto", "45df7312_zigbee2mqtt"],
                                        "folders": ["share", "addons/local", "ssl", "media"]])
            #expect(try await harness.ok("GET", "/backups/info")["days_until_stale"] == 30)

            let info = try await harness.ok("GET", "/backups/\(slug)/info")
            #expect(info["homeassistant"] == "2026.11.2")
            #expect(info["supervisor_version"] == "2026.08.0")
            #expect(info["addons"]?.arrayValue?.first?["size"] == .double(0.0))
            #expect(info["homeassistant_exclude_database"] == false)
            for key in ["slug", "type", "name", "date", "size", "size_bytes", "compressed", "protected", "location_attributes", "location",
                        "locations", "repositories", "folders", "extra"] {
                #expect(info[key] != nil, "missing \(key)")
            }
            // The backup file itself says protected (its archives are SecureTar: ProtectedBackupTests).
            let json = try JSONValue.parse(try #require(try TarReader.backupJSON(in: harness.file("\(slug).tar"))))
            #expect(json["protected"] == true)

            let missing = try await harness.get("/backups/deadbeef/info")
            #expect(missing.status == 404)
            #expect(missing.text == #"{"result":"error","message":"Backup does not exist"}"#)
            #expect(missing.header("Content-Type") == "application/json; charset=utf-8")
        }
    }

    @Test func deleteRemovesTheFileAndReloadRescansTheFolder() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Doomed"])
            let data = try await harness.ok("DELETE", "/backups/\(slug)")
            #expect(data == [:])
            #expect(!FileManager.default.fileExists(atPath: harness.file("\(slug).tar").path))
            #expect(try await harness.send("DELETE", "/backups/\(slug)").status == 404)

            // A file that vanished behind the Supervisor's back.
            let other = try await harness.backup(["name": "Vanishing"])
            try FileManager.default.removeItem(at: harness.file("\(other).tar"))
            let vanished = try await harness.send("DELETE", "/backups/\(other)")
            #expect(vanished.status == 404)
            #expect(vanished.message == "Cannot delete backup at /data/backup/\(other).tar, file does not exist!")
            #expect(await harness.supervisor.backups().isEmpty)

            // A tar written into /backup directly appears after a reload; other files are ignored.
            let seeded = try await harness.supervisor.addExistingBackup(name: "Seeded", date: Date(timeIntervalSince1970: 1_790_000_000))
            let copy = harness.file("copied-in.tar")
            try FileManager.default.moveItem(at: harness.file("\(seeded).tar"), to: copy)
            try Data("not a backup".utf8).write(to: harness.file("notes.txt"))
            try await harness.ok("POST", "/backups/reload")
            let listed = await harness.supervisor.backups()
            #expect(listed.map(\.slug) == [seeded])
            #expect(listed.first?.fileName == "copied-in.tar")
        }
    }

    @Test func seededBackupsCarryTheirDateAndSlug() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let date = Date(timeIntervalSince1970: 1_789_354_804.512873)
            let slug = try await harness.supervisor.addExistingBackup(name: "Full backup 2026-09-14", type: "full", date: date, fileName: nil, protected: false)
            // The fixture's name and date give the fixture's slug.
            #expect(slug == "5efcaa2d")
            let backup = try #require(await harness.supervisor.backups().first)
            #expect(backup.date == "2026-09-14T03:00:04.512873+00:00")
            #expect(backup.fileName == "5efcaa2d.tar")
            let partial = try await harness.supervisor.addExistingBackup(name: "Old", type: "partial", date: Date(timeIntervalSince1970: 1_700_000_000),
                                                                         fileName: "old.tar", protected: true)
            let info = try await harness.ok("GET", "/backups/\(partial)/info")
            #expect(info["date"] == "2023-11-14T22:13:20+00:00") // isoformat() drops zero microseconds
            #expect(info["type"] == "partial")
            #expect(info["protected"] == true)
            #expect(info["folders"] == [])
            await #expect(throws: SupervisorSimulatorError.self) {
                try await harness.supervisor.addExistingBackup(name: "Clash", type: "full", date: Date(), fileName: "old.tar", protected: false)
            }
        }
    }

    @Test func backupsAlreadyInTheFolderAreLoadedAtStart() async throws {
        let configuration = SupervisorSimulator.Configuration.make()
        let slug = try await withSupervisor(configuration) { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Survivor"])
            // Keep the file past this simulator's cleanup.
            try FileManager.default.copyItem(at: harness.file("\(slug).tar"), to: FileManager.default.temporaryDirectory.appendingPathComponent("\(slug)-keep.tar"))
            return slug
        }
        let kept = FileManager.default.temporaryDirectory.appendingPathComponent("\(slug)-keep.tar")
        defer { try? FileManager.default.removeItem(at: kept) }
        let next = SupervisorSimulator.Configuration.make()
        try FileManager.default.createDirectory(at: next.backupDirectory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: kept, to: next.backupDirectory.appendingPathComponent("Survivor.tar"))
        try await withSupervisor(next) { (harness: Harness) async throws in
            #expect(await harness.supervisor.backups().map(\.slug) == [slug])
        }
    }

    @Test(.enabled(if: Fixtures.available, "../shared/fixtures/backups is not in this checkout"))
    func generatedBackupsHaveTheFixturesStructure() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Structure"])
            let ours = try members(of: harness.file("\(slug).tar"))
            let theirs = try members(of: Fixtures.url("full-plain.tar"))
            // Same members in the same order (the fixture also has supervisor.tar.gz, written only with mounts).
            #expect(ours.map(\.entry.name) == theirs.map(\.entry.name).filter { $0 != "supervisor.tar.gz" })
            #expect(ours.map(\.entry.mode) == theirs.filter { $0.entry.name != "supervisor.tar.gz" }.map(\.entry.mode))
            let ourJSON = try JSONValue.parse(ours.last!.data)
            let theirJSON = try JSONValue.parse(theirs.last!.data)
            #expect(ourJSON.objectValue?.keys == theirJSON.objectValue?.keys)
            // Inner archives start alike: `./` (0700) then the metadata file.
            let ourCore = try members(TarReader(bytes: try Gzip.decompress(ours[0].data)))
            let theirCore = try members(TarReader(bytes: try Gzip.decompress(theirs[0].data)))
            #expect(ourCore.prefix(2).map(\.entry.name) == theirCore.prefix(2).map(\.entry.name))
            #expect(ourCore.prefix(2).map(\.entry.mode) == theirCore.prefix(2).map(\.entry.mode))
            #expect(Array(ours[0].data.prefix(4)) == Array(theirs[0].data.prefix(4)))
            #expect(ours[0].data[8...9] == theirs[0].data[8...9]) // XFL and OS bytes
        }
    }
}
