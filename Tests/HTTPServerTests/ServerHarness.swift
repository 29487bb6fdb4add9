import Foundation
@testable import HTTPServer
import Logging

/// Runs a server on 127.0.0.1:0 for the duration of `body`, then shuts it down and waits for it to end.
func withServer<T>(_ configuration: HTTPServer.Configuration = .init(), router: Router,
                   _ body: (HTTPServer) async throws -> T) async throws -> T {
    var configuration = configuration
    configuration.host = "127.0.0.1"
    configuration.port = 0
    let server = try HTTPServer(configuration: configuration, router: router, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    let running = Task { try await server.run() }
    do {
        let result = try await body(server)
        server.shutdown()
        try await running.value
        return result
    } catch {
        server.shutdown()
        try? await running.value
        throw error
    }
}

/// A router with the handful of endpoints the tests use.
func testRouter() -> Router {
    var router = Router()
    router.get("/health") { _ in try .json(["status": "ok"]) }
    router.get("/peer") { request in .text(request.peer.host) }
    router.get("/items/:id") { request in .text("item \(request.pathParameters["id"] ?? "")") }
    router.get("/files/*rest") { request in .text("rest=\(request.pathParameters["rest"] ?? "")") }
    router.post("/echo", bodyLimit: 1 << 20) { request in
        let body = try await request.body.collect()
        return HTTPResponse(.ok, body: .bytes(body))
    }
    router.post("/count", bodyLimit: 64 << 20) { request in
        var total = 0
        for try await chunk in request.body { total += chunk.count }
        return .text("\(total)")
    }
    router.post("/small", bodyLimit: 10) { request in .text("\(try await request.body.collect().count)") }
    router.post("/ignore-body") { _ in .text("ignored") }
    router.get("/stream") { _ in
        HTTPResponse(.ok, headers: HTTPHeaders([("Content-Type", "text/event-stream")]), body: .stream(length: nil) { writer in
            for index in 1...3 { try await writer.write(Array("data: \(index)\n\n".utf8)) }
        })
    }
    router.get("/fail") { _ in throw CancellationError() }
    router.post("/abort") { request in
        _ = try await request.body.next()
        throw AbortConnection()
    }
    return router
}
