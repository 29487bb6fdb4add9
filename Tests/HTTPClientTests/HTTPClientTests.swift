import Foundation
import Hashing
import HTTPClient
import HTTPServer
import Logging
import Synchronization
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
        // Answers with the body's length and SHA-1, reading it chunk by chunk.
        router.post("/digest", bodyLimit: 1 << 30) { request in
            let digest = StreamingDigest(.sha1)
            var total = 0
            for try await chunk in request.body {
                digest.update(chunk)
                total += chunk.count
            }
            return .text("\(total) \(digest.hexDigest())")
        }
        router.get("/stream/:size") { request in
            let size = Int(request.pathParameters["size"]!)!
            return HTTPResponse(.ok, body: .stream(length: size) { writer in
                var sent = 0
                while sent < size {
                    let count = min(65_536, size - sent)
                    try await writer.write((sent..<(sent + count)).map { UInt8(truncatingIfNeeded: $0) })
                    sent += count
                }
            })
        }
        router.get("/missing") { _ in throw HTTPError(.notFound, message: "no such file") }
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

    func temporaryFile(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("client-\(UUID().uuidString)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test(arguments: [false, true])
    func fileRangeBodyIsStreamedWithOptionalSHA1Trailer(trailer: Bool) async throws {
        let data = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let path = try temporaryFile(data)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withServer(router()) { port in
            var request = HTTPClientRequest(method: "POST", url: "http://127.0.0.1:\(port)/digest")
            request.bodyFile = FileRange(path: path, offset: 1000, length: 2_000_000, appendSHA1Hex: trailer)
            let response = try await HTTPClient(logger: logger).send(request)
            let range = Array(data[1000..<2_001_000])
            let rangeSHA1 = StreamingDigest.sha1Hex(range)
            if trailer {
                #expect(response.sentSHA1 == rangeSHA1)
                #expect(response.text == "2000040 \(StreamingDigest.sha1Hex(range + Array(rangeSHA1.utf8)))")
            } else {
                #expect(response.sentSHA1 == nil)
                #expect(response.text == "2000000 \(rangeSHA1)")
            }
        }
    }

    @Test func prefixAndSuffixFrameTheRange() async throws {
        let data = (0..<700_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let path = try temporaryFile(data)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withServer(router()) { port in
            var request = HTTPClientRequest(method: "POST", url: "http://127.0.0.1:\(port)/digest")
            let prefix = Array("--boundary\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".utf8)
            let suffix = Array("\r\n--boundary--\r\n".utf8)
            request.bodyFile = FileRange(path: path, offset: 100, length: 600_000, prefix: prefix, suffix: suffix)
            let response = try await HTTPClient(logger: logger).send(request)
            let expected = prefix + Array(data[100..<600_100]) + suffix
            #expect(response.text == "\(expected.count) \(StreamingDigest.sha1Hex(expected))")
        }
    }

    @Test func aFileShorterThanItsRangeIsALocalError() async throws {
        let path = try temporaryFile([1, 2, 3])
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withServer(router()) { port in
            var request = HTTPClientRequest(method: "POST", url: "http://127.0.0.1:\(port)/digest")
            request.bodyFile = FileRange(path: path, length: 10)
            await #expect { try await HTTPClient(logger: logger).send(request) } throws: { error in
                (error as? HTTPClientError)?.kind == .localFile && "\(error)".contains("shorter")
            }
        }
    }

    @Test func successfulBodiesGoToTheFileErrorsStayInMemory() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("download-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withServer(router()) { port in
            let client = HTTPClient(configuration: .init(maxResponseBytes: 1000), logger: logger)
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/stream/1000000")
            request.responseFile = ResponseFile(path: path)
            let response = try await client.send(request)
            #expect(response.status == 200)
            #expect(response.bytesWritten == 1_000_000)
            #expect(response.body.isEmpty)
            let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(written == (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0) })
            // Resume-style write at an offset.
            request.url = "http://127.0.0.1:\(port)/stream/10"
            request.responseFile = ResponseFile(path: path, offset: 1_000_000)
            #expect(try await client.send(request).bytesWritten == 10)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == 1_000_010)
            request.url = "http://127.0.0.1:\(port)/missing"
            let missing = try await client.send(request)
            #expect(missing.status == 404)
            #expect(missing.text.contains("no such file"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == 1_000_010)
        }
    }

    @Test func progressCanAbortAndRateCapStillCompletes() async throws {
        let data = [UInt8](repeating: 9, count: 600_000)
        let path = try temporaryFile(data)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withServer(router()) { port in
            var request = HTTPClientRequest(method: "POST", url: "http://127.0.0.1:\(port)/digest")
            request.bodyFile = FileRange(path: path, length: 600_000)
            request.maxSendBytesPerSecond = 4_000_000
            let seen = MaxSeen()
            request.progress = { progress in
                seen.record(progress.uploaded)
                return true
            }
            let response = try await HTTPClient(logger: logger).send(request)
            #expect(response.text.hasPrefix("600000 "))
            #expect(seen.value == 600_000)
            request.progress = { $0.uploaded < 100_000 }
            await #expect { try await HTTPClient(logger: logger).send(request) } throws: { error in
                (error as? HTTPClientError)?.kind == .aborted
            }
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

/// The largest value reported from libcurl's thread.
final class MaxSeen: Sendable {
    private let state = Mutex<Int64>(0)
    func record(_ value: Int64) { state.withLock { $0 = max($0, value) } }
    var value: Int64 { state.withLock { $0 } }
}
