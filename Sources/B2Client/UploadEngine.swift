import Foundation
import HTTPClient
import Logging
import Synchronization

/// A large upload in progress, as the engine records it so a restart (even after kill -9) resumes it.
public struct LargeUploadRecord: Sendable, Hashable, Codable {
    public var bucketID: String
    public var fileName: String
    public var fileID: String
    public var localPath: String
    public var fileSize: Int64
    public var modifiedMillis: Int64
    public var partSize: Int64
    /// SHA-1 of the whole file (`large_file_sha1`).
    public var sha1: String
    /// Expected SHA-1 of each part, in order.
    public var partSHA1s: [String]

    public init(bucketID: String, fileName: String, fileID: String, localPath: String, fileSize: Int64, modifiedMillis: Int64,
                partSize: Int64, sha1: String, partSHA1s: [String]) {
        self.bucketID = bucketID
        self.fileName = fileName
        self.fileID = fileID
        self.localPath = localPath
        self.fileSize = fileSize
        self.modifiedMillis = modifiedMillis
        self.partSize = partSize
        self.sha1 = sha1
        self.partSHA1s = partSHA1s
    }
}

/// Where the upload engine keeps its resume state. The engine owns this protocol; the app backs it with SQLite.
public protocol UploadJournal: Sendable {
    func record(bucketID: String, fileName: String) async throws -> LargeUploadRecord?
    func save(_ record: LargeUploadRecord) async throws
    /// Called as each part is confirmed by B2, before the next step depends on it.
    func partConfirmed(fileID: String, partNumber: Int, sha1: String) async throws
    func confirmedParts(fileID: String) async throws -> [Int: String]
    func remove(fileID: String) async throws
}

public struct UploadOptions: Sendable {
    /// Parts in flight at once, each with its own upload URL.
    public var concurrency: Int
    /// Forces a part size (bytes); nil uses B2's `recommendedPartSize`.
    public var partSize: Int64?
    /// Cap on the total upload rate over all connections.
    public var maxBytesPerSecond: Int64?
    public var contentType: String
    /// Extra file info (`X-Bz-Info-*`), e.g. catalog metadata.
    public var fileInfo: [String: String]
    /// Object Lock retention for the uploaded file; the bucket must have Object Lock and the key `writeFileRetentions`.
    /// B2 then allows only 2048 bytes of name plus file info.
    public var retention: B2FileRetention?

    public init(concurrency: Int = 4, partSize: Int64? = nil, maxBytesPerSecond: Int64? = nil, contentType: String = "application/x-tar",
                fileInfo: [String: String] = [:], retention: B2FileRetention? = nil) {
        self.concurrency = concurrency
        self.partSize = partSize
        self.maxBytesPerSecond = maxBytesPerSecond
        self.contentType = contentType
        self.fileInfo = fileInfo
        self.retention = retention
    }
}

public struct UploadProgress: Sendable, Hashable {
    public enum Phase: String, Sendable { case hashing, uploading, finishing, done }
    public var phase: Phase
    public var bytesDone: Int64
    public var totalBytes: Int64
    /// Over the bytes sent in this run (resumed bytes are not counted as speed).
    public var bytesPerSecond: Double
    public var secondsRemaining: Double?
}

public struct UploadResult: Sendable {
    public let file: B2File
    public let sha1: String
    public let partCount: Int
    /// Parts that were already in B2 from an earlier, interrupted run.
    public let resumedParts: Int
}

/// Uploads a file to B2: small files in one `b2_upload_file`, larger ones as parallel parts with bounded
/// memory, Backblaze's retry rules, SHA-1 on every part and on the whole file, and resume across restarts.
public final class UploadEngine: Sendable {
    /// B2 refuses simple uploads above 5 GB and parts above 5 GB.
    public static let maxSimpleUpload: Int64 = 5_000_000_000
    public static let maxPartSize: Int64 = 5_000_000_000
    public static let maxParts: Int64 = 10_000
    /// File info key that marks files this engine started (stale ones of ours may be cancelled).
    public static let markerKey = "uploaded_by"
    public static let markerValue = "b2-backup"

    let client: B2Client
    let journal: (any UploadJournal)?
    let logger: Logger

    public init(client: B2Client, journal: (any UploadJournal)?, logger: Logger) {
        self.client = client
        self.journal = journal
        self.logger = logger
    }

    /// The part size for a file: B2's recommendation (or the override), raised so no file needs more than
    /// 10,000 parts, never below B2's absolute minimum.
    public static func partSize(fileSize: Int64, recommended: Int64, minimum: Int64, override: Int64?) throws(B2Error) -> Int64 {
        if let override, override < minimum || override > maxPartSize {
            throw B2Error.invalidRequest("part size \(override) is outside B2's limits (\(minimum) to \(maxPartSize) bytes)")
        }
        let needed = (fileSize + maxParts - 1) / maxParts
        let size = max(override ?? recommended, needed, minimum)
        guard size <= maxPartSize else { throw B2Error.invalidRequest("a file of \(fileSize) bytes is larger than B2 allows (10,000 parts of 5 GB)") }
        return size
    }

    /// The file B2 already holds under `fileName` with the same size, the same `info` values and the same
    /// SHA-1 as the local file, if any: a run that stopped after its upload finished does not upload twice.
    public func existing(path: String, bucket: B2Bucket, fileName: String, info: [String: String]) async throws(B2Error) -> UploadResult? {
        let local = try LocalFile.stat(path)
        let candidates = try await client.listFileNames(bucketID: bucket.bucketId, prefix: fileName, pageSize: 10).filter { file in
            file.fileName == fileName && (file.action ?? "upload") == "upload" && file.contentLength == local.size
                && info.allSatisfy { key, value in file.fileInfo?[key] == value }
        }
        guard let file = candidates.first, let remoteSHA1 = file.sha1 else { return nil }
        let sha1 = try await FileHasher.sha1(path: path)
        guard sha1.lowercased() == remoteSHA1.lowercased() else { return nil }
        return UploadResult(file: file, sha1: sha1, partCount: 0, resumedParts: 0)
    }

    public func upload(path: String, bucket: B2Bucket, fileName: String, options: UploadOptions = UploadOptions(),
                       progress: (@Sendable (UploadProgress) -> Void)? = nil) async throws(B2Error) -> UploadResult {
        let local = try LocalFile.stat(path)
        let auth = try await client.authorized()
        let partSize = try Self.partSize(fileSize: local.size, recommended: auth.recommendedPartSize, minimum: auth.absoluteMinimumPartSize, override: options.partSize)
        let tracker = ProgressTracker(total: local.size, report: progress)
        var info = options.fileInfo
        info["src_last_modified_millis"] = String(local.modifiedMillis)
        info[Self.markerKey] = Self.markerValue

        // Two parts at least, and each but the last at least the minimum: otherwise one simple upload.
        if local.size <= partSize || local.size < 2 * auth.absoluteMinimumPartSize {
            guard local.size <= Self.maxSimpleUpload else { throw B2Error.invalidRequest("cannot split \(path) into parts") }
            tracker.phase(.hashing)
            let sha1 = try await FileHasher.sha1(path: path)
            tracker.phase(.uploading)
            let file = try await uploadSmall(local, bucket: bucket, fileName: fileName, sha1: sha1, info: info, options: options, tracker: tracker)
            tracker.phase(.done)
            return UploadResult(file: file, sha1: sha1, partCount: 1, resumedParts: 0)
        }
        return try await uploadLarge(local, bucket: bucket, fileName: fileName, partSize: partSize, info: info, options: options, tracker: tracker)
    }

    // MARK: Small files

    private func uploadSmall(_ local: LocalFile, bucket: B2Bucket, fileName: String, sha1: String, info: [String: String],
                             options: UploadOptions, tracker: ProgressTracker) async throws(B2Error) -> B2File {
        var target: B2UploadTarget?
        let range = FileRange(path: local.path, length: local.size)
        let file = try await withUploadRetries("b2_upload_file", target: &target, newTarget: { () throws(B2Error) in try await self.client.uploadURL(bucketID: bucket.bucketId) }) { (target) throws(B2Error) -> B2File in
            defer { tracker.inFlight(part: 1, bytes: 0) }
            return try await self.client.uploadFile(to: target, fileName: fileName, range: range, sha1: sha1, contentType: options.contentType, fileInfo: info,
                                                    retention: options.retention, maxBytesPerSecond: options.maxBytesPerSecond, progress: { progress in
                tracker.inFlight(part: 1, bytes: progress.uploaded)
                return true
            })
        }
        guard file.contentSha1 == sha1, file.contentLength == local.size else {
            throw B2Error.integrity("B2 stored \(file.contentLength ?? -1) bytes with SHA-1 \(file.contentSha1 ?? "none") for \(fileName); expected \(local.size) bytes with \(sha1)")
        }
        tracker.confirmed(local.size)
        return file
    }

    // MARK: Large files

    private func uploadLarge(_ local: LocalFile, bucket: B2Bucket, fileName: String, partSize: Int64, info: [String: String],
                             options: UploadOptions, tracker: ProgressTracker) async throws(B2Error) -> UploadResult {
        var record = try await resumableRecord(local, bucket: bucket, fileName: fileName)
        var done: [Int: String] = [:]
        if let existing = record {
            do {
                done = try await confirmedParts(existing)
                logger.info("resuming upload", metadata: ["b2.file_name": "\(fileName)", "b2.parts_done": "\(done.count)", "b2.parts": "\(existing.partSHA1s.count)"])
            } catch where error.status == 400 || error.status == 404 {
                // B2 no longer has it (cancelled, or removed by a lifecycle rule): start over.
                logger.info("the interrupted upload is gone from B2; starting over", metadata: ["b2.file_name": "\(fileName)", "error": "\(error)"])
                try await journalDo { try await $0.remove(fileID: existing.fileID) }
                record = nil
            }
        }
        if record == nil {
            tracker.phase(.hashing)
            let hashes = try await FileHasher.hash(path: local.path, partSize: partSize) { tracker.hashed($0) }
            var fileInfo = info
            fileInfo["large_file_sha1"] = hashes.whole
            try await cancelStaleUploads(bucket: bucket, fileName: fileName)
            let started = try await client.startLargeFile(bucketID: bucket.bucketId, fileName: fileName, contentType: options.contentType, fileInfo: fileInfo,
                                                          retention: options.retention)
            guard let fileID = started.fileId else { throw B2Error.invalidResponse(operation: "b2_start_large_file", detail: "no fileId") }
            let new = LargeUploadRecord(bucketID: bucket.bucketId, fileName: fileName, fileID: fileID, localPath: local.path, fileSize: local.size,
                                        modifiedMillis: local.modifiedMillis, partSize: partSize, sha1: hashes.whole, partSHA1s: hashes.parts)
            try await journalDo { try await $0.save(new) }
            record = new
        }
        guard let record else { throw B2Error.invalidRequest("internal: no upload record") }
        let resumed = done.count
        let ranges = (0..<record.partSHA1s.count).map { index in
            FileRange(path: local.path, offset: Int64(index) * record.partSize, length: min(record.partSize, local.size - Int64(index) * record.partSize))
        }
        tracker.confirmed(done.keys.reduce(0) { $0 + ranges[$1 - 1].length })
        tracker.phase(.uploading)
        try await uploadParts(record, ranges: ranges, skip: Set(done.keys), options: options, tracker: tracker)

        tracker.phase(.finishing)
        let file = try await finish(record, ranges: ranges, options: options, tracker: tracker)
        try await journalDo { try await $0.remove(fileID: record.fileID) }
        tracker.phase(.done)
        return UploadResult(file: file, sha1: record.sha1, partCount: ranges.count, resumedParts: resumed)
    }

    /// The journal's record for this name, if it still describes this file and B2 still has the upload.
    private func resumableRecord(_ local: LocalFile, bucket: B2Bucket, fileName: String) async throws(B2Error) -> LargeUploadRecord? {
        guard let journal else { return nil }
        let stored: LargeUploadRecord?
        do { stored = try await journal.record(bucketID: bucket.bucketId, fileName: fileName) } catch {
            throw B2Error.invalidRequest("cannot read the upload journal: \(error)")
        }
        guard let stored else { return nil }
        if stored.fileSize == local.size, stored.modifiedMillis == local.modifiedMillis, stored.localPath == local.path {
            return stored
        }
        logger.info("the file changed since the interrupted upload; starting over", metadata: ["b2.file_name": "\(fileName)"])
        try? await client.cancelLargeFile(fileID: stored.fileID)
        try await journalDo { try await $0.remove(fileID: stored.fileID) }
        return nil
    }

    /// Parts B2 holds with the SHA-1 we expect. B2 is the truth; the journal only says what to ask about.
    private func confirmedParts(_ record: LargeUploadRecord) async throws(B2Error) -> [Int: String] {
        let parts = try await client.listParts(fileID: record.fileID)
        var done: [Int: String] = [:]
        for part in parts where part.partNumber >= 1 && part.partNumber <= record.partSHA1s.count
            && part.contentSha1 == record.partSHA1s[part.partNumber - 1] {
            done[part.partNumber] = part.contentSha1
        }
        return done
    }

    /// Cancels unfinished large files of ours with the same name: left by an upload of other content.
    private func cancelStaleUploads(bucket: B2Bucket, fileName: String) async throws(B2Error) {
        let unfinished = try await client.listUnfinishedLargeFiles(bucketID: bucket.bucketId, prefix: fileName)
        for file in unfinished where file.fileName == fileName && file.fileInfo?[Self.markerKey] == Self.markerValue {
            guard let id = file.fileId else { continue }
            logger.info("cancelling a stale unfinished upload", metadata: ["b2.file_name": "\(fileName)", "b2.file_id": "\(id)"])
            try await client.cancelLargeFile(fileID: id)
        }
    }

    private func uploadParts(_ record: LargeUploadRecord, ranges: [FileRange], skip: Set<Int>, options: UploadOptions, tracker: ProgressTracker) async throws(B2Error) {
        let queue = PartQueue(parts: (1...ranges.count).filter { !skip.contains($0) })
        let workers = max(1, min(options.concurrency, ranges.count - skip.count))
        let perConnectionRate = options.maxBytesPerSecond.map { max(1, $0 / Int64(workers)) }
        let abort = AbortFlag()
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        var target: B2UploadTarget? // each worker has its own upload URL
                        while let number = await queue.next() {
                            if abort.isSet { return }
                            let range = ranges[number - 1]
                            let sha1 = record.partSHA1s[number - 1]
                            let part = try await self.withUploadRetries("b2_upload_part", target: &target, newTarget: { () throws(B2Error) in try await self.client.uploadPartURL(fileID: record.fileID) }) { (target) throws(B2Error) -> B2Part in
                                defer { tracker.inFlight(part: number, bytes: 0) }
                                return try await self.client.uploadPart(to: target, partNumber: number, range: range, sha1: sha1, maxBytesPerSecond: perConnectionRate) { progress in
                                    tracker.inFlight(part: number, bytes: progress.uploaded)
                                    return !abort.isSet
                                }
                            }
                            guard part.contentSha1 == sha1, part.contentLength == range.length else {
                                throw B2Error.integrity("B2 confirmed part \(number) with \(part.contentLength) bytes and SHA-1 \(part.contentSha1); expected \(range.length) bytes with \(sha1)")
                            }
                            try await self.journalDo { try await $0.partConfirmed(fileID: record.fileID, partNumber: number, sha1: sha1) }
                            tracker.confirmed(range.length)
                        }
                    }
                }
                do {
                    try await group.waitForAll()
                } catch {
                    abort.set() // stops the other workers' transfers at their next progress tick
                    throw error
                }
            }
        } catch let error as B2Error {
            throw error
        } catch {
            throw B2Error.invalidRequest("upload interrupted: \(error)")
        }
    }

    /// `b2_finish_large_file`; if B2 reports missing or wrong parts, re-uploads those once and finishes again.
    private func finish(_ record: LargeUploadRecord, ranges: [FileRange], options: UploadOptions, tracker: ProgressTracker) async throws(B2Error) -> B2File {
        var file: B2File
        do {
            file = try await client.finishLargeFile(fileID: record.fileID, partSHA1s: record.partSHA1s)
        } catch where error.code == "missing_part" || error.code == "part_sha1_mismatch" {
            let present = try await confirmedParts(record)
            logger.warning("B2 is missing parts at finish; uploading them again", metadata: ["b2.parts_present": "\(present.count)"])
            try await uploadParts(record, ranges: ranges, skip: Set(present.keys), options: options, tracker: tracker)
            file = try await client.finishLargeFile(fileID: record.fileID, partSHA1s: record.partSHA1s)
        }
        // Success is B2's own word: the stored length and the whole-file SHA-1 it holds.
        guard file.contentLength == nil || file.contentLength == record.fileSize, file.fileInfo?["large_file_sha1"] == record.sha1 else {
            throw B2Error.integrity("B2 finished \(record.fileName) with \(file.contentLength ?? -1) bytes and large_file_sha1 \(file.fileInfo?["large_file_sha1"] ?? "none"); expected \(record.fileSize) bytes with \(record.sha1)")
        }
        return file
    }

    // MARK: Retries for upload calls

    /// Backblaze's upload rule: after 401, 408, 5xx or a broken connection, get a new upload URL and send
    /// again; after 429, wait what `Retry-After` says; other errors are permanent.
    func withUploadRetries<T>(_ operation: String, target: inout B2UploadTarget?, newTarget: () async throws(B2Error) -> B2UploadTarget,
                              _ attempt: (B2UploadTarget) async throws(B2Error) -> T) async throws(B2Error) -> T {
        let policy = client.retryPolicy
        var tries = 0
        while true {
            tries += 1
            let current: B2UploadTarget
            if let target { current = target } else {
                current = try await newTarget()
                target = current
            }
            do {
                return try await attempt(current)
            } catch where error.needsNewUploadURL || error.isTransient {
                if error.needsNewUploadURL { target = nil }
                guard tries < policy.maxAttempts else {
                    throw B2Error.retriesExhausted(operation: operation, attempts: tries, last: error.description)
                }
                let retryAfter: Int? = if case .service(_, _, _, _, let value) = error { value } else { nil }
                // A new URL is a new server: try it at once the first time, back off after that.
                let wait: Duration = (error.needsNewUploadURL && tries == 1) ? .zero : policy.delay(afterAttempt: tries, retryAfter: retryAfter)
                logger.info("upload call failed, retrying", metadata: ["b2.operation": "\(operation)", "error": "\(error)", "retry.in": "\(wait)", "retry.new_url": "\(target == nil)"])
                if wait > .zero { try? await Task.sleep(for: wait) }
            }
        }
    }

    private func journalDo(_ body: (any UploadJournal) async throws -> Void) async throws(B2Error) {
        guard let journal else { return }
        do { try await body(journal) } catch {
            throw B2Error.invalidRequest("cannot write the upload journal: \(error)")
        }
    }
}

/// Set once when one worker fails, so the others stop sending.
final class AbortFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

/// Hands out part numbers to workers.
actor PartQueue {
    private var parts: [Int]
    init(parts: [Int]) { self.parts = parts.reversed() }
    func next() -> Int? { parts.popLast() }
}

/// Bytes confirmed plus bytes in flight, turned into progress reports at most every 250 ms.
final class ProgressTracker: Sendable {
    private struct State {
        var phase: UploadProgress.Phase = .hashing
        var confirmed: Int64 = 0
        var confirmedAtStart: Int64?
        var inFlight: [Int: Int64] = [:]
        var startedAt: ContinuousClock.Instant?
        var lastReport: ContinuousClock.Instant?
        var hashed: Int64 = 0
    }

    private let state = Mutex(State())
    private let total: Int64
    private let report: (@Sendable (UploadProgress) -> Void)?

    init(total: Int64, report: (@Sendable (UploadProgress) -> Void)?) {
        self.total = total
        self.report = report
    }

    func phase(_ phase: UploadProgress.Phase) {
        let snapshot = state.withLock { state -> UploadProgress in
            state.phase = phase
            if phase == .uploading, state.startedAt == nil {
                state.startedAt = .now
                state.confirmedAtStart = state.confirmed
            }
            return snapshotLocked(&state)
        }
        report?(snapshot)
    }

    func hashed(_ bytes: Int64) { emit { $0.hashed = bytes } }
    func confirmed(_ bytes: Int64) { emit(force: true) { $0.confirmed += bytes } }
    func inFlight(part: Int, bytes: Int64) { emit { $0.inFlight[part] = bytes == 0 ? nil : bytes } }

    private func emit(force: Bool = false, _ update: (inout State) -> Void) {
        let snapshot = state.withLock { state -> UploadProgress? in
            update(&state)
            let now = ContinuousClock.now
            if !force, let last = state.lastReport, now - last < .milliseconds(250) { return nil }
            state.lastReport = now
            return snapshotLocked(&state)
        }
        if let snapshot { report?(snapshot) }
    }

    private func snapshotLocked(_ state: inout State) -> UploadProgress {
        if state.phase == .hashing {
            return UploadProgress(phase: .hashing, bytesDone: state.hashed, totalBytes: total, bytesPerSecond: 0, secondsRemaining: nil)
        }
        let done = min(total, state.confirmed + state.inFlight.values.reduce(0, +))
        var rate = 0.0
        if let started = state.startedAt {
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if seconds > 0 { rate = Double(done - (state.confirmedAtStart ?? 0)) / seconds }
        }
        let remaining = rate > 0 ? Double(total - done) / rate : nil
        return UploadProgress(phase: state.phase, bytesDone: state.phase == .done ? total : done, totalBytes: total, bytesPerSecond: rate, secondsRemaining: remaining)
    }
}
