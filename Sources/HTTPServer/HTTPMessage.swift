import Foundation

/// A request as a handler sees it. The body is read on demand, so a multi-GB upload never sits in memory.
public struct HTTPRequest {
    public let head: HTTPRequestHead
    /// Who connected: ingress trust and logs are decided from this.
    public let peer: PeerAddress
    /// Values of `:name` and `*name` segments of the matched route.
    public let pathParameters: [String: String]
    public let body: RequestBody

    public var method: HTTPMethod { head.method }
    public var path: String { head.path }
    public var headers: HTTPHeaders { head.headers }
    public var queryItems: [(name: String, value: String)] { PercentDecoding.queryItems(head.query) }

    /// The first value of a query parameter.
    public func query(_ name: String) -> String? { queryItems.first { $0.name == name }?.value }

    public init(head: HTTPRequestHead, peer: PeerAddress, pathParameters: [String: String] = [:], body: RequestBody) {
        self.head = head
        self.peer = peer
        self.pathParameters = pathParameters
        self.body = body
    }

    /// Reads the whole body (bounded by the route's limit) and decodes it as JSON.
    /// An empty body decodes as `{}` so that optional-only request types need no body.
    public func decodeJSON<T: Decodable>(_ type: T.Type = T.self) async throws -> T {
        var bytes = try await body.collect()
        if bytes.isEmpty { bytes = Array("{}".utf8) }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw HTTPError(.badRequest, code: "invalid_json", message: "the request body is not valid: \(Self.describe(error))")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return keys.isEmpty ? "" : " at '\(keys)'"
        }
        switch error {
        case .dataCorrupted(let context): return "malformed JSON\(path(context))"
        case .keyNotFound(let key, let context): return "missing field '\(key.stringValue)'\(path(context))"
        case .typeMismatch(_, let context): return "wrong type\(path(context)): \(context.debugDescription)"
        case .valueNotFound(_, let context): return "missing value\(path(context))"
        @unknown default: return "invalid"
        }
    }
}

/// Where a handler writes a streamed response body (large downloads, Server-Sent Events).
public protocol ResponseBodyWriter {
    /// Sends bytes now; suspends while the client is slow to read (bounded by the write timeout).
    func write(_ bytes: [UInt8]) async throws
}

public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case empty
        case bytes([UInt8])
        /// Produced while sending. Without a length the body is sent chunked (or close-delimited for HTTP/1.0).
        case stream(length: Int?, @Sendable (any ResponseBodyWriter) async throws -> Void)
    }

    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: Body

    public init(_ status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: Body = .empty) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func text(_ text: String, status: HTTPStatus = .ok, contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status, headers: HTTPHeaders([("Content-Type", contentType)]), body: .bytes(Array(text.utf8)))
    }

    /// Encodes a value as JSON (sorted keys, ISO-8601 dates) with `Content-Type: application/json`.
    public static func json(_ value: some Encodable, status: HTTPStatus = .ok) throws -> HTTPResponse {
        HTTPResponse(status, headers: HTTPHeaders([("Content-Type", "application/json")]), body: .bytes(Array(try JSONCoding.encoder.encode(value))))
    }

    /// The error shape every JSON API of this server uses: `{"error": {"code", "message"}}`.
    public static func error(_ status: HTTPStatus, code: String, message: String) -> HTTPResponse {
        (try? json(ErrorEnvelope(error: .init(code: code, message: message)), status: status)) ?? HTTPResponse(status)
    }

    struct ErrorEnvelope: Encodable {
        struct Detail: Encodable { let code: String; let message: String }
        let error: Detail
    }
}

public enum JSONCoding {
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}

/// An error that knows the response it should become. Anything else a handler throws is a 500.
public protocol HTTPResponseError: Error {
    var response: HTTPResponse { get }
}

/// Thrown by a handler to drop the connection at once, without a response: what a crashed or reset
/// peer looks like. Simulators use it to inject connection failures.
public struct AbortConnection: Error, Sendable {
    public init() {}
}

/// A plain HTTP error with the standard JSON body.
public struct HTTPError: HTTPResponseError, Sendable, CustomStringConvertible {
    public let status: HTTPStatus
    public let code: String
    public let message: String
    public var headers: HTTPHeaders

    public init(_ status: HTTPStatus, code: String? = nil, message: String? = nil, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.code = code ?? status.errorCode
        self.message = message ?? status.reason
        self.headers = headers
    }

    public var response: HTTPResponse {
        var response = HTTPResponse.error(status, code: code, message: message)
        for field in headers { response.headers.add(field.name, field.value) }
        return response
    }

    public var description: String { "\(status.code) \(code): \(message)" }
}
