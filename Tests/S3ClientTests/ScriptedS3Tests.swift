import Foundation
import HTTPClient
import HTTPServer
import Hashing
import Logging
import S3Client
import MotoSupport
import Testing

/// ListMultipartUploads pagination, Content-MD5 and aborting after permanent errors, against a scripted
/// server: moto ignores `max-uploads`, never checks Content-MD5 and cannot be made to refuse a part.
@Suite(.timeLimit(.minutes(1)))
struct ScriptedS3Tests {
    /// What the scripted server saw.
    actor Log {
        var listQueries: [[String: String]] = []
        var aborted: [String] = []
        /// (Content-MD5 sent, base64 MD5 of the body received)
        var digests: [(sent: String, actual: String)] = []
        func list(_ query: [String: String]) { listQueries.append(query) }
        func abort(_ key: String, _ uploadID: String) { aborted.append("\(key) \(uploadID)") }
        func digest(sent: String, actual: String) { digests.append((sent, actual)) }
    }

    static func upload(_ key: String, _ id: String, _ initiated: String) -> String {
        "<Upload><Key>\(key)</Key><UploadId>\(id)</UploadId><Initiated>\(initiated)</Initiated></Upload>"
    }

    /// Two pages of ListMultipartUploads, the second only for the first page's markers.
    static func listingRoute(_ router: inout Router, log: Log) {
        router.get("/bucket") { request in
            let query = Dictionary(request.queryItems.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
            await log.list(query)
            if query["key-marker"] == nil {
                return ScriptedServer.xml("<ListMultipartUploadsResult><Bucket>bucket</Bucket><IsTruncated>true</IsTruncated>"
                    + "<NextKeyMarker>b.tar</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>"
                    + upload("a.tar", "u1", "2026-01-01T00:00:00.000Z") + upload("b.tar", "u2", "2026-03-01T12:00:00Z") + "</ListMultipartUploadsResult>")
            }
            guard query["key-marker"] == "b.tar", query["upload-id-marker"] == "u2" else {
                return ScriptedServer.error("InvalidArgument", "unexpected markers", status: .badRequest)
            }
            return ScriptedServer.xml("<ListMultipartUploadsResult><Bucket>bucket</Bucket><IsTruncated>false</IsTruncated>"
                + upload("c.tar", "u3", "yesterday") + "</ListMultipartUploadsResult>")
        }
    }

    static func abortRoute(_ router: inout Router, log: Log) {
        router.delete("/bucket/:key") { request in
            await log.abort(request.pathParameters["key"] ?? "", request.query("uploadId") ?? "")
            return HTTPResponse(.noContent)
        }
    }

    @Test func listMultipartUploadsFollowsEveryPage() async throws {
        let log = Log()
        var router = Router()
        Self.listingRoute(&router, log: log)
        try await ScriptedServer.run(router) { client in
            let uploads = try await client.listMultipartUploads(pageSize: 2)
            #expect(uploads.map(\.key) == ["a.tar", "b.tar", "c.tar"])
            #expect(uploads.map(\.uploadID) == ["u1", "u2", "u3"])
            #expect(uploads[0].initiated == Date(timeIntervalSince1970: 1_767_225_600)) // 2026-01-01T00:00:00Z
            #expect(uploads[1].initiated == Date(timeIntervalSince1970: 1_772_366_400)) // 2026-03-01T12:00:00Z
            #expect(uploads[2].initiated == nil)
        }
        let queries = await log.listQueries
        #expect(queries.count == 2)
        #expect(queries.allSatisfy { $0["max-uploads"] == "2" && $0["uploads"] != nil })
    }

    @Test func abortUploadsOnlyThoseStartedBeforeTheDate() async throws {
        let log = Log()
        var router = Router()
        Self.listingRoute(&router, log: log)
        Self.abortRoute(&router, log: log)
        try await ScriptedServer.run(router) { client in
            // 2026-02-01: a.tar is older; b.tar is newer; c.tar has no readable date and is left alone.
            let aborted = try await client.abortUploads(prefix: "", initiatedBefore: Date(timeIntervalSince1970: 1_769_904_000))
            #expect(aborted == 1)
        }
        #expect(await log.aborted == ["a.tar u1"])
    }

    /// PUT answers: checks Content-MD5 like S3 (BadDigest on a mismatch) and answers the body's MD5 as ETag.
    static func putRoute(_ router: inout Router, log: Log) {
        router.add(.put, "/bucket/:key", bodyLimit: 8 << 20) { request in
            let body = try await request.body.collect()
            let digest = StreamingDigest(.md5)
            digest.update(body)
            let md5 = digest.finalize()
            let actual = Data(md5).base64EncodedString()
            let sent = request.headers["Content-MD5"] ?? ""
            await log.digest(sent: sent, actual: actual)
            guard sent == actual else { return ScriptedServer.error("BadDigest", "The Content-MD5 you specified did not match what we received.", status: .badRequest) }
            return HTTPResponse(.ok, headers: HTTPHeaders([("ETag", "\"\(Hex.encode(md5))\"")]))
        }
    }

    @Test func contentMD5IsSentWithEveryPutAndPart() async throws {
        let log = Log()
        var router = Router()
        Self.putRoute(&router, log: log)
        let data = TestFiles.random(100_000)
        let path = try TestFiles.write(data)
        defer { TestFiles.remove(path) }
        try await ScriptedServer.run(router) { client in
            let etag = try await client.putObject(key: "file.tar", file: FileRange(path: path, length: 100_000))
            #expect(etag == "\"\(TestFiles.md5Hex(data))\"")
            try await client.putObject(key: "bytes.tar", bytes: Array("hello".utf8))
            _ = try await client.uploadPart(key: "part.tar", uploadID: "u1", partNumber: 1, file: FileRange(path: path, offset: 1000, length: 5000))
            // A Content-MD5 given by the caller is sent as it is, so a wrong one is refused by the store.
            let error = await #expect(throws: S3Error.self) {
                try await client.putObject(key: "file.tar", file: FileRange(path: path, length: 100_000), contentMD5: Array(repeating: 0, count: 16))
            }
            #expect(error?.code == "BadDigest")
        }
        let digests = await log.digests
        #expect(digests.count == 4)
        #expect(digests.prefix(3).allSatisfy { !$0.sent.isEmpty && $0.sent == $0.actual })
    }

    @Test func partSizeKeepsWithinS3Limits() {
        let mib = Int64(1024 * 1024)
        #expect(S3Uploader.partSize(fileSize: 100 * mib, configured: 1024) == 5 * mib) // S3's minimum
        #expect(S3Uploader.partSize(fileSize: 100 * mib, configured: 16 * 1024 * 1024) == 16 * mib)
        let huge = 200 * 1024 * mib // 200 GiB at 5 MiB would be 40,960 parts
        let size = S3Uploader.partSize(fileSize: huge, configured: S3Uploader.minPartSize)
        #expect((huge + size - 1) / size <= S3Uploader.maxParts)
        #expect((huge + size - 2) / (size - 1) > S3Uploader.maxParts) // and no larger than needed
    }

    /// A multipart upload whose parts are answered `status`/`code`: aborted after a permanent refusal,
    /// left for resume after a transient failure that outlasts the retries.
    @Test(arguments: [(403, "AccessDenied", true), (404, "NoSuchBucket", true), (503, "SlowDown", false)])
    func failedPartAbortsOnlyOnPermanentErrors(status: Int, code: String, aborts: Bool) async throws {
        let log = Log()
        var router = Router()
        router.get("/bucket") { _ in ScriptedServer.xml("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>") }
        router.post("/bucket/:key") { _ in
            ScriptedServer.xml("<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>big.tar</Key><UploadId>up-1</UploadId></InitiateMultipartUploadResult>")
        }
        router.add(.put, "/bucket/:key", bodyLimit: 8 << 20) { request in
            _ = try await request.body.collect()
            return ScriptedServer.error(code, "refused", status: HTTPStatus(status, "Scripted"))
        }
        Self.abortRoute(&router, log: log)
        let path = try TestFiles.write(TestFiles.random(S3Uploader.minPartSize + 1))
        defer { TestFiles.remove(path) }
        try await ScriptedServer.run(router, maxAttempts: 2) { client in
            let uploader = S3Uploader(client: client, partSize: S3Uploader.minPartSize, concurrency: 2, bytesPerSecond: nil, logger: ScriptedServer.logger)
            let error = await #expect(throws: S3Error.self) { try await uploader.upload(path: path, key: "big.tar", metadata: [:]) { _, _ in } }
            let text = "\(error.map { "\($0)" } ?? "")"
            #expect(text.hasPrefix("S3 UploadPart"))
            #expect(text.contains(code))
        }
        #expect(await log.aborted == (aborts ? ["big.tar up-1"] : []))
    }
}
