import B2Client
import B2Simulator
import Foundation
import Testing

/// The engine's resume decisions, with an in-memory journal.
@Suite(.timeLimit(.minutes(1)))
struct ResumeTests {
    func record(for path: String, fileID: String, bucketID: String, modifiedMillis: Int64? = nil) throws -> LargeUploadRecord {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        let size = (attributes[.size] as! NSNumber).int64Value
        let modified = modifiedMillis ?? Int64(((attributes[.modificationDate] as! Date).timeIntervalSince1970 * 1000).rounded())
        return LargeUploadRecord(bucketID: bucketID, fileName: "homeassistant/r.tar", fileID: fileID, localPath: path, fileSize: size,
                                 modifiedMillis: modified, partSize: 1_000_000, sha1: String(repeating: "0", count: 40),
                                 partSHA1s: Array(repeating: String(repeating: "0", count: 40), count: Int((size + 999_999) / 1_000_000)))
    }

    @Test func anUploadThatVanishedFromB2StartsOver() async throws {
        try await withSimulator { simulator, client, directory in
            let source = directory.path("r.tar")
            try writeRandomFile(source, size: 2_500_000)
            let bucket = try await client.bucket(named: bucketName)
            let journal = MemoryJournal()
            await journal.save(try record(for: source, fileID: "4_zgone_f1_d20261130_m000000_c000_v0000000_t0000", bucketID: bucket.bucketId))
            let result = try await UploadEngine(client: client, journal: journal, logger: quietLogger)
                .upload(path: source, bucket: bucket, fileName: "homeassistant/r.tar")
            #expect(result.resumedParts == 0)
            #expect(result.file.fileInfo?["large_file_sha1"] == (try sha1(ofFile: source)))
            #expect(await journal.isEmpty)
        }
    }

    @Test func aChangedFileCancelsTheOldUploadAndStartsOver() async throws {
        try await withSimulator { simulator, client, directory in
            let source = directory.path("r.tar")
            try writeRandomFile(source, size: 2_500_000)
            let bucket = try await client.bucket(named: bucketName)
            let stale = try await client.startLargeFile(bucketID: bucket.bucketId, fileName: "homeassistant/r.tar", fileInfo: ["uploaded_by": "b2-backup"])
            let journal = MemoryJournal()
            await journal.save(try record(for: source, fileID: stale.fileId!, bucketID: bucket.bucketId, modifiedMillis: 1))
            let result = try await UploadEngine(client: client, journal: journal, logger: quietLogger)
                .upload(path: source, bucket: bucket, fileName: "homeassistant/r.tar")
            #expect(result.resumedParts == 0)
            #expect(await simulator.unfinishedLargeFiles(bucket: bucketName).isEmpty) // the stale one was cancelled
            #expect(await journal.isEmpty)
        }
    }

    @Test func staleUnfinishedUploadsOfOursWithTheSameNameAreCancelled() async throws {
        try await withSimulator { simulator, client, directory in
            let source = directory.path("r.tar")
            try writeRandomFile(source, size: 2_500_000)
            let bucket = try await client.bucket(named: bucketName)
            _ = try await client.startLargeFile(bucketID: bucket.bucketId, fileName: "homeassistant/r.tar", fileInfo: ["uploaded_by": "b2-backup"])
            let foreign = try await client.startLargeFile(bucketID: bucket.bucketId, fileName: "homeassistant/r.tar", fileInfo: ["src": "someone-else"])
            _ = try await UploadEngine(client: client, journal: MemoryJournal(), logger: quietLogger)
                .upload(path: source, bucket: bucket, fileName: "homeassistant/r.tar")
            // Ours is gone; another tool's unfinished upload is not ours to cancel.
            #expect(await simulator.unfinishedLargeFiles(bucket: bucketName).map(\.fileID) == [foreign.fileId!])
        }
    }
}
