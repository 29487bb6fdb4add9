import B2Client
import B2Simulator
import Foundation
import Testing

/// The bucket key plus what reading and setting retentions needs.
let lockCapabilities = B2Simulator.Account.bucketKeyCapabilities + ["readBucketRetentions", "readFileRetentions", "writeFileRetentions"]

/// A retention a day from now, in whole seconds so it survives B2's milliseconds exactly.
func retention(_ mode: B2FileRetention.Mode) -> B2FileRetention {
    B2FileRetention(mode: mode, retainUntil: Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 86_400).rounded()))
}

@Suite(.timeLimit(.minutes(2)))
struct ObjectLockTests {
    @Test func bucketsSayWhetherObjectLockIsOn() async throws {
        for (capabilities, objectLock, expected) in [(lockCapabilities, true, true), (lockCapabilities, false, false),
                                                     (B2Simulator.Account.bucketKeyCapabilities, true, false)] {
            try await withSimulator(capabilities: capabilities, objectLock: objectLock) { _, client, _ in
                let bucket = try await client.bucket(named: bucketName)
                #expect(bucket.fileLockEnabled == expected, "\(capabilities) \(objectLock)")
            }
        }
        // Absent or unreadable configurations mean "not known to be locked", never a failed decode.
        for json in [#"{"bucketId":"b","bucketName":"n"}"#, #"{"bucketId":"b","bucketName":"n","fileLockConfiguration":{"value":null}}"#,
                     #"{"bucketId":"b","bucketName":"n","fileLockConfiguration":"odd"}"#] {
            let bucket = try JSONDecoder().decode(B2Bucket.self, from: Data(json.utf8))
            #expect(bucket.bucketId == "b" && bucket.bucketType == nil && !bucket.fileLockEnabled)
        }
    }

    @Test func fileObjectsDecodeTheirRetention() throws {
        func decode(_ fileRetention: String) throws -> B2FileRetention? {
            try JSONDecoder().decode(B2File.self, from: Data(#"{"fileName":"a","fileRetention":\#(fileRetention)}"#.utf8)).retention
        }
        #expect(try decode(#"{"isClientAuthorizedToRead":true,"value":{"mode":"compliance","retainUntilTimestamp":1750000000123}}"#)
            == B2FileRetention(mode: .compliance, retainUntil: Date(timeIntervalSince1970: 1_750_000_000.123)))
        for none in [#"{"isClientAuthorizedToRead":true,"value":{"mode":null,"retainUntilTimestamp":null}}"#,
                     #"{"isClientAuthorizedToRead":false,"value":null}"#, "null", #"{"value":{"mode":"odd","retainUntilTimestamp":1}}"#] {
            #expect(try decode(none) == nil, "\(none)")
        }
    }

    /// 1000 bytes go up in one b2_upload_file; 2.5 MB in three parts (the simulator recommends 1 MB parts).
    @Test(arguments: [(1000, B2FileRetention.Mode.compliance), (2_500_000, .governance)])
    func uploadsWithARetentionAreLocked(size: Int, mode: B2FileRetention.Mode) async throws {
        try await withSimulator(capabilities: lockCapabilities, objectLock: true) { simulator, client, directory in
            let source = directory.path("locked.tar")
            try writeRandomFile(source, size: size)
            let bucket = try await client.bucket(named: bucketName)
            let lock = retention(mode)
            let result = try await UploadEngine(client: client, journal: nil, logger: quietLogger)
                .upload(path: source, bucket: bucket, fileName: "homeassistant/locked.tar", options: UploadOptions(retention: lock))
            #expect(result.partCount == (size > 1_000_000 ? 3 : 1))
            #expect(result.file.retention == lock)
            #expect(try await client.listFileVersions(bucketID: bucket.bucketId).map(\.retention) == [lock])
            let stored = await simulator.fileVersions(bucket: bucketName).map(\.retention)
            #expect(stored == [B2Simulator.Retention(mode: mode == .compliance ? .compliance : .governance,
                                                     retainUntilTimestamp: Int(lock.retainUntil.timeIntervalSince1970) * 1000)])
            await #expect { try await client.deleteFileVersion(fileName: result.file.fileName, fileID: result.file.fileId!) } throws: { error in
                let error = error as? B2Error
                return error?.status == 403 && error?.code == "access_denied" && "\(error!)".contains("Object Lock")
            }
        }
    }

    @Test(arguments: [true, false])
    func governanceLockedVersionsAreDeletedOnlyWithBypass(keyHasBypassCapability: Bool) async throws {
        let capabilities = lockCapabilities + (keyHasBypassCapability ? ["bypassGovernance"] : [])
        try await withSimulator(capabilities: capabilities, objectLock: true) { simulator, client, directory in
            let source = directory.path("g.tar")
            try writeRandomFile(source, size: 100)
            let bucket = try await client.bucket(named: bucketName)
            let file = try await UploadEngine(client: client, journal: nil, logger: quietLogger)
                .upload(path: source, bucket: bucket, fileName: "g.tar", options: UploadOptions(retention: retention(.governance))).file
            await #expect { try await client.deleteFileVersion(fileName: file.fileName, fileID: file.fileId!) } throws: { error in
                (error as? B2Error)?.code == "access_denied"
            }
            if keyHasBypassCapability {
                try await client.deleteFileVersion(fileName: file.fileName, fileID: file.fileId!, bypassGovernance: true)
                #expect(await simulator.fileVersions(bucket: bucketName).isEmpty)
            } else {
                await #expect { try await client.deleteFileVersion(fileName: file.fileName, fileID: file.fileId!, bypassGovernance: true) } throws: { error in
                    (error as? B2Error)?.code == "access_denied"
                }
            }
        }
    }

    @Test func aRetentionOnABucketWithoutObjectLockFailsWithoutRetries() async throws {
        try await withSimulator(capabilities: lockCapabilities) { simulator, client, directory in
            let source = directory.path("a.tar")
            try writeRandomFile(source, size: 100)
            let bucket = try await client.bucket(named: bucketName)
            await #expect { try await UploadEngine(client: client, journal: nil, logger: quietLogger)
                .upload(path: source, bucket: bucket, fileName: "a.tar", options: UploadOptions(retention: retention(.governance))) } throws: { error in
                (error as? B2Error)?.status == 400 && (error as? B2Error)?.code == "bad_request"
            }
            #expect(await simulator.requestCount("b2_upload_file") == 1)
        }
    }
}
