import Foundation
import HTTPClient
import Hashing
import Logging
import Synchronization

/// What an upload stored, as checked after it finished.
public struct S3UploadResult: Sendable, Hashable {
    public var key: String
    public var size: Int64
    /// As S3 sends it, quotes removed: the MD5 hex for one PutObject, `md5-of-md5s-N` for N parts.
    public var etag: String
    /// 1 for a single PutObject.
    public var parts: Int
    /// The whole file's SHA-1 hex, also stored as `x-amz-meta-sha1`.
    public var sha1: String
    /// Parts found already in S3 from an interrupted run and reused.
    public var resumedParts: Int

    public init(key: String, size: Int64, etag: String, parts: Int, sha1: String, resumedParts: Int) {
        self.key = key
        self.size = size
        self.etag = etag
        self.parts = parts
        self.sha1 = sha1
        self.resumedParts = resumedParts
    }
}

/// Uploads a file to S3: one PutObject when it is smaller than a part, otherwise a multipart upload with
/// `concurrency` parts in flight, each streamed from the file as it is sent (memory stays near a few
/// buffers per connection, never a part), `Content-MD5` on every request, and an optional rate cap shared
/// by all connections.
///
/// Resume is stateless, because S3 itself holds what is needed: an unfinished upload of the same key is
/// found with ListMultipartUploads, and a part it lists is reused only when its size and its ETag (the
/// part's MD5) match the same range of the local file now. A killed process therefore resumes on the
/// next run without any journal, and a changed file is never completed from stale parts.
///
/// After completing, S3's word is checked against ours: the ETag (the MD5, or the MD5 of the parts'
/// MD5s and the part count), the size and the `sha1` metadata, from both Complete and a HeadObject.
public final class S3Uploader: Sendable {
    /// S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000 of them.
    public static let minPartSize = 5 * 1024 * 1024
    public static let maxPartSize: Int64 = 5 * 1024 * 1024 * 1024
    public static let maxParts: Int64 = 10_000

    let client: S3Client
    let partSize: Int
    let concurrency: Int
    let bytesPerSecond: Int64?
    let logger: Logger

    /// - Parameters:
    ///   - partSize: raised to S3's 5 MiB minimum, and for a large file to what keeps it within 10,000 parts.
    ///   - bytesPerSecond: cap on the total upload rate over all connections; nil for none.
    public init(client: S3Client, partSize: Int, concurrency: Int, bytesPerSecond: Int64?, logger: Logger) {
        self.client = client
        self.partSize = partSize
        self.concurrency = max(1, concurrency)
        self.bytesPerSecond = bytesPerSecond
        self.logger = logger
    }

    /// The part size for a file: the configured one, at least S3's minimum, raised so the file needs no
    /// more than 10,000 parts.
    public static func partSize(fileSize: Int64, configured: Int) -> Int64 {
        max(Int64(configured), Int64(minPartSize), (fileSize + maxParts - 1) / maxParts)
    }

    /// Uploads the file as `key`. metadata["sha1"] if given is the file's SHA-1 hex (else computed in one
    /// sequential pass first) and is stored as x-amz-meta-sha1 together with the other metadata.
    ///
    /// On a permanent error after a multipart upload was created (AccessDenied, NoSuchBucket, a failed
    /// integrity check…) the upload is aborted, so nothing unfinished is left; after a transient one, or
    /// when the task is cancelled (the process is being stopped), it is left for the next run to resume.
    public func upload(path: String, key: String, metadata: [String: String],
                       progress: @escaping @Sendable (_ done: Int64, _ total: Int64) -> Void) async throws(S3Error) -> S3UploadResult {
        let size = try regularFileSize(path)
        let partBytes = Self.partSize(fileSize: size, configured: partSize)
        guard partBytes <= Self.maxPartSize else {
            throw .localFile(path: path, detail: "\(size) bytes is more than S3 takes in one object (10,000 parts of 5 GiB)")
        }
        var metadata = metadata
        let givenSHA1 = metadata["sha1"]?.lowercased()
        if let givenSHA1, !Hex.isSHA1(givenSHA1) {
            throw .invalidConfiguration("metadata sha1 '\(givenSHA1)' is not a SHA-1 hex digest")
        }
        let ranges: [(offset: Int64, length: Int64)] = stride(from: Int64(0), to: max(size, 1), by: Int(partBytes)).map { ($0, min(partBytes, size - $0)) }
        let tracker = UploadProgressTracker(total: size, report: progress)

        // One sequential read: the SHA-1 when the caller has none, and every part's MD5 (Content-MD5,
        // the expected ETags, and the test a listed part must pass to be reused).
        let digests = try await FileDigests.compute(path: path, ranges: size < partBytes ? [(Int64(0), size)] : ranges, sha1: givenSHA1 == nil)
        let sha1 = givenSHA1 ?? digests.sha1 ?? ""
        metadata["sha1"] = sha1

        if size < partBytes {
            return try await putSingle(path: path, key: key, size: size, md5: digests.partMD5s[0], sha1: sha1, metadata: metadata, tracker: tracker)
        }
        let plan = Plan(key: key, path: path, size: size, ranges: ranges, md5s: digests.partMD5s, sha1: sha1)
        return try await uploadMultipart(plan, metadata: metadata, tracker: tracker)
    }

    // MARK: One PutObject

    private func putSingle(path: String, key: String, size: Int64, md5: [UInt8], sha1: String, metadata: [String: String],
                           tracker: UploadProgressTracker) async throws(S3Error) -> S3UploadResult {
        tracker.report()
        let etag = try await client.putObject(key: key, file: FileRange(path: path, length: size), metadata: metadata, contentMD5: md5,
                                              maxBytesPerSecond: bytesPerSecond, progress: { transfer in
            tracker.inFlight(part: 1, bytes: transfer.uploaded)
            return true
        })
        tracker.confirmed(part: 1, bytes: size)
        let expected = Hex.encode(md5)
        try check(operation: "PutObject", key: key, etag: etag, expected: expected)
        try await checkStored(key: key, size: size, etag: expected, sha1: sha1)
        return S3UploadResult(key: key, size: size, etag: expected, parts: 1, sha1: sha1, resumedParts: 0)
    }

    // MARK: Multipart

    /// What a multipart upload of one file must end up as.
    struct Plan: Sendable {
        let key: String
        let path: String
        let size: Int64
        let ranges: [(offset: Int64, length: Int64)]
        /// Binary MD5 of each part, in order.
        let md5s: [[UInt8]]
        let sha1: String

        /// S3's ETag of the completed object: MD5 of the parts' binary MD5s, a dash, the part count.
        var expectedETag: String {
            let digest = StreamingDigest(.md5)
            for md5 in md5s { digest.update(md5) }
            return digest.hexDigest() + "-\(md5s.count)"
        }
    }

    private func uploadMultipart(_ plan: Plan, metadata: [String: String], tracker: UploadProgressTracker) async throws(S3Error) -> S3UploadResult {
        let resumable = try await resumableUpload(plan)
        let uploadID: String
        var done: [Int: S3Part] = [:]
        if let resumable {
            uploadID = resumable.uploadID
            done = resumable.parts
            logger.info("resuming S3 upload", metadata: ["s3.key": "\(plan.key)", "s3.parts_done": "\(done.count)", "s3.parts": "\(plan.ranges.count)"])
        } else {
            uploadID = try await client.createMultipartUpload(key: plan.key, metadata: metadata)
        }
        var completed = false
        do throws(S3Error) {
            for part in done.values { tracker.confirmed(part: part.number, bytes: part.size) }
            tracker.report()
            let sent = try await uploadParts(plan, uploadID: uploadID, skip: Set(done.keys), tracker: tracker)
            done.merge(sent) { _, new in new }
            let expected = plan.expectedETag
            do throws(S3Error) {
                let etag = try await client.completeMultipartUpload(key: plan.key, uploadID: uploadID, parts: Array(done.values))
                completed = true
                try check(operation: "CompleteMultipartUpload", key: plan.key, etag: etag, expected: expected)
            } catch where error.code == "NoSuchUpload" {
                // Complete may have succeeded with its answer lost and the retry finding the upload gone:
                // the HeadObject below tells.
                logger.info("S3 upload already completed or gone; checking the object", metadata: ["s3.key": "\(plan.key)"])
                completed = true
            }
            try await checkStored(key: plan.key, size: plan.size, etag: expected, sha1: plan.sha1)
            return S3UploadResult(key: plan.key, size: plan.size, etag: expected, parts: plan.ranges.count, sha1: plan.sha1, resumedParts: resumable?.parts.count ?? 0)
        } catch {
            if completed {
                // Nothing left to abort: the object exists, and the error says what is wrong with it.
            } else if error.leavesUploadForResume || Task.isCancelled {
                logger.info("S3 upload interrupted; left for the next run to resume", metadata: ["s3.key": "\(plan.key)", "error": "\(error)"])
            } else {
                logger.warning("S3 upload failed; aborting it", metadata: ["s3.key": "\(plan.key)", "error": "\(error)"])
                do { try await client.abortMultipartUpload(key: plan.key, uploadID: uploadID) } catch let abortError {
                    logger.warning("cannot abort the S3 upload", metadata: ["s3.key": "\(plan.key)", "error": "\(abortError)"])
                }
            }
            throw error
        }
    }

    /// The unfinished upload of exactly this key that can be continued, with the parts it holds that
    /// match the local file. The newest by `Initiated` is examined and every other one of the key aborted
    /// (only one can ever be completed). An upload listing a part that does not match — another part size,
    /// or a file that changed — is aborted too: its `sha1` metadata would describe the old file.
    private func resumableUpload(_ plan: Plan) async throws(S3Error) -> (uploadID: String, parts: [Int: S3Part])? {
        let uploads = try await client.listMultipartUploads(prefix: plan.key).filter { $0.key == plan.key }
            .sorted { ($0.initiated ?? .distantPast) > ($1.initiated ?? .distantPast) }
        guard let newest = uploads.first else { return nil }
        for stale in uploads.dropFirst() { try await abortQuietly(stale, reason: "an older unfinished upload of the same key") }

        let listed: [S3Part]
        do { listed = try await client.listParts(key: plan.key, uploadID: newest.uploadID) } catch where error.code == "NoSuchUpload" {
            return nil
        }
        let planned = Self.matchingParts(plan, listed: listed)
        guard !listed.isEmpty, planned.count == listed.count else {
            try await abortQuietly(newest, reason: listed.isEmpty ? "it holds no parts" : "its parts do not match the local file")
            return nil
        }
        return (newest.uploadID, planned)
    }

    /// Listed parts whose number is in the plan, whose size is the planned one and whose ETag is the MD5
    /// of that range of the local file: those can be completed as they are.
    private static func matchingParts(_ plan: Plan, listed: [S3Part]) -> [Int: S3Part] {
        var matching: [Int: S3Part] = [:]
        for part in listed where (1...plan.ranges.count).contains(part.number) && part.size == plan.ranges[part.number - 1].length
            && unquoted(part.etag) == Hex.encode(plan.md5s[part.number - 1]) {
            matching[part.number] = part
        }
        return matching
    }

    private func abortQuietly(_ upload: S3Upload, reason: String) async throws(S3Error) {
        logger.info("aborting an unfinished S3 upload", metadata: ["s3.key": "\(upload.key)", "s3.upload_id": "\(upload.uploadID)", "reason": "\(reason)"])
        do { try await client.abortMultipartUpload(key: upload.key, uploadID: upload.uploadID) } catch where error.code == "NoSuchUpload" {}
    }

    /// Sends the parts not in `skip`, `concurrency` at a time, each read from the file as it goes out.
    /// The first failure stops the other transfers (their progress callbacks refuse to go on).
    private func uploadParts(_ plan: Plan, uploadID: String, skip: Set<Int>, tracker: UploadProgressTracker) async throws(S3Error) -> [Int: S3Part] {
        let queue = PartNumbers((1...plan.ranges.count).filter { !skip.contains($0) })
        let workers = max(1, min(concurrency, plan.ranges.count - skip.count))
        let perConnectionRate = bytesPerSecond.map { max(1, $0 / Int64(workers)) }
        let stop = StopFlag()
        do {
            return try await withThrowingTaskGroup(of: [Int: S3Part].self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        var sent: [Int: S3Part] = [:]
                        while !stop.isSet, let number = queue.next() {
                            let range = plan.ranges[number - 1]
                            let md5 = plan.md5s[number - 1]
                            let etag = try await self.client.uploadPart(key: plan.key, uploadID: uploadID, partNumber: number,
                                                                        file: FileRange(path: plan.path, offset: range.offset, length: range.length),
                                                                        contentMD5: md5, maxBytesPerSecond: perConnectionRate) { transfer in
                                tracker.inFlight(part: number, bytes: transfer.uploaded)
                                return !stop.isSet
                            }
                            try self.check(operation: "UploadPart", key: "\(plan.key) part \(number)", etag: etag, expected: Hex.encode(md5))
                            tracker.confirmed(part: number, bytes: range.length)
                            sent[number] = S3Part(number: number, etag: etag, size: range.length)
                        }
                        return sent
                    }
                }
                var all: [Int: S3Part] = [:]
                do {
                    for try await sent in group { all.merge(sent) { _, new in new } }
                } catch {
                    stop.set()
                    throw error
                }
                return all
            }
        } catch let error as S3Error {
            throw error
        } catch {
            throw .invalidResponse(operation: "UploadPart", detail: "interrupted: \(error)") // only S3Error is thrown in the group
        }
    }

    // MARK: Checks

    private func check(operation: String, key: String, etag: String, expected: String) throws(S3Error) {
        guard Self.unquoted(etag) == expected else {
            throw .integrity(operation: operation, detail: "S3 answered ETag \(etag) for '\(key)'; expected \(expected)")
        }
    }

    /// HeadObject: the stored object's size, ETag and sha1 metadata must be what we sent.
    private func checkStored(key: String, size: Int64, etag: String, sha1: String) async throws(S3Error) {
        let info = try await client.headObject(key: key)
        var problems: [String] = []
        if info.size != size { problems.append("\(info.size) bytes instead of \(size)") }
        if Self.unquoted(info.etag) != etag { problems.append("ETag \(info.etag) instead of \(etag)") }
        if info.metadata["sha1"]?.lowercased() != sha1 { problems.append("sha1 metadata \(info.metadata["sha1"] ?? "none") instead of \(sha1)") }
        guard problems.isEmpty else {
            throw .integrity(operation: "HeadObject", detail: "'\(key)' was stored with " + problems.joined(separator: ", "))
        }
    }

    static func unquoted(_ etag: String) -> String {
        etag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
    }
}

extension S3Error {
    /// Errors after which an unfinished multipart upload is worth keeping for the next run: the network,
    /// a store that stayed busy, a cancelled task. Anything S3 refused outright, or that failed a check,
    /// would fail the same way again, so its upload is aborted.
    var leavesUploadForResume: Bool {
        switch self {
        case .transport, .retriesExhausted: true
        case .service: isTransient
        case .integrity, .invalidResponse, .invalidConfiguration, .localFile: false
        }
    }
}

/// Set once when one part fails, so the other workers stop taking and sending parts.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

/// Hands out part numbers to the workers, lowest first.
final class PartNumbers: Sendable {
    private let numbers: Mutex<[Int]>
    init(_ numbers: [Int]) { self.numbers = Mutex(numbers.reversed()) }
    func next() -> Int? { numbers.withLock { $0.popLast() } }
}

/// Bytes confirmed plus bytes in flight, reported to the caller; in-flight reports at most every 250 ms.
final class UploadProgressTracker: Sendable {
    private struct State {
        var confirmed: [Int: Int64] = [:]
        var inFlight: [Int: Int64] = [:]
        var lastReport: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    private let total: Int64
    private let callback: @Sendable (Int64, Int64) -> Void

    init(total: Int64, report: @escaping @Sendable (Int64, Int64) -> Void) {
        self.total = total
        self.callback = report
    }

    func report() { emit(force: true) { _ in } }

    /// Keyed by part, so a part confirmed twice (a retried Complete) is not counted twice.
    func confirmed(part: Int, bytes: Int64) {
        emit(force: true) {
            $0.inFlight[part] = nil
            $0.confirmed[part] = bytes
        }
    }

    func inFlight(part: Int, bytes: Int64) { emit { $0.inFlight[part] = bytes } }

    private func emit(force: Bool = false, _ update: (inout State) -> Void) {
        let done = state.withLock { state -> Int64? in
            update(&state)
            let now = ContinuousClock.now
            if !force, let last = state.lastReport, now - last < .milliseconds(250) { return nil }
            state.lastReport = now
            return min(total, state.confirmed.values.reduce(0, +) + state.inFlight.values.reduce(0, +))
        }
        if let done { callback(done, total) }
    }
}
