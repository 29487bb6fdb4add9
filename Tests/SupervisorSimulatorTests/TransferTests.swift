import BackupArchive
import Foundation
import HTTPClient
import SupervisorSimulator
import Testing

/// `GET /backups/{slug}/download` and `POST /backups/new/upload`.
@Suite(.timeLimit(.minutes(1)))
struct TransferTests {
    @Test func downloadSendsTheTarWithTheSupervisorsHeaders() async throws {
        try await withSupervisor(.make(payloadBytes: 300_000)) { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Nightly backup: 2026/11/20"])
            let onDisk = [UInt8](try Data(contentsOf: harness.file("\(slug).tar")))
            let reply = try await harness.get("/backups/\(slug)/download")
            #expect(reply.status == 200)
            #expect(reply.body == onDisk)
            #expect(reply.header("Content-Type") == "application/tar")
            #expect(reply.header("Content-Length") == String(onDisk.count))
            // A `<slug>.tar` file is offered under its name with non-alphanumerics runs replaced by `_`.
            #expect(reply.header("Content-Disposition") == "attachment; filename=Nightly_backup_2026_11_20.tar")
            #expect(reply.header("Accept-Ranges") == "bytes")

            // Any other file keeps its own name.
            let named = try await harness.backup(["name": "Other", "filename": "Other_2026-11-20_03.00_12345678.tar"])
            #expect(try await harness.get("/backups/\(named)/download").header("Content-Disposition") == "attachment; filename=Other_2026-11-20_03.00_12345678.tar")

            // Ranges, as aiohttp's FileResponse serves them.
            let ranged = try await harness.send("GET", "/backups/\(slug)/download", headers: harness.auth + [("Range", "bytes=1000-1999")])
            #expect(ranged.status == 206)
            #expect(ranged.body == Array(onDisk[1000..<2000]))
            #expect(ranged.header("Content-Range") == "bytes 1000-1999/\(onDisk.count)")

            // `?location=` names where to read from.
            #expect(try await harness.get("/backups/\(slug)/download?location=.local").status == 200)
            #expect(try await harness.get("/backups/\(slug)/download?location=.cloud_backup").status == 403)
            let elsewhere = try await harness.get("/backups/\(slug)/download?location=my_nas")
            #expect(elsewhere.status == 400)
            #expect(elsewhere.message == "Backup \(slug) is not in location my_nas")
        }
    }

    @Test func downloadOfAMissingBackupIs404() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let unknown = try await harness.get("/backups/0badc0de/download")
            #expect(unknown.status == 404)
            #expect(unknown.message == "Backup does not exist")
            let slug = try await harness.backup()
            try FileManager.default.removeItem(at: harness.file("\(slug).tar"))
            let vanished = try await harness.get("/backups/\(slug)/download")
            #expect(vanished.status == 404)
            #expect(vanished.body.isEmpty)
        }
    }

    @Test func uploadRoundTripTakesTheSlugFromBackupJSON() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Round trip"])
            let original = [UInt8](try Data(contentsOf: harness.file("\(slug).tar")))
            try await harness.ok("DELETE", "/backups/\(slug)")
            // The first part counts, whatever its field name.
            let (body, contentType) = multipart(original, field: "whatever")
            let reply = try await harness.send("POST", "/backups/new/upload?filename=Round_trip_restored.tar",
                                               headers: harness.auth + [("Content-Type", contentType)], body: body)
            #expect(reply.status == 200)
            #expect(reply.data == ["slug": .string(slug)]) // only the slug, no job_id
            let stored = harness.file("Round_trip_restored.tar")
            #expect([UInt8](try Data(contentsOf: stored)) == original)
            #expect(await harness.supervisor.backups().map(\.fileName) == ["Round_trip_restored.tar"])

            // Without ?filename the file is `<slug>.tar`; nothing is left in the folder but backups.
            try await harness.ok("DELETE", "/backups/\(slug)")
            let again = try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", contentType)], body: body)
            #expect(again.data?["slug"] == .string(slug))
            #expect(try FileManager.default.contentsOfDirectory(atPath: harness.configuration.backupDirectory.path) == ["\(slug).tar"])
            #expect(try await harness.ok("GET", "/backups/\(slug)/info")["name"] == "Round trip")
        }
    }

    @Test func largeUploadsStreamFromDisk() async throws {
        try await withSupervisor(.make(payloadBytes: 6 << 20)) { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Large"])
            let backup = harness.file("\(slug).tar")
            let size = try #require(try FileManager.default.attributesOfItem(atPath: backup.path)[.size] as? NSNumber).int64Value
            // Build the multipart body on disk around the file (a preamble too, which parsers must skip).
            let boundary = "XyZ-\(UUID().uuidString)"
            let bodyFile = FileManager.default.temporaryDirectory.appendingPathComponent("upload-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: bodyFile) }
            var bytes = Array("preamble to ignore\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.tar\"\r\n\r\n".utf8)
            bytes += [UInt8](try Data(contentsOf: backup)) + Array("\r\n--\(boundary)--\r\n".utf8)
            try await harness.ok("DELETE", "/backups/\(slug)")
            try Data(bytes).write(to: bodyFile)
            var request = HTTPClientRequest(method: "POST", url: harness.supervisor.url + "/backups/new/upload",
                                            headers: harness.auth + [("Content-Type", "multipart/form-data; boundary=\"\(boundary)\"")])
            request.bodyFile = FileRange(path: bodyFile.path, length: Int64(bytes.count))
            let reply = Reply(response: try await harness.client.send(request))
            #expect(reply.status == 200)
            #expect(reply.data?["slug"] == .string(slug))
            #expect(await harness.supervisor.backups().first?.sizeBytes == size)
        }
    }

    @Test func uploadsWithoutBackupJSONOrMultipartFailAsTheSupervisorDoes() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            // A tar without ./backup.json: 400 with the generic message.
            var tar: [UInt8] = []
            let writer = TarWriter { tar += $0 }
            try writer.add(TarEntry(name: "homeassistant.tar.gz"), contents: [1, 2, 3])
            try writer.finish()
            let (body, contentType) = multipart(tar)
            let invalid = try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", contentType)], body: body)
            #expect(invalid.status == 400)
            #expect(invalid.text == #"{"result":"error","message":"Unknown error, see Supervisor logs"}"#)
            // Random bytes are no tar either.
            let (noise, noiseType) = multipart((0..<5000).map { UInt8(truncatingIfNeeded: $0 * 13) })
            #expect(try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", noiseType)], body: noise).status == 400)
            // Not multipart at all: aiohttp's 500.
            let raw = try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", "application/x-tar")], body: tar)
            #expect(raw.status == 500)
            #expect(raw.text.hasPrefix("500 Internal Server Error"))
            // Locations and file names are checked first.
            let cloud = try await harness.send("POST", "/backups/new/upload?location=.cloud_backup", headers: harness.auth + [("Content-Type", contentType)], body: body)
            #expect(cloud.status == 403)
            let badName = try await harness.send("POST", "/backups/new/upload?filename=a/b.tar", headers: harness.auth + [("Content-Type", contentType)], body: body)
            #expect(badName.status == 400)
            #expect(await harness.supervisor.backups().isEmpty)
            #expect(try FileManager.default.contentsOfDirectory(atPath: harness.configuration.backupDirectory.path).isEmpty)
        }
    }

    @Test(.enabled(if: Fixtures.available, "../shared/fixtures/backups is not in this checkout"))
    func uploadedFixturesAreIndexedFromTheirBackupJSON() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            for (file, slug) in [("full-plain.tar", "5efcaa2d"), ("partial-protected-v2.tar", "73141166")] {
                let (body, contentType) = multipart([UInt8](try Data(contentsOf: Fixtures.url(file))))
                let reply = try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", contentType)], body: body)
                #expect(reply.data?["slug"] == .string(slug))
            }
            let protected = try await harness.ok("GET", "/backups/73141166/info")
            #expect(protected["protected"] == true)
            #expect(protected["type"] == "partial")
            let full = try await harness.ok("GET", "/backups/5efcaa2d/info")
            #expect(full["homeassistant"] == "2026.9.2")
            #expect(full["addons"]?.arrayValue?.count == 2)
            // backup.json that is not JSON: the upload is refused.
            let (broken, contentType) = multipart([UInt8](try Data(contentsOf: Fixtures.url("broken-backup-json.tar"))))
            #expect(try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", contentType)], body: broken).status == 400)
        }
    }
}
