import BackupArchive
import Foundation
import SupervisorSimulator
import Testing

/// Backups with a password: real SecureTar that the verifier opens with that password only, and the
/// restore's password check for backups the simulator did not write. Argon2id (SecureTar v3) takes about
/// two seconds in a debug build (far more while the whole suite runs on two cores), so only one v3 backup
/// is made here; v2 (SHA-256 keys) is cheap.
@Suite(.timeLimit(.minutes(3)))
struct ProtectedBackupTests {
    static func verify(_ file: URL, password: String?) async throws -> VerificationReport {
        await BackupVerifier.verify(try FileByteSource(path: file.path), mode: .full, password: password)
    }

    static func upload(_ bytes: [UInt8], to harness: Harness) async throws -> String {
        let (body, contentType) = multipart(bytes)
        let reply = try await harness.send("POST", "/backups/new/upload", headers: harness.auth + [("Content-Type", contentType)], body: body)
        return try #require(reply.data?["slug"]?.stringValue, "\(reply.text)")
    }

    /// Expects the restore to be refused with the Supervisor's words.
    static func refused(_ harness: Harness, _ slug: String, kind: String = "full", password: String?, extra: JSONObject = [:],
                        sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var body = extra
        body["password"] = password.map { .string($0) } ?? .null
        let reply = try await harness.post("/backups/\(slug)/restore/\(kind)", .object(body))
        #expect(reply.status == 400, sourceLocation: sourceLocation)
        #expect(reply.message == "Invalid password for backup \(slug)", "\(reply.text)", sourceLocation: sourceLocation)
    }

    /// Expects the restore to start, then waits for it.
    static func accepted(_ harness: Harness, _ slug: String, kind: String = "full", password: String?, extra: JSONObject = [:],
                         sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var body = extra
        body["password"] = password.map { .string($0) } ?? .null
        let reply = try await harness.post("/backups/\(slug)/restore/\(kind)", .object(body))
        #expect(reply.status == 200, "\(reply.text)", sourceLocation: sourceLocation)
        await harness.supervisor.waitForIdle()
    }

    /// Core 2026.11 (≥ 2026.3.0): every archive is SecureTar v3 under one root key; the verifier proves the
    /// backup restorable with the password, rejects a wrong one by the validation key, and without a
    /// password finds the headers sound.
    @Test func aPasswordEncryptsEveryArchiveAsSecureTarV3() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Sealed", "password": "sealed horse battery"])
            let file = harness.file("\(slug).tar")
            let all = try members(of: file)
            let archives = all.dropLast()
            #expect(archives.map(\.entry.name) == ["homeassistant.tar.gz", "core_mosquitto.tar.gz", "45df7312_zigbee2mqtt.tar.gz", "share.tar.gz",
                                                   "addons_local.tar.gz", "ssl.tar.gz", "media.tar.gz"])
            for (entry, data) in archives {
                #expect(Array(data.prefix(16)) == Array("SecureTar".utf8) + [3, 0, 0, 0, 0, 0, 0], "\(entry.name)")
                let plaintext = data[16..<24].reduce(Int64(0)) { $0 << 8 | Int64($1) }
                #expect(entry.size == 136 + plaintext + 17 * max(1, (plaintext + (1 << 20) - 1) >> 20), "\(entry.name)")
                // Root salt, validation salt and validation key are the backup's; derivation salt and stream header the archive's.
                #expect(data[32..<96] == archives.first!.data[32..<96])
                #expect(entry.name == archives.first!.entry.name || data[96..<136] != archives.first!.data[96..<136])
            }
            #expect(try JSONValue.parse(all.last!.data)["protected"] == true)

            let right = try await Self.verify(file, password: "sealed horse battery")
            #expect(right.verdict == .restorable, "\(right.problems)")
            #expect(right.archives.count == 7 && right.archives.allSatisfy { $0.format == "securetar-v3" && $0.ok && $0.detail == nil })
            let wrong = try await Self.verify(file, password: "sealed horse batteries")
            #expect(wrong.verdict == .notRestorable)
            #expect(wrong.problems.contains { $0.contains("password is wrong") }, "\(wrong.problems)")
            let without = try await Self.verify(file, password: nil)
            #expect(without.verdict == .restorable, "\(without.problems)")
            #expect(without.archives.allSatisfy { $0.detail?.contains("not verified without the password") == true })
        }
    }

    /// Core older than 2026.3.0: SecureTar v2. A copy uploaded to another Supervisor (which never saw the
    /// password) has the password checked against its first archive, as `Backup.validate_backup` does.
    @Test func withAnOlderCoreArchivesAreSecureTarV2AndAnUploadedCopyChecksThePassword() async throws {
        var configuration = SupervisorSimulator.Configuration.make()
        configuration.homeassistantVersion = "2026.2.3"
        let (slug, bytes) = try await withSupervisor(configuration) { (harness: Harness) async throws in
            let slug = try await harness.backup(["name": "Old core", "password": "old core key"])
            let file = harness.file("\(slug).tar")
            let archives = try members(of: file).dropLast()
            #expect(!archives.isEmpty && archives.allSatisfy { Array($0.data.prefix(10)) == Array("SecureTar".utf8) + [2] })
            #expect(archives.allSatisfy { $0.entry.size == 48 + 16 * ($0.data[16..<24].reduce(Int64(0)) { $0 << 8 | Int64($1) } / 16 + 1) })
            #expect(try await Self.verify(file, password: "old core key").verdict == .restorable)
            let wrong = try await Self.verify(file, password: "new core key")
            #expect(wrong.verdict == .notRestorable && wrong.problems.contains { $0.contains("password is wrong") }, "\(wrong.problems)")
            return (slug, [UInt8](try Data(contentsOf: file)))
        }
        try await withSupervisor { (harness: Harness) async throws in
            #expect(try await Self.upload(bytes, to: harness) == slug)
            #expect(try await harness.ok("GET", "/backups/\(slug)/info")["protected"] == true)
            for password in ["new core key", "", nil] { try await Self.refused(harness, slug, password: password) }
            #expect(await harness.supervisor.restores().isEmpty)
            try await Self.accepted(harness, slug, password: "old core key")
            #expect(await harness.supervisor.restores().map(\.password) == ["old core key"])
        }
    }

    /// The fixtures as uploads: v3 is checked by its validation key, v2 by its first block; a backup that
    /// claims protection over plain gzip fails with the password and goes through without it.
    @Test(.enabled(if: Fixtures.available, "../shared/fixtures/backups is not in this checkout"))
    func uploadedFixturesHaveTheirPasswordCheckedLikeTheSupervisor() async throws {
        let right = "fixture-password-1"
        let wrong = "fixture-password-2"
        try await withSupervisor { (harness: Harness) async throws in
            let v3 = try await Self.upload([UInt8](try Data(contentsOf: Fixtures.url("full-protected.tar"))), to: harness)
            try await Self.refused(harness, v3, password: wrong)
            try await Self.refused(harness, v3, password: nil)
            try await Self.accepted(harness, v3, password: right)

            let v2 = try await Self.upload([UInt8](try Data(contentsOf: Fixtures.url("partial-protected-v2.tar"))), to: harness)
            try await Self.refused(harness, v2, kind: "partial", password: wrong, extra: ["homeassistant": true])
            try await Self.accepted(harness, v2, kind: "partial", password: right, extra: ["homeassistant": true])

            // Same slug as full-protected.tar: the upload replaces it in the index.
            let lying = try await Self.upload([UInt8](try Data(contentsOf: Fixtures.url("lying-protected.tar"))), to: harness)
            #expect(lying == v3)
            try await Self.refused(harness, lying, password: right)
            try await Self.accepted(harness, lying, password: nil)
            #expect(await harness.supervisor.restores().map(\.password) == [right, right, nil])
        }
    }
}
