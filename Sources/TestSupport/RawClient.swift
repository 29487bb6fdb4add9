import Foundation
import Glibc

// Test-only helpers shared by the test targets; never linked into the add-on.

/// A deliberately dumb TCP client: writes exactly the bytes a test gives it and parses what comes back.
/// Its blocking calls run on Dispatch threads so they never hold the server's cooperative threads.
public final class RawClient: @unchecked Sendable {
    public struct Response: Sendable {
        public let status: Int
        public let headers: [(String, String)]
        public let body: [UInt8]
        public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        public var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public enum Failure: Error { case connect(Int32), closed, timeout, malformed(String) }

    public let fd: Int32
    private var pending: [UInt8] = []

    /// Connects to the port of `url` (`http://127.0.0.1:PORT/...`).
    public convenience init(url: String, receiveTimeout: Double = 10) throws {
        try self.init(port: URLComponents(string: url)?.port ?? 80, receiveTimeout: receiveTimeout)
    }

    public init(port: Int, receiveTimeout: Double = 10) throws {
        // `fd` is set only once connected: a class initialised in full runs `deinit` when its init throws,
        // which would close the descriptor a second time, and by then the number may be another thread's file.
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { let code = errno; close(socketFD); throw Failure.connect(code) }
        fd = socketFD
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

    public func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) async throws {
        try await blocking { [self] in
            var offset = 0
            while offset < bytes.count {
                let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else { throw Failure.closed }
                offset += sent
            }
        }
    }

    /// The next bytes the server sends, raw (at least one; `.closed` at EOF, `.timeout` after the receive
    /// timeout): for streams that never end, such as Server-Sent Events.
    public func receive() async throws -> [UInt8] {
        try await blocking { [self] in
            if pending.isEmpty { try readSome() }
            defer { pending = [] }
            return pending
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
    public func readResponse(headRequest: Bool = false) async throws -> Response {
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
    public func isClosedByServer() async -> Bool {
        (try? await blocking { [self] () -> Bool in
            if !pending.isEmpty { return false }
            do { try readSome(); return false } catch Failure.closed { return true }
        }) ?? false
    }
}

