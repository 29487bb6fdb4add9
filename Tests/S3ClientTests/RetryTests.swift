import HTTPClient
import HTTPServer
import Logging
import S3Client
import MotoSupport
import Testing

/// Retries and error documents, against a scripted server (moto cannot be asked to fail on cue).
@Suite(.timeLimit(.minutes(1)))
struct RetryTests {
    actor Script {
        var answers: [(Int, String)]
        var requests = 0
        init(_ answers: [(Int, String)]) { self.answers = answers }
        func next() -> (Int, String) {
            requests += 1
            return answers.count > 1 ? answers.removeFirst() : answers[0]
        }
    }

    static func error(_ code: String, _ message: String) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>\(code)</Code><Message>\(message)</Message><RequestId>1</RequestId></Error>"
    }

    static let listing = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><IsTruncated>false</IsTruncated><Contents><Key>x.tar</Key><Size>3</Size><ETag>\"e\"</ETag><LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents></ListBucketResult>"

    /// Serves the script on GET /bucket and runs `body` with a client for bucket `bucket`.
    func withScript(_ script: Script, _ body: (S3Client) async throws -> Void) async throws {
        var router = Router()
        router.get("/bucket") { _ in
            let (status, text) = await script.next()
            return HTTPResponse(HTTPStatus(status, "Scripted"), headers: HTTPHeaders([("Content-Type", "application/xml")]), body: .bytes(Array(text.utf8)))
        }
        try await ScriptedServer.run(router, body)
    }

    @Test func slowDownAndInternalErrorAreRetried() async throws {
        let script = Script([(503, Self.error("SlowDown", "Please reduce your request rate.")), (500, Self.error("InternalError", "oops")), (200, Self.listing)])
        try await withScript(script) { client in
            let objects = try await client.listObjects()
            #expect(objects.map(\.key) == ["x.tar"])
            #expect(objects.map(\.size) == [3])
            #expect(objects.map(\.etag) == ["\"e\""])
        }
        #expect(await script.requests == 3)
    }

    @Test func retriesRunOut() async throws {
        let script = Script([(503, Self.error("SlowDown", "Please reduce your request rate."))])
        try await withScript(script) { client in
            let error = await #expect(throws: S3Error.self) { try await client.listObjects() }
            #expect("\(error.map { "\($0)" } ?? "")".contains("after 4 attempts"))
            #expect("\(error.map { "\($0)" } ?? "")".contains("SlowDown"))
        }
        #expect(await script.requests == 4)
    }

    @Test(arguments: [
        ("AccessDenied", 403, "not allowed to use bucket 'bucket'"),
        ("InvalidAccessKeyId", 403, "access key id is not known"),
        ("NoSuchBucket", 404, "bucket 'bucket' does not exist"),
    ])
    func permanentErrorsAreNotRetriedAndExplained(code: String, status: Int, hint: String) async throws {
        let script = Script([(status, Self.error(code, "refused")), (200, Self.listing)])
        try await withScript(script) { client in
            let error = await #expect(throws: S3Error.self) { try await client.listObjects() }
            #expect(error?.code == code)
            #expect(error?.status == status)
            let text = "\(error.map { "\($0)" } ?? "")"
            #expect(text.hasPrefix("S3 ListObjectsV2 on bucket 'bucket' failed: \(status) \(code): refused"))
            #expect(text.contains(hint))
        }
        #expect(await script.requests == 1)
    }
}
