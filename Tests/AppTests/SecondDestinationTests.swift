import B2Simulator
import Core
import Foundation
import HTTPClient
import MotoSupport
import S3Client
import Storage
import SupervisorClient
import SupervisorSimulator
import Glibc
import Testing
import TestSupport
import WebAPI
@testable import App

extension AddonOptions {
    /// The second destination on moto's server, path-style, 5 MiB parts (S3's minimum).
    mutating func useS3(_ moto: MotoServer, bucket: String, secret: String? = nil, requireAll: Bool = true) {
        s3Enabled = true
        s3Endpoint = moto.endpoint
        s3Bucket = bucket
        s3AccessKeyID = moto.accessKeyID
        s3SecretAccessKey = secret ?? moto.secretAccessKey
        s3PathStyle = true
        s3PartSizeMB = 5
        requireAllDestinations = requireAll
        s3KeepLast = 10 // like B2's in the harness: several backups a day
    }
}

/// The S3-compatible second destination end to end: both simulators for Home Assistant and B2, and moto's
/// S3 server (authentication on) as an independent S3 implementation.
@Suite(.motoServer, .enabled(if: MotoServer.executable != nil, "moto_server is not installed (scripts/install-deps)"), .timeLimit(.minutes(3)))
struct SecondDestinationTests {
    var moto: MotoServer { get throws { try #require(MotoTrait.server) } }

    /// A new bucket per test (one moto serves the whole suite).
    func bucket() async throws -> (name: String, client: S3Client) {
        let name = "s3-copy-\(UUID().uuidString.prefix(8).lowercased())"
        let client = try moto.client(bucket: name)
        try await client.createBucket()
        return (name, client)
    }

    /// A harness whose second destination is a fresh bucket on moto; `body` gets the bucket's name and a client.
    func withS3Harness(secret: String? = nil, requireAll: Bool = true, payload: Int? = nil, objectLock: Bool = false,
                       options extra: (inout AddonOptions) -> Void = { _ in },
                       _ body: (PipelineHarness, S3Client, String) async throws -> Void) async throws {
        let (bucket, client) = try await bucket()
        let moto = try moto
        try await withHarness(options: { options in
            options.useS3(moto, bucket: bucket, secret: secret, requireAll: requireAll)
            extra(&options)
        }, supervisor: { configuration in
            if let payload { configuration.backupPayloadBytes = payload }
        }, objectLock: objectLock) { harness in
            try await body(harness, client, bucket)
        }
    }

    func objectBytes(_ client: S3Client, _ key: String, in harness: PipelineHarness) async throws -> Data {
        let path = harness.directory.appendingPathComponent("s3-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        _ = try await client.getObject(key: key, to: ResponseFile(path: path))
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    @Test func aRunCopiesToS3AndEveryCopyIsVerifiedAndByteIdentical() async throws {
        try await withS3Harness(payload: 12 << 20) { harness, client, bucket in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let copies = job.destinationResults(destinations: [DestinationID.b2, DestinationID.s3])
            #expect(copies.map(\.state) == ["verified", "verified"])
            #expect(try #require(await harness.events("b2_backup_succeeded").last)["verified_in"]?.stringValue == "b2,s3")
            let s3Copy = try #require(copies.last?.remote)
            #expect(s3Copy.name == "homeassistant/\(job.plan.filename)")
            #expect(s3Copy.parts == 3) // 12 MiB and a tar's overhead in 5 MiB parts
            #expect(copies.last?.check?.verdict == "restorable")
            #expect(s3Copy.sha1 == job.remote?.sha1)

            let original = try Data(contentsOf: URL(fileURLWithPath: try #require(job.local?.path)))
            #expect(try await objectBytes(client, s3Copy.name, in: harness) == original)
            #expect(try await harness.download(try #require(job.remote?.name)) == original)
            // The catalog index sits beside the backups in S3 too, and the listing shows both copies.
            let index = try await objectBytes(client, "homeassistant/b2-backup-index.json", in: harness)
            let snapshot = try B2Catalog.decoder.decode(CatalogSnapshot.self, from: index)
            #expect(snapshot.entry(slug: try #require(job.slug))?.isVerified == true)
            let listed = try #require(try await pipeline.listing().first)
            #expect(listed.remote != nil && listed.copies[DestinationID.s3] != nil && listed.local != nil)
            #expect(try await client.listMultipartUploads().isEmpty)

            await pipeline.refreshRemoteSummary()
            let destinations = await pipeline.status().destinations
            #expect(destinations.map(\.id) == ["b2", "s3"])
            #expect(destinations.map(\.state) == ["ok", "ok"])
            #expect(destinations.last?.summary == RemoteSummary(backups: 1, bytes: s3Copy.size))
            #expect(destinations.last?.lastVerified?.slug == job.slug)
            #expect(destinations.last?.title.contains(bucket) == true)
            // The sensor carries the second destination's state and usage too.
            let sensor = try #require(await harness.supervisor.coreCalls().last { $0.path == "/core/api/states/sensor.b2_backup" }?.body)
            #expect(sensor["attributes"]?["s3_state"]?.stringValue == "ok")
            #expect(sensor["attributes"]?["backups_in_s3"] == .int(1))
        }
    }

    @Test func aWrongSecretFailsTheRunNamingS3TheBucketAndTheCauseAndLeavesNoUnfinishedUpload() async throws {
        try await withS3Harness(secret: "not-the-secret", payload: 12 << 20) { harness, client, bucket in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .failed)
            let error = try #require(job.error)
            #expect(error.step == .copy)
            #expect(error.code == "s3_auth_failed")
            #expect(error.message.contains("S3") && error.message.contains(bucket) && error.message.contains("SignatureDoesNotMatch"))
            #expect(!error.message.contains("not-the-secret"))
            #expect(try await client.listMultipartUploads().isEmpty)
            #expect(try await client.listObjects().isEmpty)
            // B2's copy is safe and recorded; the page and Home Assistant hear which destination failed.
            #expect(job.destinationResults(destinations: ["b2", "s3"]).map(\.state) == ["verified", "failed"])
            #expect(try await pipeline.listing().first?.remote?.isVerified == true)
            let destinations = await pipeline.status().destinations
            #expect(destinations.map(\.state) == ["ok", "failing"])
            #expect(destinations.last?.lastError?.code == "s3_auth_failed")
            let failed = try #require(await harness.events("b2_backup_failed").last)
            #expect(failed["step"]?.stringValue == "copy" && failed["code"]?.stringValue == "s3_auth_failed")
            #expect(failed["message"]?.stringValue?.contains(bucket) == true)
        }
    }

    @Test func withRequireAllOffOneVerifiedCopyIsEnoughAndTheOtherFailureIsAWarning() async throws {
        try await withS3Harness(secret: "not-the-secret", requireAll: false) { harness, client, bucket in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            #expect(job.warnings.contains { $0.contains("S3") && $0.contains("SignatureDoesNotMatch") })
            #expect(job.destinationResults(destinations: ["b2", "s3"]).map(\.state) == ["verified", "failed"])
            // Nobody is left unaware: an event and a notification name the destination and the cause.
            let event = try #require(await harness.events("b2_backup_destination_failed").last)
            #expect(event["destination"]?.stringValue == "s3" && event["code"]?.stringValue == "s3_auth_failed")
            let created = await harness.supervisor.coreCalls().filter { $0.path == "/core/api/services/persistent_notification/create" }
            #expect(created.contains { $0.body?["notification_id"]?.stringValue == "b2_backup_destination"
                && $0.body?["message"]?.stringValue?.contains(bucket) == true })
        }
    }

    @Test func withRequireAllOffAFullB2StillLeavesAVerifiedCopyInS3() async throws {
        try await withS3Harness(requireAll: false) { harness, client, bucket in
            await harness.b2.faults.capExceeded(operation: "b2_start_large_file")
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let copies = job.destinationResults(destinations: ["b2", "s3"])
            #expect(copies.map(\.state) == ["failed", "verified"])
            #expect(copies.first?.error?.code == "b2_cap_exceeded")
            #expect(job.warnings.contains { $0.contains("Backblaze B2") })
            #expect(try #require(await harness.events("b2_backup_succeeded").last)["verified_in"]?.stringValue == "s3")
            #expect(await harness.objects().isEmpty)
            #expect(try await client.listObjects(prefix: "homeassistant/").contains { $0.key.hasSuffix(".tar") })
        }
    }

    @Test func withEveryDestinationRequiredAFullB2FailsBeforeAnythingIsCopied() async throws {
        try await withS3Harness() { harness, client, bucket in
            await harness.b2.faults.capExceeded(operation: "b2_start_large_file")
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            #expect(job.state == .failed)
            #expect(job.error?.code == "b2_cap_exceeded" && job.error?.step == .upload)
            #expect(try await client.listObjects().filter { $0.key.hasSuffix(".tar") }.isEmpty) // (an empty catalog index may be there)
            #expect(try await client.listMultipartUploads().isEmpty)
        }
    }

    @Test func retentionRunsPerDestinationWithItsOwnPolicy() async throws {
        try await withS3Harness(options: { options in
            options.keepLast = 3
            options.keepDaily = 0
            options.keepWeekly = 0
            options.keepMonthly = 0
            options.s3KeepLast = 1
            options.s3KeepDaily = 0
            options.s3KeepWeekly = 0
            options.s3KeepMonthly = 0
        }) { harness, client, bucket in
            let pipeline = try await harness.pipeline()
            var slugs: [String] = []
            for _ in 0..<3 {
                let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
                #expect(job.state == .done, "\(job.error?.message ?? "")")
                slugs.append(try #require(job.slug))
                harness.clock.advance(by: 3600)
            }
            #expect(await harness.objects().count == 3)
            let inS3 = try await client.listObjects(prefix: "homeassistant/").filter { $0.key.hasSuffix(".tar") }
            #expect(inS3.count == 1)
            let listed = try await pipeline.listing()
            #expect(listed.filter { $0.copies[DestinationID.s3] != nil }.map(\.slug) == [slugs[2]])
            #expect(listed.filter { $0.remote != nil }.count == 3)
        }
    }

    @Test func aBackupIsDeletedFromS3AloneOrFromEverywhere() async throws {
        try await withS3Harness() { harness, client, bucket in
            let pipeline = try await harness.pipeline()
            let first = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            harness.clock.advance(by: 3600)
            _ = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let slug = try #require(first.slug)
            try await pipeline.delete(slug, from: .s3, force: false)
            var listed = try #require(try await pipeline.listing().first { $0.slug == slug })
            #expect(listed.copies[DestinationID.s3] == nil && listed.remote != nil && listed.local != nil)
            #expect(try await client.listObjects(prefix: "homeassistant/").filter { $0.key.hasSuffix(".tar") }.count == 1)
            try await pipeline.delete(slug, from: .all, force: false)
            #expect(try await pipeline.listing().contains { $0.slug == slug } == false)
            // Pins reach every destination's index.
            let second = try #require(try await pipeline.listing().first?.slug)
            try await pipeline.setPinned(second, true)
            listed = try #require(try await pipeline.listing().first)
            #expect(listed.pinned)
            let s3Catalog = try #require(pipeline.secondaries.first).retention
            #expect(try await s3Catalog.snapshot().pins.contains(second))
        }
    }

    @Test func aFreshInstallRestoresFromS3WhenB2CannotBeReached() async throws {
        try await withS3Harness() { harness, client, bucket in
            let first = try await harness.pipeline()
            let job = try #require(await first.engine.wait(for: try await first.startManual(BackupRequest()).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let slug = try #require(job.slug)
            let original = try Data(contentsOf: try #require(await harness.supervisor.backups().first).file)
            try await SupervisorClientFactory.client(harness).deleteBackup(slug: slug)
            await harness.b2.shutdown()

            var settings = harness.settings()
            settings.dataDirectory = harness.directory.appendingPathComponent("new-machine")
            let store = try StateStore(path: harness.directory.appendingPathComponent("new-machine.db").path, logger: quiet)
            let fresh = try #require(try await PipelineAssembly.make(settings: settings, store: store, logger: quiet))
            await fresh.refreshRemoteSummary()
            let destinations = await fresh.status().destinations
            // B2 cannot be reached; S3's catalog knows the verified copy although this install has made no run.
            #expect(destinations.map(\.state) == ["failing", "ok"])
            #expect(destinations.last?.lastVerified?.slug == slug)
            #expect(destinations.first?.lastError?.code == "b2_unavailable" || destinations.first?.lastError?.code == "b2_unreachable")
            #expect(destinations.last?.summary?.backups == 1)
            let listed = try await fresh.listing()
            #expect(listed.map(\.slug) == [slug])
            #expect(listed.first?.remote == nil && listed.first?.copies[DestinationID.s3]?.isVerified == true)

            let started = try await fresh.startRestore(slug: slug, RestoreOptions(type: "full"), pullOnly: false)
            let restored = try #require(await fresh.engine.wait(for: started.id))
            #expect(restored.state == .done, "\(restored.error?.message ?? "")")
            #expect(restored.warnings.contains { $0.hasPrefix("downloaded from S3") })
            let back = try #require(await harness.supervisor.backups().first)
            #expect(try Data(contentsOf: back.file) == original)
            #expect(await harness.supervisor.restores().first?.slug == slug)
        }
    }

    @Test(arguments: ["auto", "b2", "s3"])
    func restoreSourceChoosesWhereToDownloadFrom(preference: String) async throws {
        try await withS3Harness() { harness, client, bucket in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let slug = try #require(job.slug)
            try await SupervisorClientFactory.client(harness).deleteBackup(slug: slug)
            let pull = try #require(await pipeline.engine.wait(for: try await pipeline.startRestore(slug: slug, RestoreOptions(source: preference), pullOnly: true).id))
            #expect(pull.state == .done, "\(pull.error?.message ?? "")")
            #expect(pull.restore?.sources?.first?.destination == (preference == "s3" ? "s3" : "b2"))
            // Only a download from somewhere other than B2 is worth a note.
            #expect(pull.warnings.contains { $0.hasPrefix("downloaded from S3") } == (preference == "s3"))
            #expect(!pull.warnings.contains { $0.contains("Backblaze B2") })
        }
    }

    @Test func anInterruptedCopyResumesFromTheConfirmedPartsAfterARestart() async throws {
        try await withS3Harness(payload: 16 << 20, options: { options in
            options.uploadConcurrency = 1
        }) { harness, client, bucket in
            let pipeline = try await harness.pipeline()
            let started = try await pipeline.startManual(BackupRequest())
            // Stop the add-on once S3 has confirmed a part of the copy.
            while true {
                if let upload = try await client.listMultipartUploads().first,
                   try await !client.listParts(key: upload.key, uploadID: upload.uploadID).isEmpty { break }
                if let job = await pipeline.engine.runningJob, job.id == started.id {} else { Issue.record("the run ended before S3 had a part"); return }
                try await Task.sleep(for: .milliseconds(5))
            }
            await pipeline.engine.suspend()
            let interrupted = try #require(try await StoredJobStore(store: harness.store()).job(id: started.id))
            #expect(interrupted.step == .copy && !interrupted.isFinished)

            let restarted = try await harness.pipeline()
            let resumed = try #require(await restarted.engine.resumeUnfinished())
            let job = try #require(await restarted.engine.wait(for: resumed.id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            let copy = try #require(job.copies?.first { $0.destination == DestinationID.s3 }?.remote)
            let original = try Data(contentsOf: URL(fileURLWithPath: try #require(job.local?.path)))
            #expect(try await objectBytes(client, copy.name, in: harness) == original)
            #expect(try await client.listMultipartUploads().isEmpty)
        }
    }

    @Test func theRealBinaryKilledMidCopyFinishesTheSameCopyAfterARestart() async throws {
        guard FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary.path) else {
            Issue.record("build the executable first (swift build): \(ServeProcessTests.binary.path)")
            return
        }
        let moto = try moto
        try await withS3Harness(payload: 11 << 20) { harness, client, bucket in
            var options: [String: Any] = [
                "b2_key_id": PipelineHarness.keyID, "b2_key": PipelineHarness.applicationKey, "b2_bucket": PipelineHarness.bucket,
                "b2_prefix": "homeassistant", "upload_limit_kbps": 40_000, "upload_concurrency": 1, "schedule_enabled": false,
                "s3_enabled": true, "s3_endpoint": moto.endpoint, "s3_bucket": bucket, "s3_access_key_id": moto.accessKeyID,
                "s3_secret_access_key": moto.secretAccessKey, "s3_path_style": true, "s3_part_size_mb": 5,
            ]
            let kill = ServeKillTests()
            let (first, port) = try await kill.start(harness, options: options)
            let started = try await HTTPClient(logger: quiet).send(.init(method: "POST", url: "http://127.0.0.1:\(port)/api/backups"))
            let id = try #require(try JSONSerialization.jsonObject(with: Data(started.body)) as? [String: Any])["job_id"] as? String ?? ""
            // Past the first 5 MiB part of the copy: S3 holds a confirmed part of an unfinished upload.
            _ = try await kill.job(id, port: port) { ($0["step"] as? String) == "copy" && ($0["bytes_done"] as? Int ?? 0) > 6_000_000 }
            Glibc.kill(first.processIdentifier, SIGKILL)
            await first.exited()
            let unfinished = try #require(try await client.listMultipartUploads().first)
            #expect(try await !client.listParts(key: unfinished.key, uploadID: unfinished.uploadID).isEmpty)

            options["upload_limit_kbps"] = 0
            let (second, secondPort) = try await kill.start(harness, options: options)
            let finished = try await kill.job(id, port: secondPort) { ["done", "failed"].contains($0["state"] as? String ?? "") }
            second.terminate()
            #expect(await second.exited() == 0)
            #expect(finished["state"] as? String == "done", "\(finished["error"] ?? "")")
            let destinations = try #require(finished["destinations"] as? [[String: Any]])
            #expect(destinations.map { $0["state"] as? String } == ["verified", "verified"])
            let key = try #require(destinations.last?["file_name"] as? String)
            let backup = try #require(await harness.supervisor.backups().first)
            #expect(try await objectBytes(client, key, in: harness) == Data(contentsOf: backup.file))
            #expect(try await client.listMultipartUploads().isEmpty)
            #expect(await harness.objects().count == 1)
        }
    }

    @Test func theS3CopyIsCheckedForRestorabilityAndTheResultKeptInItsCatalog() async throws {
        try await withS3Harness { harness, client, _ in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let slug = try #require(job.slug)
            let check = try #require(await pipeline.checkRestorability(slug: slug, destination: DestinationID.s3))
            #expect(check.verdict == "restorable" && check.mode == "full")
            let entry = try #require(try await pipeline.listing().first?.copies[DestinationID.s3])
            #expect(entry.lastCheck == check)

            // A damaged copy in S3 (same size, other bytes) is caught by the check of that destination alone.
            let damaged = harness.directory.appendingPathComponent("damaged.tar")
            var bytes = try Data(contentsOf: URL(fileURLWithPath: try #require(job.local?.path)))
            bytes[bytes.count / 2] ^= 0xFF
            try bytes.write(to: damaged)
            _ = try await client.putObject(key: entry.fileName, file: FileRange(path: damaged.path, length: Int64(bytes.count)),
                                           metadata: ["sha1": try #require(entry.sha1)])
            let failed = try #require(await pipeline.checkRestorability(slug: slug, destination: DestinationID.s3))
            #expect(failed.verdict == "not_restorable")
            #expect(failed.problems.contains { $0.contains("S3") })
            #expect(await pipeline.checkRestorability(slug: slug)?.verdict == "restorable") // B2's copy is fine
        }
    }

    @Test func theSetupCheckAndTheMetricsCoverTheSecondDestination() async throws {
        try await withS3Harness { harness, client, bucket in
            let assembled = try #require(try await PipelineAssembly.assemble(settings: harness.settings(), store: harness.store(), logger: quiet))
            let results = await assembled.setupCheck.run()
            for id in ["s3", "s3_write", "s3_multipart"] {
                #expect(results.first { $0.id == id }?.ok == true, "\(results.first { $0.id == id }?.detail ?? "missing \(id)")")
            }
            #expect(try await client.listObjects().isEmpty) // the probe is gone again

            let pipeline = assembled.pipeline
            _ = await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id)
            await pipeline.refreshRemoteSummary()
            try await withWebApp(harness, pipeline: pipeline) { base, http in
                let text = try await http.send(.init(url: base + "/metrics", headers: [("Authorization", "Bearer \(PipelineHarness.apiToken)")])).text
                #expect(text.contains("b2_backup_destination_ok{destination=\"s3\"} 1"))
                #expect(text.contains("b2_backup_destination_backups{destination=\"s3\"} 1"))
                #expect(text.contains("b2_backup_destination_backups{destination=\"b2\"} 1"))
                let status = try await http.send(.init(url: base + "/api/status", headers: [("Authorization", "Bearer \(PipelineHarness.apiToken)")]))
                let destinations = try #require((try JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any])?["destinations"] as? [[String: Any]])
                #expect(destinations.map { $0["id"] as? String } == ["b2", "s3"])
                #expect(destinations.last?["bucket"] as? String == bucket)
                #expect(destinations.last?["state"] as? String == "ok")
            }
        }
        try await withS3Harness(secret: "wrong") { harness, _, bucket in
            let assembled = try #require(try await PipelineAssembly.assemble(settings: harness.settings(), store: harness.store(), logger: quiet))
            let s3 = try #require(await assembled.setupCheck.run().first { $0.id == "s3" })
            #expect(!s3.ok && s3.detail.contains(bucket) && s3.detail.contains("SignatureDoesNotMatch") && !s3.fix.isEmpty)
        }
    }

    @Test func theUploadCommandSendsAFileToTheS3Destination() async throws {
        let moto = try moto
        try await withS3Harness { harness, client, bucket in
            let data = harness.directory.appendingPathComponent("cli")
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            let options: [String: Any] = ["s3_enabled": true, "s3_endpoint": moto.endpoint, "s3_bucket": bucket, "s3_access_key_id": moto.accessKeyID,
                                          "s3_secret_access_key": moto.secretAccessKey, "s3_path_style": true, "s3_prefix": "manual"]
            try JSONSerialization.data(withJSONObject: options).write(to: data.appendingPathComponent("options.json"))
            let file = harness.directory.appendingPathComponent("twelve.bin")
            let bytes = Data((0..<(12 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) })
            try bytes.write(to: file)
            let process = Process()
            process.executableURL = ServeProcessTests.binary
            process.arguments = ["upload", file.path, "--to", "s3", "--part-size", "\(5 << 20)", "--data-dir", data.path]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let status = await process.exited()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(status == 0, "\(text)")
            #expect(text.contains("uploaded manual/twelve.bin to S3: \(12 << 20) bytes") && text.contains("3 part(s)"))
            #expect(try await objectBytes(client, "manual/twelve.bin", in: harness) == bytes)
        }
    }

    @Test func aDamagedDownloadFromB2FallsBackToTheS3Copy() async throws {
        try await withS3Harness { harness, _, _ in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let slug = try #require(job.slug)
            let original = try Data(contentsOf: try #require(await harness.supervisor.backups().first).file)
            try await SupervisorClientFactory.client(harness).deleteBackup(slug: slug)
            await harness.b2.faults.corruptDownload(times: 50)
            let pull = try #require(await pipeline.engine.wait(for: try await pipeline.startRestore(slug: slug, RestoreOptions(), pullOnly: true).id))
            #expect(pull.state == .done, "\(pull.error?.message ?? "")")
            #expect(pull.warnings.contains { $0.hasPrefix("downloaded from S3") && $0.contains("because Backblaze B2") })
            #expect(try Data(contentsOf: try #require(await harness.supervisor.backups().first).file) == original)
        }
    }

    @Test func deletingEverywhereChangesNothingWhenOnePlaceRefuses() async throws {
        try await withS3Harness(objectLock: true, options: { $0.immutableDays = 30 }) { harness, client, _ in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let slug = try #require(job.slug)
            await #expect(throws: RetentionRefusal.self) { try await pipeline.delete(slug, from: .all, force: true) }
            // B2's Object Lock refused: the S3 copy and the local one are still there.
            #expect(try await client.listObjects(prefix: "homeassistant/").contains { $0.key.hasSuffix(".tar") })
            #expect(await harness.supervisor.backups().count == 1)
            let listed = try #require(try await pipeline.listing().first)
            #expect(listed.remote != nil && listed.copies[DestinationID.s3] != nil && listed.local != nil)
        }
    }

    @Test func theDailyLoopChecksAndPrunesTheS3CopiesToo() async throws {
        try await withS3Harness(options: { options in
            options.verifyDays = 7
            options.scheduleEnabled = false
        }) { harness, _, _ in
            let pipeline = try await harness.pipeline()
            _ = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let s3 = try #require(pipeline.secondaries.first).retention
            #expect(try await s3.snapshot().lastScheduledCheck == nil)
            harness.clock.advance(by: 3600) // so the scheduled check's time differs from the copy step's
            let loops = Task { await pipeline.run() }
            await harness.clock.waitForSleepers(3)
            let snapshot = try await s3.snapshot()
            #expect(snapshot.lastScheduledCheck == harness.clock.now())
            #expect(snapshot.backups.first?.lastCheck?.at == harness.clock.now())
            loops.cancel()
            _ = await loops.value
        }
    }

    @Test func theS3CatalogIsRebuiltFromObjectMetadataAloneEvenForNamesBeyondASCII() async throws {
        try await withS3Harness { harness, client, _ in
            let pipeline = try await harness.pipeline()
            let name = "Sicherung für Zürich ✓ 100%"
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest(name: name)).id))
            #expect(job.state == .done, "\(job.error?.message ?? "")")
            // Lose the index: the catalog must come back from the objects' own metadata.
            try await client.deleteObject(key: "homeassistant/b2-backup-index.json")
            let s3 = try #require(pipeline.secondaries.first).retention
            let slug = try #require(job.slug)
            let entry = try #require(try await s3.snapshot().entry(slug: slug))
            #expect(entry.name == name)
            #expect(entry.isVerified && entry.madeByAddon)
            #expect(entry.sha1 == job.remote?.sha1)
            let date = try #require(job.local?.facts?.date)
            #expect(abs(entry.facts.date.timeIntervalSince(date)) < 1) // ISO 8601 to the second
        }
    }
}

