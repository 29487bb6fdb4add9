import Foundation
import TestSupport
import Logging
@testable import HTTPServer
import Testing

@Suite(.timeLimit(.minutes(1)))
struct ServerTests {
    @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            for id in ["1", "2", "3"] {
                try await client.send("GET /items/\(id) HTTP/1.1\r\nHost: x\r\n\r\n")
                let response = try await client.readResponse()
                #expect(response.status == 200)
                #expect(response.text == "item \(id)")
                #expect(response.header("Date") != nil)
            }
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            // Three requests in one write, the middle one with a body.
            try await client.send("GET /items/a HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /items/c HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().text == "item a")
            #expect(try await client.readResponse().text == "hello")
            #expect(try await client.readResponse().text == "item c")
        }
    }

    /// A 40 KB head followed by half of a pipelined head: the buffer is compacted while that half is completed.
    @Test func headSplitAcrossABufferCompactionParses() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            let padding = String(repeating: "p", count: 40_000)
            try await client.send("GET /items/first HTTP/1.1\r\nHost: x\r\nX-Pad: \(padding)\r\n\r\nGET /items/after HT")
            #expect(try await client.readResponse().text == "item first")
            try await client.send("TP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().text == "item after")
        }
    }

    @Test func chunkedRequestBodyIsDecoded() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 200)
            #expect(response.text == "hello world")
            // The connection is still usable afterwards.
            try await client.send("GET /items/z HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().text == "item z")
        }
    }

    @Test func largeBodyIsStreamedToTheHandler() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            let size = 20 << 20
            try await client.send("POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n")
            let block = [UInt8](repeating: 0x61, count: 1 << 20)
            for _ in 0..<20 { try await client.send(block) }
            let response = try await client.readResponse()
            #expect(response.text == "\(size)")
        }
    }

    @Test func declaredBodyOverTheRouteLimitIs413BeforeItIsRead() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            // Only the head is sent: the 413 must come without waiting for the 5 GB.
            try await client.send("POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 413)
            #expect(response.header("Connection") == "close")
            #expect(response.text.contains("\"code\":\"content_too_large\""))
            #expect(await client.isClosedByServer())
        }
    }

    @Test func chunkedBodyOverTheLimitIs413() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 413)
            #expect(response.header("Connection") == "close")
        }
    }

    /// The malformed battery over a real socket: the status arrives, then the connection closes.
    @Test(arguments: [
        ("GARBAGE\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\n\r\n", 400),
        ("BREW /x HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        ("GET /x HTTP/3.0\r\nHost: x\r\n\r\n", 505),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 400),
        ("GET /" + String(repeating: "u", count: 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        ("GET / HTTP/1.1\r\nHost: x\r\n" + (0..<101).map { "X-\($0): v\r\n" }.joined() + "\r\n", 431),
        ("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "v", count: 70_000) + "\r\n\r\n", 431),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nnothex\r\n", 400),
    ])
    func malformedRequestsGetAStatusThenClose(request: String, status: Int) async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send(request)
            let response = try await client.readResponse()
            #expect(response.status == status)
            #expect(response.header("Content-Type") == "application/json")
            #expect(await client.isClosedByServer())
        }
    }

    @Test func unknownPathIs404AndWrongMethodIs405WithAllow() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().status == 404)
            try await client.send("DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 405)
            #expect(response.header("Allow") == "GET, HEAD, OPTIONS")
            for method in ["TRACE", "QUERY"] { // known methods no route serves: 405, not 501
                try await client.send("\(method) /health HTTP/1.1\r\nHost: x\r\n\r\n")
                let refused = try await client.readResponse()
                #expect(refused.status == 405)
                #expect(refused.header("Allow") == "GET, HEAD, OPTIONS")
            }
            // A body nobody reads is drained, not parsed as the next request.
            try await client.send("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nGET /x HTTP")
            #expect(try await client.readResponse().status == 405)
            try await client.send("POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            #expect(try await client.readResponse().status == 404)
            try await client.send("OPTIONS /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            let options = try await client.readResponse()
            #expect(options.status == 204)
            #expect(options.header("Allow") == "POST, OPTIONS")
            // Still alive after client errors that are not framing errors.
            try await client.send("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
            let head = try await client.readResponse(headRequest: true)
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == "15")
        }
    }

    @Test func handlerErrorsBecome500WithoutDetails() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 500)
            #expect(response.text.contains("internal_error"))
        }
    }

    @Test func abortConnectionDropsTheConnectionWithoutAResponse() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("POST /abort HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "a", count: 1000))
            #expect(await client.isClosedByServer())
        }
    }

    @Test func peerAddressReachesHandlers() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().text == "127.0.0.1")
        }
    }

    @Test func streamedResponseIsChunkedAndEventStreamWorks() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.header("Transfer-Encoding") == "chunked")
            #expect(response.text == "data: 1\n\ndata: 2\n\ndata: 3\n\n")
            try await client.send("GET /stream HTTP/1.0\r\n\r\n")
            let old = try await client.readResponse()
            #expect(old.header("Connection") == "close") // HTTP/1.0 cannot do chunked: close-delimited
            #expect(old.text == "data: 1\n\ndata: 2\n\ndata: 3\n\n")
        }
    }

    @Test func expectContinueGets100BeforeTheBody() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            #expect(try await client.readResponse().status == 100)
            try await client.send("ping")
            #expect(try await client.readResponse().text == "ping")
        }
    }

    @Test func unreadSmallBodyIsDrainedAndTheConnectionKept() async throws {
        try await withServer(router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nunread")
            #expect(try await client.readResponse().text == "ignored")
            try await client.send("GET /items/next HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().text == "item next")
        }
    }

    @Test func headerTimeoutCutsAStalledClientWith408() async throws {
        var configuration = HTTPServer.Configuration()
        configuration.headerTimeout = .milliseconds(300)
        try await withServer(configuration, router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("GET /health HTTP/1.1\r\nHo")
            let response = try await client.readResponse()
            #expect(response.status == 408)
            #expect(await client.isClosedByServer())
        }
    }

    @Test func bodyTimeoutCutsAStalledUpload() async throws {
        var configuration = HTTPServer.Configuration()
        configuration.bodyTimeout = .milliseconds(300)
        try await withServer(configuration, router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part")
            let response = try await client.readResponse()
            #expect(response.status == 408)
            #expect(await client.isClosedByServer())
        }
    }

    @Test func idleKeepAliveConnectionIsClosedAfterTheIdleTimeout() async throws {
        var configuration = HTTPServer.Configuration()
        configuration.idleTimeout = .milliseconds(300)
        try await withServer(configuration, router: testRouter()) { server in
            let client = try RawClient(port: server.port)
            try await client.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse().status == 200)
            #expect(await client.isClosedByServer())
        }
    }

    /// 200 idle keep-alive clients and 30 slowloris clients do not keep `/health` from answering.
    @Test func slowAndIdleClientsDoNotStarveOthers() async throws {
        try await withServer(router: testRouter()) { server in
            var idle: [RawClient] = []
            for _ in 0..<200 {
                let client = try RawClient(port: server.port)
                try await client.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try await client.readResponse()
                idle.append(client)
            }
            var dribblers: [RawClient] = []
            for _ in 0..<30 {
                let client = try RawClient(port: server.port)
                try await client.send("GET /health HTTP/1.1\r\nX-Slow: ")
                dribblers.append(client)
            }
            for client in dribblers { try await client.send("a") }
            let fresh = try RawClient(port: server.port, receiveTimeout: 2)
            try await fresh.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await fresh.readResponse().status == 200)
            #expect(server.registry.count >= 230)
        }
    }

    @Test func atTheConnectionLimitTheLongestIdleConnectionIsEvicted() async throws {
        var configuration = HTTPServer.Configuration()
        configuration.maxConnections = 10
        try await withServer(configuration, router: testRouter()) { server in
            var idle: [RawClient] = []
            for _ in 0..<10 {
                let client = try RawClient(port: server.port)
                try await client.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try await client.readResponse()
                idle.append(client)
            }
            let fresh = try RawClient(port: server.port)
            try await fresh.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await fresh.readResponse().status == 200)
            #expect(await idle[0].isClosedByServer()) // the oldest idle one made room
        }
    }

    @Test func whenEveryConnectionIsBusyANewcomerGets503() async throws {
        var configuration = HTTPServer.Configuration()
        configuration.maxConnections = 3
        try await withServer(configuration, router: testRouter()) { server in
            var busy: [RawClient] = []
            for _ in 0..<3 {
                let client = try RawClient(port: server.port)
                try await client.send("GET /health HTTP/1.1\r\nX-Partial: ")
                busy.append(client)
            }
            // Wait until the server has seen the bytes (the connections are active, not idle).
            for client in busy { try await client.send("y") }
            while server.registry.count < 3 { await Task.yield() }
            let fresh = try RawClient(port: server.port)
            let response = try await fresh.readResponse()
            #expect(response.status == 503)
            #expect(response.header("Retry-After") == "1")
        }
    }

    @Test func shutdownLetsInFlightRequestsFinishAndStopsAccepting() async throws {
        var router = testRouter()
        let gate = AsyncGate()
        router.get("/slow") { _ in
            await gate.enterAndWait()
            return .text("finished")
        }
        let server = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0), router: router, logger: .init(label: "test"))
        let running = Task { try await server.run() }
        let idle = try RawClient(port: server.port)
        try await idle.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await idle.readResponse()
        let busy = try RawClient(port: server.port)
        try await busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await gate.waitUntilEntered()
        server.shutdown()
        #expect(await idle.isClosedByServer()) // idle connections go at once
        #expect(throws: (any Error).self) { try RawClient(port: server.port).fd } // no longer accepting
        await gate.open()
        let response = try await busy.readResponse()
        #expect(response.text == "finished")
        #expect(response.header("Connection") == "close")
        try await running.value // run() returns
    }
}

/// Lets a test hold a handler at a known point and release it.
actor AsyncGate {
    private var entered = false
    private var opened = false
    private var enteredWaiters: [CheckedContinuation<Void, Never>] = []
    private var openWaiters: [CheckedContinuation<Void, Never>] = []

    func enterAndWait() async {
        entered = true
        enteredWaiters.forEach { $0.resume() }
        enteredWaiters = []
        if opened { return }
        await withCheckedContinuation { openWaiters.append($0) }
    }

    func waitUntilEntered() async {
        if entered { return }
        await withCheckedContinuation { enteredWaiters.append($0) }
    }

    func open() {
        opened = true
        openWaiters.forEach { $0.resume() }
        openWaiters = []
    }
}
