import B2Client
import BackupArchive
import Core
import Foundation
import Hashing
import Logging
import Synchronization

/// A backup in a remote store (B2 or S3) read as a `ByteSource`: ranges fetched on demand, in chunks. When
/// the reads come in order (a full check reads every byte once, in order) the bytes are hashed on the way, so
/// the whole-file SHA-1 is checked without a second pass and without storing the file.
final class RemoteByteSource: ByteSource {
    /// Reads one range of the object into memory (a ranged GET).
    typealias Fetch = @Sendable (ClosedRange<Int64>) async throws -> [UInt8]
    let fetch: Fetch
    let size: Int64
    /// Bytes per ranged GET: few requests, bounded memory.
    static let chunkSize = 8 << 20

    private struct State {
        var chunk: (offset: Int64, bytes: [UInt8])?
        var digest = StreamingDigest(.sha1)
        var finalHex: String?
        /// Bytes hashed so far; hashing stops for good when a read goes backwards or skips ahead.
        var hashedUpTo: Int64 = 0
        var sequential = true
        var fetched: Int64 = 0
    }
    private let state = Mutex(State())

    init(size: Int64, fetch: @escaping Fetch) {
        self.fetch = fetch
        self.size = size
    }

    func read(offset: Int64, length: Int) async throws -> [UInt8] {
        let end = min(size, offset + Int64(max(0, length)))
        guard offset < end else { return [] }
        var result: [UInt8] = []
        var position = offset
        while position < end {
            let cached = state.withLock { state -> [UInt8]? in
                guard let chunk = state.chunk, position >= chunk.offset, position < chunk.offset + Int64(chunk.bytes.count) else { return nil }
                let start = Int(position - chunk.offset)
                return Array(chunk.bytes[start..<min(chunk.bytes.count, start + Int(end - position))])
            }
            if let cached {
                result += cached
                position += Int64(cached.count)
                continue
            }
            let chunkEnd = min(size, position + Int64(Self.chunkSize)) - 1
            let bytes = try await fetch(position...chunkEnd)
            guard !bytes.isEmpty else { throw PortError(code: "invalid_response", message: "the store sent no bytes at offset \(position)") }
            state.withLock { state in
                state.fetched += Int64(bytes.count)
                if state.sequential, position == state.hashedUpTo {
                    state.digest.update(bytes)
                    state.hashedUpTo += Int64(bytes.count)
                } else {
                    state.sequential = false
                }
                state.chunk = (position, bytes)
            }
        }
        return result
    }

    /// The SHA-1 of the whole file, when every byte passed through in order; nil otherwise.
    var wholeFileSHA1: String? {
        state.withLock { state in
            guard state.sequential, state.hashedUpTo == size else { return nil }
            if state.finalHex == nil { state.finalHex = state.digest.hexDigest() }
            return state.finalHex
        }
    }

    var bytesFetched: Int64 { state.withLock { $0.fetched } }
}

/// The restorability check against a remote store: streams the backup (or only its headers in quick mode)
/// through the verifier, and in full mode also matches the whole-file SHA-1 with the catalog's.
struct RemoteRestorabilityChecker: RestorabilityChecker {
    /// "B2" or "S3", for the problems' words.
    let storeName: String
    let mode: VerificationMode
    let clock: any WallClock
    let logger: Logger
    /// How to read ranges of one object, by its full name.
    let reader: @Sendable (_ fileName: String) -> RemoteByteSource.Fetch

    /// Reads from B2 with ranged downloads by name.
    init(store: B2RemoteStore, mode: VerificationMode, clock: any WallClock, logger: Logger) {
        self.init(storeName: "B2", mode: mode, clock: clock, logger: logger) { [client = store.client, bucket = store.bucketName] fileName in
            { range in try await client.read(.name(bucket: bucket, fileName: fileName), range: range) }
        }
    }

    init(storeName: String, mode: VerificationMode, clock: any WallClock, logger: Logger,
         reader: @escaping @Sendable (_ fileName: String) -> RemoteByteSource.Fetch) {
        self.storeName = storeName
        self.mode = mode
        self.clock = clock
        self.logger = logger
        self.reader = reader
    }

    func check(fileName: String, size: Int64, sha1: String?, slug: String?, password: String?) async -> RestorabilityCheck {
        let source = RemoteByteSource(size: size, fetch: reader(fileName))
        let report = await BackupVerifier.verify(source, mode: mode, expectedSlug: slug, password: password)
        var verdict = report.verdict.rawValue
        var problems = report.problems
        if mode == .full, let sha1 {
            if let streamed = source.wholeFileSHA1 {
                if streamed.lowercased() != sha1.lowercased() {
                    verdict = VerificationReport.Verdict.notRestorable.rawValue
                    problems.append("the file in \(storeName) has SHA-1 \(streamed), the catalog records \(sha1)")
                }
            } else if report.verdict != .notRestorable {
                problems.append("the whole file could not be hashed in one pass")
                verdict = VerificationReport.Verdict.notRestorable.rawValue
            }
        }
        logger.debug("restorability check read", metadata: ["store": "\(storeName)", "file_name": "\(fileName)", "bytes": "\(source.bytesFetched)"])
        return RestorabilityCheck(at: clock.now(), mode: mode.rawValue, verdict: verdict, problems: problems)
    }
}
