import HTTPClient
import HTTPServer
import Logging
import Testing

/// The client against our own server on port 0: real sockets, real libcurl.
@Suite(.timeLimit(.minutes(1)))
struct HTTPClientTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func withServer<T>(_ router: Router, _ body: (Int) async throws -> T) async throws -> T {
        // A short grace period: the `/never` handler is cancelled instead of awaited.
        let server = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0, shutdownGracePeriod: .milliseconds(200)), router: router, logger: logger)
        let running = Task { try await server.run() }
        defer { server.shutdown() }
        let result = try await body(server.port)
        server.shutdown()
        try await running.value
        return result
    }

    func router() -> Router {
        var router = Router()
        router.get("/hello") { request in
            HTTPResponse(.ok, headers: HTTPHeaders([("X-Echo", request.headers["X-Test"] ?? "")]), body: .bytes(Array("hi".utf8)))
        }
        router.post("/echo") { request in
            HTTPResponse(.created, body: .bytes(try await request.body.collect()))
        }
        router.get("/big") { _ in HTTPResponse(.ok, body: .bytes([UInt8](repeating: 1, count: 10_000))) }
        router.get("/never") { _ in
            try await Task.sleep(for: .seconds(30))
            return .text("late")
        }
        return router
    }

    @Test func getSendsHeadersAndReadsResponseHeaders() async throws {
        try await withServer(router()) { port in
            let response = try await HTTPClient(logger: logger).send(.init(url: "http://127.0.0.1:\(port)/hello", headers: [("X-Test", "42")]))
            #expect(response.status == 200)
            #expect(response.text == "hi")
            #expect(response.header("x-echo") == "42")
        }
    }

    @Test(arguments: [0, 5, 200_000])
    func postSendsTheBody(size: Int) async throws {
        try await withServer(router()) { port in
            let body = (0..<size).map { UInt8($0 % 251) }
            let response = try await HTTPClient(logger: logger).send(.init(method: "POST", url: "http://127.0.0.1:\(port)/echo", body: body))
            #expect(response.status == 201)
            #expect(response.body == body)
        }
    }

    @Test func oversizedResponsesAreRefused() async throws {
        try await withServer(router()) { port in
            let client = HTTPClient(configuration: .init(maxResponseBytes: 1000), logger: logger)
            await #expect { try await client.send(.init(url: "http://127.0.0.1:\(port)/big")) } throws: { error in
                (error as? HTTPClientError)?.kind == .responseTooLarge
            }
        }
    }

    @Test func timeoutIsReportedAsSuch() async throws {
        _ = try await withServer(router()) { port in
            await #expect { try await HTTPClient(logger: logger).send(.init(url: "http://127.0.0.1:\(port)/never", timeout: .milliseconds(300))) } throws: { error in
                (error as? HTTPClientError)?.kind == .timedOut
            }
        }
    }

    @Test func refusedConnectionIsAConnectErrorWithoutTheQuery() async throws {
        // A server that is created but never run releases its port: nothing listens there afterwards.
        let port = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0), router: Router(), logger: logger).port
        await #expect { try await HTTPClient(logger: logger).send(.init(url: "http://127.0.0.1:\(port)/x?token=secret")) } throws: { error in
            guard let error = error as? HTTPClientError else { return false }
            return error.kind == .connect && !error.description.contains("secret")
        }
    }

    @Test func otherProtocolsAreRefused() async {
        await #expect { try await HTTPClient(logger: logger).send(.init(url: "file:///etc/passwd")) } throws: { error in
            "\(error)".lowercased().contains("protocol")
        }
    }
}
