/// What the connection does to produce body chunks; implemented by the connection that owns the socket.
protocol BodySource: AnyObject {
    func nextBodyChunk() async throws -> [UInt8]?
}

/// The request body as an async sequence of chunks, read from the socket as the handler asks for them.
/// It can be read once. Its limit is the matched route's body limit; a larger body throws a 413 error.
public final class RequestBody: AsyncSequence {
    public typealias Element = [UInt8]

    private let source: (any BodySource)?
    /// The length the client declared, when it used Content-Length.
    public let declaredLength: Int?
    /// The most bytes this body may have (the route's limit).
    public let limit: Int

    init(source: (any BodySource)?, declaredLength: Int?, limit: Int) {
        self.source = source
        self.declaredLength = declaredLength
        self.limit = limit
    }

    /// A body held in memory; for tests and internal callers.
    public convenience init() { self.init(source: nil, declaredLength: 0, limit: 0) }

    /// The next chunk, or nil at the end of the body.
    public func next() async throws -> [UInt8]? {
        guard let source else { return nil }
        return try await source.nextBodyChunk()
    }

    /// Reads the whole body into memory, at most `limit` bytes (never more than the route's limit).
    public func collect(upTo limit: Int? = nil) async throws -> [UInt8] {
        let cap = Swift.min(limit ?? self.limit, self.limit)
        var bytes: [UInt8] = []
        while let chunk = try await next() {
            guard bytes.count + chunk.count <= cap else {
                throw HTTPError(.contentTooLarge, message: "the request body is larger than \(cap) bytes")
            }
            bytes += chunk
        }
        return bytes
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let body: RequestBody
        public mutating func next() async throws -> [UInt8]? { try await body.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }
}
