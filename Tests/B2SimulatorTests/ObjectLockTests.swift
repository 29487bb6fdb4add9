import B2Simulator
import Foundation
import HTTPClient
import Synchronization
import Testing

/// A clock the test moves, so retentions end without sleeping.
final class ManualClock: Sendable {
    private let date = Mutex(Date(timeIntervalSince1970: 1_750_000_000))
    var now: Date { date.withLock { $0 } }
    var millis: Int { Int(now.timeIntervalSince1970 * 1000) }
    func advance(days: Double) { date.withLock { $0 += days * 86_400 } }
}

extension B2Simulator.Configuration {
    /// ``make()`` with Object Lock on `ha-backups`, the given clock, and a key that has every capability but
    /// `bypassGovernance`.
    static func objectLock(_ clock: ManualClock, defaultRetention: [String: B2Simulator.DefaultRetention] = [:]) -> Self {
        var configuration = make()
        configuration.accounts.append(.init(keyID: "no-bypass-key-id", applicationKey: "no-bypass-key",
                                            capabilities: B2Simulator.Account.allCapabilities.filter { $0 != "bypassGovernance" }))
        configuration.objectLockBuckets = ["ha-backups"]
        configuration.defaultRetention = defaultRetention
        configuration.now = { clock.now }
        return configuration
    }
}

/// Retention headers for `b2_upload_file`.
func retentionHeaders(_ mode: String, until: Int) -> [(String, String)] {
    [("X-Bz-File-Retention-Mode", mode), ("X-Bz-File-Retention-Retain-Until-Timestamp", String(until))]
}

/// `fileRetention.value` of a file object.
func retentionValue(_ file: [String: Any]) -> (mode: String?, until: Int?)? {
    guard let value = (file["fileRetention"] as? [String: Any])?["value"] as? [String: Any] else { return nil }
    return (value["mode"] as? String, value["retainUntilTimestamp"] as? Int)
}

/// Object Lock: buckets that have it, retentions on uploads and large files, and the deletes they refuse.
@Suite(.timeLimit(.minutes(1)))
struct ObjectLockTests {
    static let day = 86_400_000

    @Test func bucketsReportObjectLockAndTheDefaultRetention() async throws {
        let clock = ManualClock()
        try await withSimulator(.objectLock(clock, defaultRetention: ["ha-backups": .init(mode: .governance, days: 7)])) { harness in
            let session = try await harness.authorize()
            let json = try await harness.ok(session, "b2_list_buckets", ["accountId": session.accountID])
            let buckets = try #require(json["buckets"] as? [[String: Any]])
            let lock = buckets.map { ($0["fileLockConfiguration"] as? [String: Any])?["value"] as? [String: Any] }
            #expect(lock.map { $0?["isFileLockEnabled"] as? Bool } == [true, false]) // ha-backups, other-bucket
            let defaultRetention = try #require(lock[0]?["defaultRetention"] as? [String: Any])
            #expect(defaultRetention["mode"] as? String == "governance")
            #expect((defaultRetention["period"] as? [String: Any])?["duration"] as? Int == 7)
            #expect((defaultRetention["period"] as? [String: Any])?["unit"] as? String == "days")
            #expect((lock[1]?["defaultRetention"] as? [String: Any])?["mode"] is NSNull)

            // The default applies to uploads that set no retention, counted from the upload.
            let file = try await harness.uploadOK(session, bucketID: try await harness.bucketID(session), name: "a.tar", bytes(10))
            #expect(retentionValue(file)?.mode == "governance")
            #expect(retentionValue(file)?.until == clock.millis + 7 * Self.day)

            // The web UI's bucket key cannot read bucket retentions: B2 says so instead of answering.
            let bucketKey = try await harness.authorize("bucket-key-id", "bucket-key")
            let restricted = try await harness.ok(bucketKey, "b2_list_buckets", ["accountId": bucketKey.accountID, "bucketName": "ha-backups"])
            let configuration = (restricted["buckets"] as? [[String: Any]])?.first?["fileLockConfiguration"] as? [String: Any]
            #expect(configuration?["isClientAuthorizedToRead"] as? Bool == false)
            #expect(configuration?["value"] is NSNull)
        }
        var broken = B2Simulator.Configuration.make()
        broken.objectLockBuckets = ["missing"]
        #expect(throws: B2SimulatorError.self) { _ = try B2Simulator(configuration: broken, logger: Harness.logger) }
    }

    @Test func uploadsAndLargeFilesCarryTheirRetention() async throws {
        let clock = ManualClock()
        try await withSimulator(.objectLock(clock)) { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            let until = clock.millis + Self.day
            let file = try await harness.uploadOK(session, bucketID: bucketID, name: "locked.tar", bytes(100),
                                                  headers: retentionHeaders("governance", until: until))
            #expect((file["fileRetention"] as? [String: Any])?["isClientAuthorizedToRead"] as? Bool == true)
            #expect(retentionValue(file)?.mode == "governance" && retentionValue(file)?.until == until)
            let fileID = try #require(file["fileId"] as? String)

            let info = try await harness.ok(session, "b2_get_file_info", ["fileId": fileID])
            #expect(retentionValue(info)?.mode == "governance" && retentionValue(info)?.until == until)
            for operation in ["b2_list_file_names", "b2_list_file_versions"] {
                let listed = try await harness.ok(session, operation, ["bucketId": bucketID])
                let first = try #require((listed["files"] as? [[String: Any]])?.first)
                #expect(retentionValue(first)?.mode == "governance" && retentionValue(first)?.until == until, "\(operation)")
            }
            let download = try await harness.downloadByName(session, encodedName: "locked.tar")
            #expect(download.header("X-Bz-File-Retention-Mode") == "governance")
            #expect(download.header("X-Bz-File-Retention-Retain-Until-Timestamp") == String(until))
            let bucketKey = try await harness.authorize("bucket-key-id", "bucket-key")
            let unauthorized = try await harness.downloadByID(bucketKey, fileID: fileID)
            #expect(unauthorized.status == 200 && unauthorized.header("X-Bz-File-Retention-Mode") == nil)
            #expect(unauthorized.header("X-Bz-Client-Unauthorized-To-Read")?.contains("X-Bz-File-Retention-Mode") == true)

            // A large file: the retention given at start is the finished file's.
            let started = try await harness.ok(session, "b2_start_large_file", [
                "bucketId": bucketID, "fileName": "big.tar", "contentType": "application/x-tar",
                "fileRetention": ["mode": "compliance", "retainUntilTimestamp": until],
            ])
            #expect(retentionValue(started)?.mode == "compliance")
            let largeID = try #require(started["fileId"] as? String)
            let target = try await harness.partURL(session, fileID: largeID)
            let parts = [bytes(1000, seed: 1), bytes(10, seed: 2)]
            for (index, part) in parts.enumerated() { #expect(try await harness.uploadPart(to: target, number: index + 1, part).status == 200) }
            let finished = try await harness.ok(session, "b2_finish_large_file", ["fileId": largeID, "partSha1Array": parts.map(sha1)])
            #expect(retentionValue(finished)?.mode == "compliance" && retentionValue(finished)?.until == until)
            let inspected = await harness.simulator.fileVersions(bucket: "ha-backups").map(\.retention)
            #expect(inspected == [.init(mode: .compliance, retainUntilTimestamp: until), .init(mode: .governance, retainUntilTimestamp: until)])

            // A null mode is no retention (what b2sdk sends for none).
            let plain = try await harness.ok(session, "b2_start_large_file", ["bucketId": bucketID, "fileName": "plain.tar",
                                                                               "contentType": "b2/x-auto", "fileRetention": ["mode": NSNull()]])
            #expect(retentionValue(plain).map { $0.mode == nil && $0.until == nil } == true)
        }
    }

    @Test func retentionsB2CannotHonourAreRefused() async throws {
        let clock = ManualClock()
        try await withSimulator(.objectLock(clock)) { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            let otherID = try await harness.bucketID(session, "other-bucket")
            let future = clock.millis + Self.day
            func upload(_ session: Session, bucketID: String, _ headers: [(String, String)], info: Int = 0) async throws -> Reply {
                let target = try await harness.uploadURL(session, bucketID: bucketID)
                return try await harness.upload(to: target, encodedName: "a.tar", bytes(10),
                                                headers: headers + (info > 0 ? [("X-Bz-Info-note", String(repeating: "x", count: info))] : []))
            }
            let cases: [(String, Reply, Int, String)] = [
                ("bucket without Object Lock", try await upload(session, bucketID: otherID, retentionHeaders("governance", until: future)), 400, "bad_request"),
                ("mode without timestamp", try await upload(session, bucketID: bucketID, [("X-Bz-File-Retention-Mode", "governance")]), 400, "bad_request"),
                ("timestamp without mode", try await upload(session, bucketID: bucketID, [("X-Bz-File-Retention-Retain-Until-Timestamp", String(future))]), 400, "bad_request"),
                ("unknown mode", try await upload(session, bucketID: bucketID, retentionHeaders("forever", until: future)), 400, "bad_request"),
                ("timestamp in the past", try await upload(session, bucketID: bucketID, retentionHeaders("compliance", until: clock.millis - 1)), 400, "bad_request"),
                ("key without writeFileRetentions", try await upload(try await harness.authorize("bucket-key-id", "bucket-key"), bucketID: bucketID,
                                                                      retentionHeaders("governance", until: future)), 401, "unauthorized"),
                // With retention the name plus info may take 2048 bytes, not 7000.
                ("2100 bytes of info", try await upload(session, bucketID: bucketID, retentionHeaders("governance", until: future), info: 2100), 400, "bad_request"),
            ]
            for (name, reply, status, code) in cases {
                #expect(reply.status == status && reply.code == code, "\(name): \(reply.response.text)")
            }
            #expect(try await upload(session, bucketID: bucketID, [], info: 2100).status == 200)
            let large = try await harness.call(session, "b2_start_large_file", ["bucketId": otherID, "fileName": "big.tar", "contentType": "b2/x-auto",
                                                                                 "fileRetention": ["mode": "governance", "retainUntilTimestamp": future]])
            #expect(large.status == 400 && large.code == "bad_request")
            #expect(await harness.simulator.unfinishedLargeFiles(bucket: "other-bucket").isEmpty)
        }
    }

    @Test func lockedVersionsAreNotDeletedUntilTheirRetentionEnds() async throws {
        let clock = ManualClock()
        try await withSimulator(.objectLock(clock)) { harness in
            let master = try await harness.authorize()
            let noBypass = try await harness.authorize("no-bypass-key-id", "no-bypass-key")
            let bucketID = try await harness.bucketID(master)
            let compliance = try await harness.uploadOK(master, bucketID: bucketID, name: "c.tar", bytes(10),
                                                        headers: retentionHeaders("compliance", until: clock.millis + Self.day))
            let governance = try await harness.uploadOK(master, bucketID: bucketID, name: "g.tar", bytes(10),
                                                        headers: retentionHeaders("governance", until: clock.millis + Self.day))
            func delete(_ session: Session, _ file: [String: Any], bypass: Bool? = nil) async throws -> Reply {
                var parameters: [String: Any] = ["fileName": file["fileName"] as? String ?? "", "fileId": file["fileId"] as? String ?? ""]
                if let bypass { parameters["bypassGovernance"] = bypass }
                return try await harness.call(session, "b2_delete_file_version", parameters)
            }
            for reply in [try await delete(master, compliance), try await delete(master, compliance, bypass: true),
                          try await delete(master, governance), try await delete(master, governance, bypass: false),
                          try await delete(noBypass, governance, bypass: true)] {
                #expect(reply.status == 403 && reply.code == "access_denied", "\(reply.response.text)")
                #expect(reply.message?.contains("Object Lock") == true)
            }
            // Hiding a locked file is allowed; the locked version stays.
            #expect(try await harness.call(master, "b2_hide_file", ["bucketId": bucketID, "fileName": "c.tar"]).status == 200)
            #expect(try await delete(master, governance, bypass: true).status == 200)

            clock.advance(days: 1.01)
            #expect(try await delete(noBypass, compliance).status == 200)
            #expect(await harness.simulator.fileVersions(bucket: "ha-backups").map(\.action) == [.hide])
        }
    }

    @Test func updateFileRetentionExtendsCompliesAndBypassesGovernance() async throws {
        let clock = ManualClock()
        try await withSimulator(.objectLock(clock)) { harness in
            let master = try await harness.authorize()
            let noBypass = try await harness.authorize("no-bypass-key-id", "no-bypass-key")
            let bucketID = try await harness.bucketID(master)
            let until = clock.millis + Self.day
            let file = try await harness.uploadOK(master, bucketID: bucketID, name: "a.tar", bytes(10), headers: retentionHeaders("governance", until: until))
            let id: [String: Any] = ["fileName": "a.tar", "fileId": try #require(file["fileId"] as? String)]
            func update(_ session: Session, _ retention: [String: Any], bypass: Bool = false) async throws -> Reply {
                try await harness.call(session, "b2_update_file_retention", id.merging(["fileRetention": retention, "bypassGovernance": bypass]) { $1 })
            }
            let shorter: [String: Any] = ["mode": "governance", "retainUntilTimestamp": until - 1000]
            #expect(try await update(master, shorter).code == "access_denied")
            #expect(try await update(noBypass, shorter, bypass: true).code == "access_denied")
            let shortened = try await update(master, shorter, bypass: true)
            #expect(shortened.status == 200)
            #expect((shortened.json["fileRetention"] as? [String: Any])?["retainUntilTimestamp"] as? Int == until - 1000)
            // Governance to a longer compliance needs no bypass; compliance then only grows.
            #expect(try await update(noBypass, ["mode": "compliance", "retainUntilTimestamp": until]).status == 200)
            #expect(try await update(master, ["mode": "governance", "retainUntilTimestamp": until + 1000], bypass: true).code == "access_denied")
            #expect(try await update(master, ["mode": NSNull()], bypass: true).code == "access_denied")
            #expect(try await update(master, ["mode": "compliance", "retainUntilTimestamp": until + Self.day]).status == 200)
            #expect(await harness.simulator.fileVersions(bucket: "ha-backups").first?.retention == .init(mode: .compliance, retainUntilTimestamp: until + Self.day))
            // Once it ended, it can be removed and the file deleted.
            clock.advance(days: 2.5)
            #expect(try await update(noBypass, ["mode": NSNull()]).status == 200)
            #expect(try await harness.call(noBypass, "b2_delete_file_version", id).status == 200)
        }
    }
}
