import Foundation
import HTTPClient
import Hashing
import S3Client
import MotoSupport
import Testing

/// S3Client against moto's S3 with authentication on (see MotoServer). Each test uses its own bucket.
@Suite(.enabled(if: MotoServer.executable != nil, "moto_server is not installed; run scripts/install-deps (pip install 'moto[server]')"),
       .motoServer)
struct S3ClientTests {
    var server: MotoServer { MotoTrait.server! }

    /// A fresh bucket and a client for it.
    func bucket(_ name: String) async throws -> S3Client {
        let client = try server.client(bucket: name)
        try await client.createBucket()
        return client
    }

    @Test func putGetRoundTripAndRange() async throws {
        let client = try await bucket("round-trip")
        let data = TestFiles.random(300_001)
        let source = try TestFiles.write(data)
        let etag = try await client.putObject(key: "backups/2026-11-30 nightly.tar", file: FileRange(path: source, length: Int64(data.count)))
        #expect(!etag.isEmpty)
        let target = NSTemporaryDirectory() + "s3-get-\(UUID().uuidString)"
        let written = try await client.getObject(key: "backups/2026-11-30 nightly.tar", to: ResponseFile(path: target))
        #expect(written == Int64(data.count))
        #expect(try TestFiles.read(target) == data)
        let part = NSTemporaryDirectory() + "s3-range-\(UUID().uuidString)"
        try await client.getObject(key: "backups/2026-11-30 nightly.tar", range: 1000...1999, to: ResponseFile(path: part))
        #expect(try TestFiles.read(part) == Array(data[1000...1999]))
        for path in [source, target, part] { try? FileManager.default.removeItem(atPath: path) }
    }

    @Test func multipartUploadInThreeParts() async throws {
        let client = try await bucket("multipart")
        let partSize = 5 * 1024 * 1024
        let data = TestFiles.random(2 * partSize + 2_000_000) // ~12 MB: 5 MiB, 5 MiB, the rest
        let source = try TestFiles.write(data)
        defer { try? FileManager.default.removeItem(atPath: source) }
        let uploadID = try await client.createMultipartUpload(key: "big.tar", metadata: ["backup-slug": "abc123"])
        var parts: [S3Part] = []
        for (index, offset) in stride(from: 0, to: data.count, by: partSize).enumerated() {
            let length = min(partSize, data.count - offset)
            let etag = try await client.uploadPart(key: "big.tar", uploadID: uploadID, partNumber: index + 1,
                                                   file: FileRange(path: source, offset: Int64(offset), length: Int64(length)))
            parts.append(S3Part(number: index + 1, etag: etag, size: Int64(length)))
        }
        let listed = try await client.listParts(key: "big.tar", uploadID: uploadID)
        #expect(listed.map(\.number) == [1, 2, 3])
        #expect(listed.map(\.etag) == parts.map(\.etag))
        #expect(listed.map(\.size) == parts.map(\.size))
        try await client.completeMultipartUpload(key: "big.tar", uploadID: uploadID, parts: listed)

        let target = NSTemporaryDirectory() + "s3-big-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: target) }
        try await client.getObject(key: "big.tar", to: ResponseFile(path: target))
        #expect(try TestFiles.read(target) == data)
        let info = try await client.headObject(key: "big.tar")
        #expect(info.size == Int64(data.count))
        #expect(info.metadata["backup-slug"] == "abc123")
    }

    @Test func listObjectsPaginates() async throws {
        let client = try await bucket("listing")
        // A folder prefix: the "/" is sent (and signed) as %2F in the query.
        for index in 0..<5 { try await client.putObject(key: "b/\(index).tar", bytes: Array("object \(index)".utf8)) }
        try await client.putObject(key: "other/x", bytes: [1])
        let first = try await client.listObjectsPage(prefix: "b/", maxKeys: 2)
        #expect(first.objects.map(\.key) == ["b/0.tar", "b/1.tar"])
        #expect(first.nextContinuationToken != nil)
        let all = try await client.listObjects(prefix: "b/", pageSize: 2)
        #expect(all.map(\.key) == (0..<5).map { "b/\($0).tar" })
        #expect(all.allSatisfy { $0.size == 8 })
    }

    @Test func virtualHostedAddressingRoundTrips() async throws {
        _ = try await bucket("virtual-hosted")
        let client = try server.client(bucket: "virtual-hosted", addressing: .virtualHosted)
        try await client.putObject(key: "homeassistant/v.tar", bytes: Array("by host".utf8), metadata: ["ha-slug": "v1"])
        #expect(try await client.readObject(key: "homeassistant/v.tar", range: 0...1) == Array("by".utf8))
        #expect(try await client.listObjects(prefix: "homeassistant/").map(\.key) == ["homeassistant/v.tar"])
        #expect(try await client.headObject(key: "homeassistant/v.tar").metadata["ha-slug"] == "v1")
        // It really went by host: the path-style client sees the same object in the same bucket.
        #expect(try await server.client(bucket: "virtual-hosted").headObject(key: "homeassistant/v.tar").size == 7)
    }

    @Test func headWithMetadataThenDelete() async throws {
        let client = try await bucket("head-delete")
        try await client.putObject(key: "one.tar", bytes: Array("hello".utf8), metadata: ["Backup-Name": "Nightly", "slug": "f00d"])
        let info = try await client.headObject(key: "one.tar")
        #expect(info.size == 5)
        #expect(info.metadata == ["backup-name": "Nightly", "slug": "f00d"])
        try await client.deleteObject(key: "one.tar")
        #expect(try await client.listObjects().isEmpty)
        let missing = await #expect(throws: S3Error.self) { try await client.headObject(key: "one.tar") }
        #expect(missing?.status == 404)
    }

    @Test func wrongSecretIsSignatureDoesNotMatch() async throws {
        _ = try await bucket("signed")
        let wrong = try server.client(bucket: "signed", secret: "not-the-secret")
        let error = await #expect(throws: S3Error.self) { try await wrong.listObjects() }
        #expect(error?.code == "SignatureDoesNotMatch")
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains("S3"))
        #expect(text.contains("'signed'"))
        #expect(text.contains("secret access key"))
        #expect(!text.contains(server.secretAccessKey))
        #expect(!"\(wrong.configuration)".contains("not-the-secret"))
    }

    @Test func noSuchBucket() async throws {
        let client = try server.client(bucket: "never-created")
        let error = await #expect(throws: S3Error.self) { try await client.listObjects() }
        #expect(error?.code == "NoSuchBucket")
        #expect(error?.status == 404)
        #expect("\(error.map { "\($0)" } ?? "")".contains("bucket 'never-created' does not exist"))
    }

    @Test func abortLeavesNoUpload() async throws {
        let client = try await bucket("abort")
        let source = try TestFiles.write(TestFiles.random(1000))
        defer { try? FileManager.default.removeItem(atPath: source) }
        let kept = try await client.createMultipartUpload(key: "kept.tar")
        let aborted = try await client.createMultipartUpload(key: "aborted.tar")
        _ = try await client.uploadPart(key: "aborted.tar", uploadID: aborted, partNumber: 1, file: FileRange(path: source, length: 1000))
        #expect(Set(try await client.listMultipartUploads().map(\.uploadID)) == [kept, aborted])
        try await client.abortMultipartUpload(key: "aborted.tar", uploadID: aborted)
        #expect(try await client.listMultipartUploads().map(\.uploadID) == [kept])
        #expect(try await client.listObjects().isEmpty)
    }
}
