import Logging

/// Serves one client connection: parses requests in order, calls handlers, writes responses.
/// Confined to the task that runs it; owns the descriptor and closes it exactly once.
final class Connection: BodySource {
    private enum ReadFailure: Error {
        case timedOut, closed, cancelled
        case socket(SocketError)
    }

    private enum BodyState {
        case none
        case length(remaining: Int)
        case chunked(ChunkedDecoder, received: Int)
        case failed(any Error)
    }

    /// Body bytes beyond this are not drained for keep-alive; the connection is closed instead.
    private static let maxDrainBytes = 256 * 1024
    private static let readSize = 16 * 1024

    let id: UInt64
    let fd: Int32
    let peer: PeerAddress
    let server: HTTPServer
    private var config: HTTPServer.Configuration { server.configuration }

    /// Unread input is `buffer[start...]`.
    private var buffer: [UInt8] = []
    private var start = 0
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 1)
    private var bodyState: BodyState = .none
    private var bodyLimit = 0
    private var pendingContinue = false
    /// Set when the peer may still be sending: close with a lingering read so our reply is not lost to a reset.
    private var lingerOnClose = false

    init(id: UInt64, fd: Int32, peer: PeerAddress, server: HTTPServer) {
        self.id = id
        self.fd = fd
        self.peer = peer
        self.server = server
    }

    deinit { scratch.deallocate() }

    func run() async {
        let logger = server.logger
        defer {
            server.registry.remove(id)
            server.poller.forget(fd)
            Sys.close(fd)
        }
        var headDeadline = Sys.monotonicNanoseconds() + config.headerTimeout.nanoseconds
        var first = true
        while true {
            if start == buffer.count {
                guard first || server.registry.markIdle(id) else { return }
                let deadline = first ? headDeadline : Sys.monotonicNanoseconds() + config.idleTimeout.nanoseconds
                do {
                    try await fill(deadline: deadline)
                } catch {
                    // Idle expiry, eviction, shutdown or the peer leaving: close quietly (RFC 9112 §9.6).
                    if case .timedOut = error, first {
                        logger.debug("connection sent nothing within the header timeout", metadata: ["http.peer": "\(peer)"])
                    }
                    return
                }
                if !first { headDeadline = Sys.monotonicNanoseconds() + config.headerTimeout.nanoseconds }
            } else if !first {
                headDeadline = Sys.monotonicNanoseconds() + config.headerTimeout.nanoseconds
            }
            server.registry.markActive(id)
            guard await serveOne(headDeadline: headDeadline) else {
                if lingerOnClose { await lingeringClose() }
                return
            }
            first = false
        }
    }

    // MARK: One exchange

    /// Returns whether the connection stays open for another request.
    private func serveOne(headDeadline: UInt64) async -> Bool {
        let started = Sys.monotonicNanoseconds()
        guard let head = await readHead(deadline: headDeadline) else { return false }
        let logger = server.logger
        var keepAlive = head.keepAlive && !server.registry.isDraining
        var response: HTTPResponse
        // Also for requests no handler reads (404, 405, OPTIONS): their body is drained (or the connection
        // closed) below, so it is never parsed as the next request.
        bodyLimit = config.defaultBodyLimit
        switch head.framing {
        case .length(let length): bodyState = .length(remaining: length)
        case .chunked: bodyState = .chunked(ChunkedDecoder(limits: config.headLimits), received: 0)
        case .none: bodyState = .none
        }
        pendingContinue = head.expectsContinue && !isBodyFinished

        switch head.method == .options ? .notFound : server.router.resolve(head.method, head.path) {
        case _ where head.method == .options:
            let allow = head.path == "*" ? HTTPMethod.routable : server.router.allowedMethods(head.path)
            response = allow.isEmpty ? HTTPError(.notFound, message: "no resource at \(head.path)").response
                : HTTPResponse(.noContent, headers: HTTPHeaders([("Allow", allow.map(\.rawValue).joined(separator: ", "))]))
        case .notFound:
            response = HTTPError(.notFound, message: "no resource at \(head.path)").response
        case .methodNotAllowed(let allow):
            response = HTTPError(.methodNotAllowed, message: "\(head.method.rawValue) is not allowed here",
                                 headers: HTTPHeaders([("Allow", allow.map(\.rawValue).joined(separator: ", "))])).response
        case .found(let handler, let parameters, let routeLimit):
            bodyLimit = routeLimit ?? config.defaultBodyLimit
            switch head.framing {
            case .length(let length) where length > bodyLimit:
                // Refuse before reading any of it; the client may still be sending, so linger on close.
                lingerOnClose = true
                await send(ResponseEncoder.errorResponse(HTTPParseError(.contentTooLarge, "the request body (\(length) bytes) is larger than this endpoint accepts (\(bodyLimit) bytes)")))
                return false
            case .length(let length): bodyState = .length(remaining: length)
            case .chunked: bodyState = .chunked(ChunkedDecoder(limits: config.headLimits), received: 0)
            case .none: bodyState = .none
            }
            pendingContinue = head.expectsContinue && !isBodyFinished
            let body = RequestBody(source: self, declaredLength: head.framing.declaredLength, limit: bodyLimit)
            let request = HTTPRequest(head: head, peer: peer, pathParameters: parameters, body: body)
            do {
                response = try await handler(request)
            } catch let error as any HTTPResponseError {
                response = error.response
            } catch let error as HTTPParseError {
                response = HTTPError(error.status, message: error.reason).response
                keepAlive = false
            } catch ReadFailure.timedOut {
                response = HTTPError(.requestTimeout, message: "the request body stalled for longer than \(config.bodyTimeout)").response
                keepAlive = false
            } catch is ReadFailure {
                return false // the client went away mid-body; nobody to answer
            } catch is AbortConnection {
                return false
            } catch {
                logger.error("handler failed", metadata: ["http.method": "\(head.method.rawValue)", "http.path": "\(head.path)", "error": "\(error)"])
                response = HTTPError(.internalServerError, code: "internal_error", message: "internal error; see the add-on log").response
            }
            if case .failed = bodyState { keepAlive = false }
        }

        // A body the handler left unread must be consumed before the next request can be parsed.
        if !isBodyFinished {
            if pendingContinue {
                keepAlive = false // the client is waiting for 100 Continue and has not sent the body
            } else if keepAlive {
                keepAlive = await drainBody()
            }
            if !keepAlive { lingerOnClose = true }
        }

        let status = response.status
        let wrote = await write(response, for: head, keepAlive: &keepAlive)
        logger.debug("request", metadata: [
            "http.method": "\(head.method.rawValue)", "http.path": "\(head.path)", "http.status": "\(status.code)",
            "http.peer": "\(peer)", "http.duration_ms": "\((Sys.monotonicNanoseconds() - started) / 1_000_000)",
        ])
        return wrote && keepAlive
    }

    private var isBodyFinished: Bool {
        switch bodyState {
        case .none: true
        case .length(let remaining): remaining == 0
        case .chunked(let decoder, _): decoder.isDone
        case .failed: false
        }
    }

    /// Reads until a head parses; on a bad or late head answers with the right status and returns nil.
    private func readHead(deadline: UInt64) async -> HTTPRequestHead? {
        // Relative to `start`: fill() may compact the buffer, which moves absolute indices.
        var scanned = 0
        while true {
            let hasLineEnd = buffer[(start + scanned)...].contains(0x0A)
            let overLimit = buffer.count - start > config.headLimits.maxRequestLineBytes
            if hasLineEnd || overLimit {
                do {
                    let outcome = try buffer.withUnsafeBufferPointer { (all) throws(HTTPParseError) -> RequestHeadParser.Outcome in
                        try RequestHeadParser.parse(UnsafeBufferPointer(rebasing: all[start...]), limits: config.headLimits)
                    }
                    if case .complete(let head, let consumed) = outcome {
                        start += consumed
                        return head
                    }
                } catch {
                    server.logger.debug("bad request", metadata: ["http.peer": "\(peer)", "http.status": "\(error.status.code)", "reason": "\(error.reason)"])
                    lingerOnClose = true
                    await send(ResponseEncoder.errorResponse(error))
                    return nil
                }
            }
            scanned = buffer.count - start
            do {
                try await fill(deadline: deadline)
            } catch .timedOut {
                await send(ResponseEncoder.errorResponse(HTTPParseError(.requestTimeout, "the request head did not arrive within \(config.headerTimeout)")))
                return nil
            } catch {
                return nil
            }
        }
    }

    // MARK: Body (BodySource)

    func nextBodyChunk() async throws -> [UInt8]? {
        if pendingContinue {
            pendingContinue = false
            guard await send(ResponseEncoder.continueLine) else { throw fail(ReadFailure.closed) }
        }
        switch bodyState {
        case .none:
            return nil
        case .failed(let error):
            throw error
        case .length(let remaining):
            if remaining == 0 { return nil }
            if start == buffer.count { try await fillBody() }
            let count = min(remaining, buffer.count - start)
            let chunk = Array(buffer[start..<(start + count)])
            start += count
            bodyState = .length(remaining: remaining - count)
            return chunk
        case .chunked(var decoder, var received):
            while !decoder.isDone {
                if start == buffer.count { try await fillBody() }
                var output: [UInt8] = []
                do {
                    let consumed = try buffer.withUnsafeBufferPointer { all in
                        try decoder.decode(UnsafeBufferPointer(rebasing: all[start...])) { output.append(contentsOf: $0) }
                    }
                    start += consumed
                } catch {
                    throw fail(error)
                }
                received += output.count
                if received > bodyLimit {
                    throw fail(HTTPParseError(.contentTooLarge, "the request body is larger than this endpoint accepts (\(bodyLimit) bytes)"))
                }
                bodyState = .chunked(decoder, received: received)
                if !output.isEmpty { return output }
            }
            return nil
        }
    }

    private func fail(_ error: any Error) -> any Error {
        bodyState = .failed(error)
        return error
    }

    private func fillBody() async throws {
        do {
            try await fill(deadline: Sys.monotonicNanoseconds() + config.bodyTimeout.nanoseconds)
        } catch {
            throw fail(error)
        }
    }

    /// Reads and discards what is left of a small body so the connection can serve the next request.
    private func drainBody() async -> Bool {
        var drained = 0
        if case .length(let remaining) = bodyState, remaining > Self.maxDrainBytes { return false }
        do {
            while let chunk = try await nextBodyChunk() {
                drained += chunk.count
                if drained > Self.maxDrainBytes { return false }
            }
            return true
        } catch {
            return false
        }
    }

    // MARK: Writing

    /// Sends the response; returns false if the connection broke.
    private func write(_ response: HTTPResponse, for head: HTTPRequestHead, keepAlive: inout Bool) async -> Bool {
        var headers = response.headers
        headers.set("Date", Sys.httpDate())
        if server.registry.isDraining { keepAlive = false } // shutdown began while the handler ran
        let bodyAllowed = head.method != .head && response.status != .noContent && response.status != .notModified
        var streamLength: Int?
        var producer: (@Sendable (any ResponseBodyWriter) async throws -> Void)?
        var bytes: [UInt8] = []
        switch response.body {
        case .empty:
            if response.status != .noContent && response.status != .notModified { headers.set("Content-Length", "0") }
        case .bytes(let body):
            headers.set("Content-Length", String(body.count))
            bytes = body
        case .stream(let length, let produce):
            streamLength = length
            producer = produce
            if let length {
                headers.set("Content-Length", String(length))
            } else if head.version == .http11 {
                headers.set("Transfer-Encoding", "chunked")
            } else {
                keepAlive = false // HTTP/1.0: the end of the body is the end of the connection
            }
        }
        if !keepAlive {
            headers.set("Connection", "close")
        } else if head.version == .http10 {
            headers.set("Connection", "keep-alive")
        }
        var out = ResponseEncoder.head(response.status, headers)
        if bodyAllowed { out += bytes }
        guard await send(out) else { return false }
        guard bodyAllowed, let producer else { return true }

        let writer = StreamWriter(connection: self, chunked: streamLength == nil && head.version == .http11, declaredLength: streamLength)
        do {
            try await producer(writer)
            if writer.chunked {
                guard await send(ResponseEncoder.lastChunk) else { return false }
            } else if let declared = streamLength, writer.written != declared {
                server.logger.error("streamed body shorter than its Content-Length", metadata: ["http.path": "\(head.path)", "declared": "\(declared)", "written": "\(writer.written)"])
                return false
            }
            return true
        } catch {
            // The head is out: all we can do is cut the connection so the client sees an incomplete body.
            server.logger.info("response stream ended early", metadata: ["http.path": "\(head.path)", "error": "\(error)"])
            return false
        }
    }

    final class StreamWriter: ResponseBodyWriter {
        let connection: Connection
        let chunked: Bool
        let declaredLength: Int?
        private(set) var written = 0

        init(connection: Connection, chunked: Bool, declaredLength: Int?) {
            self.connection = connection
            self.chunked = chunked
            self.declaredLength = declaredLength
        }

        func write(_ bytes: [UInt8]) async throws {
            guard !bytes.isEmpty else { return }
            if let declaredLength, written + bytes.count > declaredLength {
                throw HTTPError(.internalServerError, message: "streamed body longer than its Content-Length")
            }
            written += bytes.count
            guard await connection.send(chunked ? ResponseEncoder.chunk(bytes) : bytes) else { throw ReadFailure.closed }
        }
    }

    /// Writes everything or returns false (peer gone, write timeout, shutdown cut).
    @discardableResult
    private func send(_ bytes: [UInt8]) async -> Bool {
        var offset = 0
        while offset < bytes.count {
            let result: IOResult<Int>
            do {
                result = try bytes.withUnsafeBytes { (raw) throws(SocketError) -> IOResult<Int> in
                    try syscall("send") { Sys.send(fd, raw.baseAddress! + offset, raw.count - offset) }
                }
            } catch {
                return false
            }
            switch result {
            case .value(let sent): offset += sent
            case .wouldBlock:
                let deadline = Sys.monotonicNanoseconds() + config.writeTimeout.nanoseconds
                guard case .ready = await server.poller.wait(for: .write, fd, deadline: deadline) else { return false }
            }
        }
        return true
    }

    // MARK: Reading

    /// Appends at least one byte to the buffer, or fails.
    private func fill(deadline: UInt64) async throws(ReadFailure) {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 64 * 1024)
            start = 0
        } else if start > 32 * 1024, start * 2 > buffer.count {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        while true {
            let result: IOResult<Int>
            do {
                result = try syscall("recv") { Sys.recv(fd, scratch.baseAddress!, scratch.count) }
            } catch {
                throw .socket(error)
            }
            switch result {
            case .value(0):
                throw .closed
            case .value(let count):
                buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
                return
            case .wouldBlock:
                switch await server.poller.wait(for: .read, fd, deadline: deadline) {
                case .ready: continue
                case .timedOut: throw .timedOut
                case .cancelled: throw .cancelled
                }
            }
        }
    }

    /// Half-closes and reads what the peer still sends for a moment, so that our last response reaches
    /// it instead of being destroyed by a TCP reset (the "lingering close" of RFC 9112 §9.6).
    private func lingeringClose() async {
        Sys.shutdownWrite(fd)
        let deadline = Sys.monotonicNanoseconds() + 2_000_000_000
        var discarded = 0
        while discarded < 4 << 20 {
            start = 0
            buffer.removeAll(keepingCapacity: true)
            do { try await fill(deadline: deadline) } catch { return }
            discarded += buffer.count
        }
    }
}

extension BodyFraming {
    var declaredLength: Int? {
        switch self {
        case .none: 0
        case .length(let length): length
        case .chunked: nil
        }
    }
}
