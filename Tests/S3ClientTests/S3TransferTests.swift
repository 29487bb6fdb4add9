import Foundation
import HTTPClient
import Hashing
import Logging
import S3Client
import Synchronization
import MotoSupport
import Testing

/// S3Uploader, download, readObject and abortUploads against moto (authentication on), in the moto suite.
///
/// What moto 5 does not do, and so what these tests cannot show: it does not check `Content-MD5` (the
/// scripted tests check that we send it right), it ignores `max-uploads` (pagination is tested on the
/// scripted server), and it reports every multipart upload as initiated on 2010-11-10T20:48:33Z.
extension S3ClientTests {
    static let partSize = 5 * 1024 * 1024

    private func uploader(_ client: S3Client, concurrency: Int = 2) -> S3Uploader {
        S3Uploader(client: client, partSize: Self.partSize, concurrency: concurrency, bytesPerSecond: nil, logger: Logger(label: "s3-test"))
    }

    /// Collects progress reports.
    final class Reports: Sendable {
        private let values = Mutex<[(Int64, Int64)]>([])
        func add(_ done: Int64, _ total: Int64) { values.withLock { $0.append((done, total)) } }
        var all: [(done: Int64, total: Int64)] { values.withLock { $0.map { (done: $0.0, total: $0.1) } } }
    }

    /// Uploads parts `numbers` of `file` by hand into a new multipart upload of `key`: what a killed run leaves.
    private func leaveUnfinished(_ client: S3Client, key: String, file: String, size: Int, parts numbers: [Int]) async throws -> String {
        let id = try await client.createMultipartUpload(key: key, metadata: ["sha1": StreamingDigest.sha1Hex(try TestFiles.read(file))])
        for number in numbers {
            let offset = (number - 1) * Self.partSize
            _ = try await client.uploadPart(key: key, uploadID: id, partNumber: number,
                                            file: FileRange(path: file, offset: Int64(offset), length: Int64(min(Self.partSize, size - offset))))
        }
        return id
    }

    /// A local file of 3.5 parts of random bytes.
    private func largeSource() throws -> (data: [UInt8], path: String) {
        let data = TestFiles.random(Self.partSize * 7 / 2)
        return (data, try TestFiles.write(data))
    }

    private func downloaded(_ client: S3Client, _ key: String) async throws -> [UInt8] {
        let target = TestFiles.path("s3-down")
        defer { TestFiles.remove(target) }
        try await client.getObject(key: key, to: ResponseFile(path: target))
        return try TestFiles.read(target)
    }

    @Test func multipartUploadRoundTrip() async throws {
        let client = try await bucket("up-multipart")
        let (data, source) = try largeSource()
        defer { TestFiles.remove(source) }
        let reports = Reports()
        let result = try await uploader(client).upload(path: source, key: "nightly.tar", metadata: ["backup-slug": "abc123"], progress: reports.add)
        let sha1 = StreamingDigest.sha1Hex(data)
        #expect(result == S3UploadResult(key: "nightly.tar", size: Int64(data.count), etag: result.etag, parts: 4, sha1: sha1, resumedParts: 0))
        #expect(result.etag.hasSuffix("-4"))
        #expect(try await downloaded(client, "nightly.tar") == data)
        let info = try await client.headObject(key: "nightly.tar")
        #expect(info.metadata == ["sha1": sha1, "backup-slug": "abc123"])
        #expect(try await client.listMultipartUploads().isEmpty)
        #expect(reports.all.last?.done == Int64(data.count))
        #expect(reports.all.allSatisfy { $0.total == Int64(data.count) && $0.done <= $0.total })
    }

    @Test func singlePutRoundTripWithGivenSHA1() async throws {
        let client = try await bucket("up-single")
        let data = TestFiles.random(300_001)
        let source = try TestFiles.write(data)
        defer { TestFiles.remove(source) }
        let sha1 = StreamingDigest.sha1Hex(data)
        let result = try await uploader(client).upload(path: source, key: "small.tar", metadata: ["sha1": sha1.uppercased()]) { _, _ in }
        #expect(result == S3UploadResult(key: "small.tar", size: 300_001, etag: TestFiles.md5Hex(data), parts: 1, sha1: sha1, resumedParts: 0))
        #expect(try await downloaded(client, "small.tar") == data)
        #expect(try await client.headObject(key: "small.tar").metadata["sha1"] == sha1)
        // Ranged reads into memory, as the restorability check makes them; one past the end stops at the end.
        #expect(try await client.readObject(key: "small.tar", range: 0...0) == [data[0]])
        #expect(try await client.readObject(key: "small.tar", range: 1000...1999) == Array(data[1000...1999]))
        #expect(try await client.readObject(key: "small.tar", range: 300_000...400_000) == [data[300_000]])
    }

    @Test func resumesFromPartsAKilledRunLeft() async throws {
        let client = try await bucket("up-resume")
        let (data, source) = try largeSource()
        defer { TestFiles.remove(source) }
        _ = try await leaveUnfinished(client, key: "resume.tar", file: source, size: data.count, parts: [1, 3])
        let reports = Reports()
        let result = try await uploader(client).upload(path: source, key: "resume.tar", metadata: [:], progress: reports.add)
        #expect(result.resumedParts == 2)
        #expect(result.parts == 4)
        #expect(try await downloaded(client, "resume.tar") == data)
        #expect(try await client.listMultipartUploads().isEmpty)
        #expect(try await client.headObject(key: "resume.tar").etag.contains("-4"))
        // The reused parts count as done before anything is sent.
        #expect((reports.all.first?.done ?? 0) >= Int64(Self.partSize))
    }

    @Test func cancelledUploadIsLeftAndThenResumed() async throws {
        let client = try await bucket("up-cancel")
        let (data, source) = try largeSource()
        defer { TestFiles.remove(source) }
        // One part at a time: more than a part done means part 1 is confirmed and part 2 is on its way.
        let running = Mutex<Task<S3UploadResult, any Error>?>(nil)
        let task = Task {
            try await uploader(client, concurrency: 1).upload(path: source, key: "cancel.tar", metadata: [:]) { done, _ in
                if done > Int64(Self.partSize) { running.withLock { $0?.cancel() } }
            }
        }
        running.withLock { $0 = task }
        let error = await #expect(throws: S3Error.self) { try await task.value }
        #expect("\(error.map { "\($0)" } ?? "")".hasPrefix("S3 "))
        // Stopped, not failed: the upload stays for the next run.
        #expect(try await client.listMultipartUploads().map(\.key) == ["cancel.tar"])

        let result = try await uploader(client).upload(path: source, key: "cancel.tar", metadata: [:]) { _, _ in }
        #expect(result.resumedParts >= 1)
        #expect(try await downloaded(client, "cancel.tar") == data)
        #expect(try await client.listMultipartUploads().isEmpty)
    }

    @Test func changedFileIsNotResumedFromStaleParts() async throws {
        let client = try await bucket("up-changed")
        let (old, oldSource) = try largeSource()
        defer { TestFiles.remove(oldSource) }
        _ = try await leaveUnfinished(client, key: "changed.tar", file: oldSource, size: old.count, parts: [1, 2])
        var new = old
        new[Self.partSize + 10] ^= 0xFF // part 2 differs; part 1 is the same, yet the old upload's sha1 is stale
        let newSource = try TestFiles.write(new)
        defer { TestFiles.remove(newSource) }
        let result = try await uploader(client).upload(path: newSource, key: "changed.tar", metadata: [:]) { _, _ in }
        #expect(result.resumedParts == 0)
        #expect(result.sha1 == StreamingDigest.sha1Hex(new))
        #expect(try await downloaded(client, "changed.tar") == new)
        #expect(try await client.headObject(key: "changed.tar").metadata["sha1"] == StreamingDigest.sha1Hex(new))
        #expect(try await client.listMultipartUploads().isEmpty)
    }

    @Test func wrongSecretFailsClearlyAndLeavesNoUpload() async throws {
        let good = try await bucket("up-denied")
        let (_, source) = try largeSource()
        defer { TestFiles.remove(source) }
        let wrong = try server.client(bucket: "up-denied", secret: "not-the-secret")
        let error = await #expect(throws: S3Error.self) {
            try await uploader(wrong).upload(path: source, key: "denied.tar", metadata: [:]) { _, _ in }
        }
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.hasPrefix("S3 "))
        #expect(text.contains("'up-denied'"))
        #expect(text.contains("SignatureDoesNotMatch"))
        #expect(text.contains("secret access key"))
        #expect(try await good.listMultipartUploads().isEmpty)
        #expect(try await good.listObjects().isEmpty)
    }

    @Test func downloadResumesFromAPartialFileAndVerifies() async throws {
        let client = try await bucket("down-resume")
        let data = TestFiles.random(1_000_003)
        try await client.putObject(key: "backup.tar", bytes: data, metadata: ["sha1": StreamingDigest.sha1Hex(data)])
        let target = try TestFiles.write(Array(data[0..<400_000]))
        defer { TestFiles.remove(target) }
        let reports = Reports()
        let size = try await client.download(key: "backup.tar", to: target, expectedSize: 1_000_003, sha1: StreamingDigest.sha1Hex(data), progress: reports.add)
        #expect(size == 1_000_003)
        #expect(try TestFiles.read(target) == data)
        #expect(reports.all.first?.done == 400_000)
        #expect(reports.all.last?.done == 1_000_003)

        // Already complete: nothing to fetch, still verified (here against the object's sha1 metadata).
        #expect(try await client.download(key: "backup.tar", to: target, expectedSize: nil, sha1: nil) { _, _ in } == 1_000_003)
        #expect(try TestFiles.read(target) == data)
    }

    @Test func downloadDetectsACorruptPartialFile() async throws {
        let client = try await bucket("down-corrupt")
        let data = TestFiles.random(700_000)
        try await client.putObject(key: "backup.tar", bytes: data)
        var start = Array(data[0..<250_000])
        start[100] ^= 0x01
        let target = try TestFiles.write(start)
        defer { TestFiles.remove(target) }
        let error = await #expect(throws: S3Error.self) {
            try await client.download(key: "backup.tar", to: target, expectedSize: 700_000, sha1: StreamingDigest.sha1Hex(data)) { _, _ in }
        }
        guard case .integrity = error else { Issue.record("expected an integrity error, got \(String(describing: error))"); return }
        #expect("\(error.map { "\($0)" } ?? "")".hasPrefix("S3 GetObject: integrity check failed"))
        #expect(!FileManager.default.fileExists(atPath: target))

        // A size that differs from the catalog's is refused before anything is written.
        let fresh = TestFiles.path("s3-down")
        let sizeError = await #expect(throws: S3Error.self) {
            try await client.download(key: "backup.tar", to: fresh, expectedSize: 699_999, sha1: nil) { _, _ in }
        }
        guard case .integrity = sizeError else { Issue.record("expected an integrity error, got \(String(describing: sizeError))"); return }
        #expect(!FileManager.default.fileExists(atPath: fresh))
    }

    @Test func abortUploadsStartedBeforeADate() async throws {
        let client = try await bucket("abort-old")
        _ = try await client.createMultipartUpload(key: "old-1.tar")
        _ = try await client.createMultipartUpload(key: "old-2.tar")
        let kept = try await client.createMultipartUpload(key: "keep.tar")
        let listed = try await client.listMultipartUploads()
        #expect(listed.allSatisfy { $0.initiated != nil })
        // moto dates every upload 2010-11-10, so a cut-off before then aborts none, and now aborts the prefix's.
        #expect(try await client.abortUploads(prefix: "old-", initiatedBefore: Date(timeIntervalSince1970: 1_000_000_000)) == 0)
        #expect(try await client.abortUploads(prefix: "old-", initiatedBefore: Date()) == 2)
        #expect(try await client.listMultipartUploads().map(\.uploadID) == [kept])
    }
}
