import B2Client
import B2Simulator
import Foundation
import Hashing
import Logging

let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Fast retries for tests: same rules, millisecond backoff.
let testRetryPolicy = RetryPolicy(maxAttempts: 6, baseDelay: .milliseconds(5), maxDelay: .milliseconds(50))

let bucketName = "ha-backups"
let keyID = "0041234567890ab0000000001"
let applicationKey = "K004-test-application-key"

/// A temporary folder removed afterwards.
final class TemporaryDirectory: Sendable {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("b2test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Writes `size` pseudo-random bytes (deterministic per seed) in 1 MiB chunks.
func writeRandomFile(_ path: String, size: Int, seed: UInt64 = 42) throws {
    _ = FileManager.default.createFile(atPath: path, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    var state = seed
    var remaining = size
    while remaining > 0 {
        let count = min(remaining, 1 << 20)
        var chunk = [UInt8](repeating: 0, count: count)
        for index in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            chunk[index] = UInt8(truncatingIfNeeded: state >> 33)
        }
        try handle.write(contentsOf: chunk)
        remaining -= count
    }
}

func sha1(ofFile path: String) throws -> String {
    StreamingDigest.sha1Hex([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
}

/// A simulator with one bucket-restricted key, small part sizes so tests stay small, and a client for it.
/// - Parameter objectLock: the key's bucket has Object Lock.
func withSimulator<T>(recommendedPartSize: Int = 1_000_000, minimumPartSize: Int = 100_000,
                      capabilities: [String] = B2Simulator.Account.bucketKeyCapabilities, objectLock: Bool = false,
                      _ body: (B2Simulator, B2Client, TemporaryDirectory) async throws -> T) async throws -> T {
    let directory = try TemporaryDirectory()
    let storage = directory.url.appendingPathComponent("simulator")
    try FileManager.default.createDirectory(at: storage, withIntermediateDirectories: true)
    let account = B2Simulator.Account(keyID: keyID, applicationKey: applicationKey, restrictedToBucket: bucketName,
                                      capabilities: capabilities)
    let simulator = try B2Simulator(configuration: .init(accounts: [account], buckets: [bucketName, "other-bucket"],
                                                         recommendedPartSize: recommendedPartSize, absoluteMinimumPartSize: minimumPartSize,
                                                         storageDirectory: storage, objectLockBuckets: objectLock ? [bucketName] : []), logger: quietLogger)
    simulator.start()
    let client = B2Client(credentials: B2Credentials(keyID: keyID, applicationKey: applicationKey), realm: simulator.realmURL,
                          retryPolicy: testRetryPolicy, logger: quietLogger)
    do {
        let result = try await body(simulator, client, directory)
        await simulator.shutdown()
        return result
    } catch {
        await simulator.shutdown()
        throw error
    }
}

/// An in-memory upload journal, to drive the engine's resume decisions directly.
actor MemoryJournal: UploadJournal {
    var records: [String: LargeUploadRecord] = [:]
    var parts: [String: [Int: String]] = [:]

    func record(bucketID: String, fileName: String) -> LargeUploadRecord? { records["\(bucketID)/\(fileName)"] }
    func save(_ record: LargeUploadRecord) { records["\(record.bucketID)/\(record.fileName)"] = record }
    func partConfirmed(fileID: String, partNumber: Int, sha1: String) { parts[fileID, default: [:]][partNumber] = sha1 }
    func confirmedParts(fileID: String) -> [Int: String] { parts[fileID] ?? [:] }
    func remove(fileID: String) {
        records = records.filter { $0.value.fileID != fileID }
        parts[fileID] = nil
    }
    var isEmpty: Bool { records.isEmpty }
}
