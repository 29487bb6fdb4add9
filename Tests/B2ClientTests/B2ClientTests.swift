import B2Client
import B2Simulator
import Foundation
import HTTPClient
import Testing

@Suite(.timeLimit(.minutes(2)))
struct B2ClientTests {
    @Test func authorizesAndFindsTheBucketOfARestrictedKey() async throws {
        try await withSimulator { _, client, _ in
            let auth = try await client.authorize()
            #expect(auth.allowedBuckets?.map(\.name) == [bucketName])
            #expect(auth.recommendedPartSize == 1_000_000)
            let bucket = try await client.bucket(named: bucketName)
            #expect(bucket.bucketName == bucketName)
            await #expect { try await client.bucket(named: "other-bucket") } throws: { error in
                "\(error)".contains("restricted to bucket \(bucketName)")
            }
        }
    }

    @Test func aWrongKeyFailsFastWithWhatToCheck() async throws {
        try await withSimulator { simulator, _, _ in
            let wrong = B2Client(credentials: B2Credentials(keyID: keyID, applicationKey: "nope"), realm: simulator.realmURL,
                                 retryPolicy: testRetryPolicy, logger: quietLogger)
            await #expect { try await wrong.authorize() } throws: { error in
                let text = "\(error)"
                return (error as? B2Error)?.status == 401 && text.contains("b2_key_id") && !text.contains("nope")
            }
            #expect(await simulator.requestCount("b2_authorize_account") == 1) // no retries on a wrong key
        }
    }

    @Test(arguments: [0, 1, 99_999, 250_000])
    func smallFilesRoundTripByteForByte(size: Int) async throws {
        try await withSimulator { _, client, directory in
            let source = directory.path("small.tar")
            try writeRandomFile(source, size: size)
            let bucket = try await client.bucket(named: bucketName)
            let engine = UploadEngine(client: client, journal: nil, logger: quietLogger)
            let result = try await engine.upload(path: source, bucket: bucket, fileName: "homeassistant/small backup+1 ✓.tar")
            #expect(result.partCount == 1)
            #expect(result.sha1 == (try sha1(ofFile: source)))
            let copy = directory.path("copy.tar")
            let download = try await DownloadEngine(client: client, logger: quietLogger)
                .download(.name(bucket: bucketName, fileName: "homeassistant/small backup+1 ✓.tar"), to: copy)
            #expect(download.bytes == Int64(size))
            #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == Data(contentsOf: URL(fileURLWithPath: source)))
            let byID = directory.path("by-id.tar")
            _ = try await DownloadEngine(client: client, logger: quietLogger).download(.id(result.file.fileId!), to: byID)
            #expect(try sha1(ofFile: byID) == result.sha1)
        }
    }

    @Test func largeFileUploadsInParallelPartsAndRoundTrips() async throws {
        try await withSimulator { simulator, client, directory in
            let source = directory.path("large.tar")
            try writeRandomFile(source, size: 5_500_000)
            let bucket = try await client.bucket(named: bucketName)
            let progress = ProgressLog()
            let result = try await UploadEngine(client: client, journal: nil, logger: quietLogger)
                .upload(path: source, bucket: bucket, fileName: "homeassistant/large.tar", options: UploadOptions(concurrency: 4)) { progress.add($0) }
            #expect(result.partCount == 6)
            #expect(result.file.fileInfo?["large_file_sha1"] == (try sha1(ofFile: source)))
            #expect(await simulator.requestCount("b2_upload_part") == 6)
            #expect(await simulator.requestCount("b2_get_upload_part_url") == 4) // one URL per worker
            #expect(progress.last?.phase == .done && progress.last?.bytesDone == 5_500_000)
            #expect(progress.phases.contains(.hashing) && progress.phases.contains(.uploading))
            let copy = directory.path("copy.tar")
            _ = try await DownloadEngine(client: client, logger: quietLogger).download(.name(bucket: bucketName, fileName: "homeassistant/large.tar"), to: copy)
            #expect(try sha1(ofFile: copy) == result.sha1)
        }
    }

    @Test(arguments: [1_000_000 as Int64, 50_000_000, 5_000_000_000, 20_000_000_000, 1_000_000_000_000])
    func partSizeNeverNeedsMoreThan10000Parts(fileSize: Int64) throws {
        let size = try UploadEngine.partSize(fileSize: fileSize, recommended: 100_000_000, minimum: 5_000_000, override: nil)
        #expect((fileSize + size - 1) / size <= 10_000)
        #expect(size >= 100_000_000)
        #expect(try UploadEngine.partSize(fileSize: fileSize, recommended: 100_000_000, minimum: 5_000_000, override: 5_000_000) >= 5_000_000)
        #expect(throws: B2Error.self) { try UploadEngine.partSize(fileSize: fileSize, recommended: 100_000_000, minimum: 5_000_000, override: 1000) }
    }

    /// Backblaze's retry rules, each provoked by the simulator.
    enum UploadFault: String, CaseIterable, Sendable {
        case every2ndPartFails503, tooManyRequestsWithRetryAfter, accountTokensExpire, uploadTokenExpired401, connectionResetMidBody, requestTimeout408, internalError500
    }

    @Test(arguments: UploadFault.allCases)
    func transientUploadFaultsAreRetriedAndTheFileArrivesIntact(fault: UploadFault) async throws {
        try await withSimulator { simulator, client, directory in
            let source = directory.path("faulty.tar")
            try writeRandomFile(source, size: 3_300_000, seed: 7)
            let bucket = try await client.bucket(named: bucketName)
            switch fault {
            case .every2ndPartFails503: await simulator.faults.failUploadParts(every: 2)
            case .tooManyRequestsWithRetryAfter: await simulator.faults.tooManyRequests(operation: "b2_upload_part", retryAfterSeconds: 1, times: 1)
            case .accountTokensExpire: await simulator.faults.expireAuthTokens()
            case .uploadTokenExpired401: await simulator.faults.fail(operation: "b2_upload_part", status: 401, code: "expired_auth_token", times: 2)
            case .connectionResetMidBody: await simulator.faults.resetConnection(operation: "b2_upload_part", afterBytes: 10_000, times: 2)
            case .requestTimeout408: await simulator.faults.fail(operation: "b2_upload_part", status: 408, code: "request_timeout", times: 2)
            case .internalError500: await simulator.faults.fail(operation: "b2_upload_part", status: 500, code: "internal_error", times: 2)
            }
            let started = ContinuousClock.now
            let result = try await UploadEngine(client: client, journal: nil, logger: quietLogger)
                .upload(path: source, bucket: bucket, fileName: "homeassistant/faulty.tar", options: UploadOptions(concurrency: 2))
            #expect(result.file.fileInfo?["large_file_sha1"] == (try sha1(ofFile: source)))
            if fault == .tooManyRequestsWithRetryAfter {
                // The refused part went again no sooner than Retry-After said (a lower bound, not a speed test).
                #expect(ContinuousClock.now - started >= .seconds(1))
            }
            if fault == .accountTokensExpire {
                // The next API call is refused with expired_auth_token: authorize again, once, and carry on.
                #expect(await simulator.requestCount("b2_authorize_account") == 2)
            } else {
                #expect(await simulator.requestCount("b2_upload_part") > 4) // a part was sent again
            }
            if fault != .tooManyRequestsWithRetryAfter && fault != .accountTokensExpire {
                // 401/408/5xx/reset: a new upload URL before sending again.
                #expect(await simulator.requestCount("b2_get_upload_part_url") > 2)
            }
            let copy = directory.path("copy.tar")
            _ = try await DownloadEngine(client: client, logger: quietLogger).download(.name(bucket: bucketName, fileName: "homeassistant/faulty.tar"), to: copy)
            #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == Data(contentsOf: URL(fileURLWithPath: source)))
        }
    }

    @Test func capExceededFailsFastWithAHint() async throws {
        try await withSimulator { simulator, client, directory in
            let source = directory.path("capped.tar")
            try writeRandomFile(source, size: 2_500_000)
            let bucket = try await client.bucket(named: bucketName)
            await simulator.faults.capExceeded(operation: "b2_upload_part")
            await #expect { try await UploadEngine(client: client, journal: nil, logger: quietLogger)
                .upload(path: source, bucket: bucket, fileName: "homeassistant/capped.tar", options: UploadOptions(concurrency: 1)) } throws: { error in
                (error as? B2Error)?.code == "cap_exceeded" && "\(error)".contains("Caps & Alerts")
            }
            #expect(await simulator.requestCount("b2_upload_part") == 1)
        }
    }

    @Test func truncatedDownloadsResumeWithRange() async throws {
        try await withSimulator { simulator, client, directory in
            let source = directory.path("src.tar")
            try writeRandomFile(source, size: 2_000_000, seed: 3)
            let bucket = try await client.bucket(named: bucketName)
            _ = try await UploadEngine(client: client, journal: nil, logger: quietLogger).upload(path: source, bucket: bucket, fileName: "t.tar")
            await simulator.faults.truncateDownload(afterBytes: 300_000, times: 3)
            let copy = directory.path("copy.tar")
            let result = try await DownloadEngine(client: client, logger: quietLogger).download(.name(bucket: bucketName, fileName: "t.tar"), to: copy)
            #expect(result.resumes == 3)
            #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == Data(contentsOf: URL(fileURLWithPath: source)))
        }
    }

    @Test func corruptDownloadsAreFetchedAgainOrRefused() async throws {
        try await withSimulator { simulator, client, directory in
            let source = directory.path("src.tar")
            try writeRandomFile(source, size: 400_000, seed: 5)
            let bucket = try await client.bucket(named: bucketName)
            _ = try await UploadEngine(client: client, journal: nil, logger: quietLogger).upload(path: source, bucket: bucket, fileName: "c.tar")
            let engine = DownloadEngine(client: client, logger: quietLogger)
            await simulator.faults.corruptDownload(times: 1)
            let copy = directory.path("copy.tar")
            _ = try await engine.download(.name(bucket: bucketName, fileName: "c.tar"), to: copy)
            #expect(try sha1(ofFile: copy) == (try sha1(ofFile: source)))
            await simulator.faults.corruptDownload(times: 10)
            let bad = directory.path("bad.tar")
            await #expect { try await engine.download(.name(bucket: bucketName, fileName: "c.tar"), to: bad) } throws: { error in
                "\(error)".contains("SHA-1")
            }
            #expect(!FileManager.default.fileExists(atPath: bad))
            #expect(!FileManager.default.fileExists(atPath: bad + ".partial"))
        }
    }

    @Test func listingHidingAndDeletingVersions() async throws {
        try await withSimulator { simulator, client, directory in
            let source = directory.path("v.tar")
            try writeRandomFile(source, size: 1000)
            let bucket = try await client.bucket(named: bucketName)
            let engine = UploadEngine(client: client, journal: nil, logger: quietLogger)
            for index in 0..<3 { _ = try await engine.upload(path: source, bucket: bucket, fileName: "homeassistant/\(index).tar") }
            _ = try await engine.upload(path: source, bucket: bucket, fileName: "homeassistant/0.tar") // a second version
            let names = try await client.listFileNames(bucketID: bucket.bucketId, prefix: "homeassistant/", pageSize: 2)
            #expect(names.map(\.fileName) == ["homeassistant/0.tar", "homeassistant/1.tar", "homeassistant/2.tar"])
            var versions = try await client.listFileVersions(bucketID: bucket.bucketId, prefix: "homeassistant/", pageSize: 1)
            #expect(versions.count == 4)
            _ = try await client.hideFile(bucketID: bucket.bucketId, fileName: "homeassistant/1.tar")
            #expect(try await client.listFileNames(bucketID: bucket.bucketId, prefix: "homeassistant/").count == 2)
            versions = try await client.listFileVersions(bucketID: bucket.bucketId, prefix: "homeassistant/0.tar")
            for version in versions { try await client.deleteFileVersion(fileName: version.fileName, fileID: version.fileId!) }
            #expect(try await client.listFileVersions(bucketID: bucket.bucketId, prefix: "homeassistant/0.tar").isEmpty)
            let info = try await client.fileInfo(fileID: names[2].fileId!)
            #expect(info.fileName == "homeassistant/2.tar")
            await #expect { try await client.deleteFileVersion(fileName: "homeassistant/0.tar", fileID: versions[0].fileId!) } throws: { error in
                (error as? B2Error)?.status == 400
            }
            _ = simulator
        }
    }
}

/// Collects progress reports from the engine's callbacks.
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [UploadProgress] = []
    func add(_ progress: UploadProgress) { lock.withLock { reports.append(progress) } }
    var last: UploadProgress? { lock.withLock { reports.last } }
    var phases: Set<UploadProgress.Phase> { lock.withLock { Set(reports.map(\.phase)) } }
}
