import Foundation
import Glibc
@testable import HTTPServer
import Logging

/// A deliberately dumb TCP client: writes exactly the bytes a test gives it and parses what comes back.
/// Its blocking calls run on Dispatch threads so they never hold the server's cooperative threads.
final class RawClient: @unchecked Sendable {
    struct Response {
        let status: Int
        let headers: [(String, String)]
        let body: [UInt8]
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    enum Failure: Error { case connect(Int32), closed, timeout, malformed(String) }

    let fd: Int32
    private var pending: [UInt8] = []

    init(port: Int, receiveTimeout: Double = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { let code = errno; close(fd); throw Failure.connect(code) }
        var timeout = timeval(tv_sec: Int(receiveTimeout), tv_usec: Int(receiveTimeout.truncatingRemainder(dividingBy: 1) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// A thread of its own for each blocking call: Dispatch's global queue is only as wide as the
    /// core count, so hundreds of blocked test clients would starve each other there.
    private func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) async throws {
        try await blocking { [self] in
            var offset = 0
            while offset < bytes.count {
                let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else { throw Failure.closed }
                offset += sent
            }
        }
    }

    /// Reads more bytes into `pending`; throws `.closed` at EOF.
    private func readSome() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        if count == 0 { throw Failure.closed }
        if count < 0 { throw errno == EAGAIN ? Failure.timeout : Failure.closed }
        pending += chunk[0..<count]
    }

    private func readLine() throws -> String {
        while true {
            if let newline = pending.firstIndex(of: 0x0A) {
                var line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            try readSome()
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while pending.count < count { try readSome() }
        defer { pending.removeSubrange(0..<count) }
        return Array(pending[0..<count])
    }

    /// Reads one response. `headRequest` means no body follows even with a Content-Length.
    func readResponse(headRequest: Bool = false) async throws -> Response {
        try await blocking { [self] in
            let statusLine = try readLine()
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else { throw Failure.malformed(statusLine) }
            var headers: [(String, String)] = []
            while true {
                let line = try readLine()
                if line.isEmpty { break }
                let pair = line.split(separator: ":", maxSplits: 1)
                headers.append((String(pair[0]), pair.count > 1 ? pair[1].trimmingCharacters(in: .whitespaces) : ""))
            }
            let find = { (name: String) in headers.first { $0.0.lowercased() == name }?.1 }
            var body: [UInt8] = []
            if status == 100 || status == 204 || status == 304 || headRequest {
            } else if find("transfer-encoding") == "chunked" {
                while true {
                    let size = Int(try readLine().split(separator: ";")[0], radix: 16) ?? 0
                    if size == 0 { _ = try readLine(); break }
                    body += try readExactly(size)
                    _ = try readLine()
                }
            } else if let length = find("content-length").flatMap({ Int($0) }) {
                body = try readExactly(length)
            } else {
                while (try? readSome()) != nil {}
                body = pending
                pending = []
            }
            return Response(status: status, headers: headers, body: body)
        }
    }

    /// True when the server closed the connection (EOF) with nothing more to read.
    func isClosedByServer() async -> Bool {
        (try? await blocking { [self] () -> Bool in
            if !pending.isEmpty { return false }
            do { try readSome(); return false } catch Failure.closed { return true }
        }) ?? false
    }
}

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
