import HTTPClient
import HTTPServer
import Logging
import S3Client

/// An S3 stand-in on our own HTTP server, for what moto cannot be made to do: fail on cue, paginate
/// ListMultipartUploads, refuse a wrong Content-MD5. The bucket is `bucket`; routes are the test's.
enum ScriptedServer {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Serves `router` and runs `body` with a client for bucket `bucket` (retries 10–50 ms apart).
    static func run(_ router: Router, maxAttempts: Int = 4, _ body: (S3Client) async throws -> Void) async throws {
        let server = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0, shutdownGracePeriod: .milliseconds(200)), router: router, logger: logger)
        let running = Task { try await server.run() }
        let configuration = S3Client.Configuration(endpoint: "http://127.0.0.1:\(server.port)", region: "us-east-1", bucket: "bucket", accessKeyID: "AKID",
                                                   secretAccessKey: "secret", maxAttempts: maxAttempts, baseDelay: .milliseconds(10), maxDelay: .milliseconds(50))
        let client = try S3Client(configuration: configuration, http: HTTPClient(logger: logger), logger: logger)
        do { try await body(client) } catch { server.shutdown(); throw error }
        server.shutdown()
        try await running.value
    }

    static func xml(_ text: String, status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status, headers: HTTPHeaders([("Content-Type", "application/xml")]), body: .bytes(Array(("<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + text).utf8)))
    }

    static func error(_ code: String, _ message: String, status: HTTPStatus) -> HTTPResponse {
        xml("<Error><Code>\(code)</Code><Message>\(message)</Message><RequestId>1</RequestId></Error>", status: status)
    }
}
