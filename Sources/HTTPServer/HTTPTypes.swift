/// Request methods this server understands; anything else is answered 501 (RFC 9110 §9.1).
public enum HTTPMethod: String, Sendable, Hashable, CaseIterable, Comparable {
    case get = "GET", head = "HEAD", post = "POST", put = "PUT", delete = "DELETE", patch = "PATCH", options = "OPTIONS"
    /// Known methods no route serves: recognized, so a resource answers 405 with `Allow` (RFC 9110 §15.5.6)
    /// rather than 501, which is for methods the server does not know at all.
    case trace = "TRACE", connect = "CONNECT", query = "QUERY"

    /// What `OPTIONS *` lists: the methods routes can have.
    public static let routable: [HTTPMethod] = [.get, .head, .post, .put, .delete, .patch, .options]

    public static func < (lhs: HTTPMethod, rhs: HTTPMethod) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// An HTTP status code with its reason phrase.
public struct HTTPStatus: Sendable, Hashable, CustomStringConvertible {
    public let code: Int
    public let reason: String
    public init(_ code: Int, _ reason: String) { self.code = code; self.reason = reason }
    public var description: String { "\(code) \(reason)" }
    /// The reason as a stable snake_case code for JSON errors: `content_too_large`.
    public var errorCode: String { reason.lowercased().split(separator: " ").joined(separator: "_") }

    public static let `continue` = HTTPStatus(100, "Continue")
    public static let ok = HTTPStatus(200, "OK")
    public static let created = HTTPStatus(201, "Created")
    public static let accepted = HTTPStatus(202, "Accepted")
    public static let noContent = HTTPStatus(204, "No Content")
    public static let partialContent = HTTPStatus(206, "Partial Content")
    public static let notModified = HTTPStatus(304, "Not Modified")
    public static let badRequest = HTTPStatus(400, "Bad Request")
    public static let unauthorized = HTTPStatus(401, "Unauthorized")
    public static let forbidden = HTTPStatus(403, "Forbidden")
    public static let notFound = HTTPStatus(404, "Not Found")
    public static let methodNotAllowed = HTTPStatus(405, "Method Not Allowed")
    public static let requestTimeout = HTTPStatus(408, "Request Timeout")
    public static let conflict = HTTPStatus(409, "Conflict")
    public static let lengthRequired = HTTPStatus(411, "Length Required")
    public static let contentTooLarge = HTTPStatus(413, "Content Too Large")
    public static let uriTooLong = HTTPStatus(414, "URI Too Long")
    public static let unsupportedMediaType = HTTPStatus(415, "Unsupported Media Type")
    public static let expectationFailed = HTTPStatus(417, "Expectation Failed")
    public static let unprocessableContent = HTTPStatus(422, "Unprocessable Content")
    public static let tooManyRequests = HTTPStatus(429, "Too Many Requests")
    public static let requestHeaderFieldsTooLarge = HTTPStatus(431, "Request Header Fields Too Large")
    public static let internalServerError = HTTPStatus(500, "Internal Server Error")
    public static let notImplemented = HTTPStatus(501, "Not Implemented")
    public static let serviceUnavailable = HTTPStatus(503, "Service Unavailable")
    public static let httpVersionNotSupported = HTTPStatus(505, "HTTP Version Not Supported")
}

public enum HTTPVersion: String, Sendable, Hashable {
    case http10 = "HTTP/1.0", http11 = "HTTP/1.1"
}

/// Header fields in arrival order; names compare case-insensitively (RFC 9110 §5.1).
public struct HTTPHeaders: Sendable, Hashable, Sequence {
    public struct Field: Sendable, Hashable {
        public let name: String
        public let value: String
        /// Lower-cased name, computed once for lookups.
        let key: String
    }

    private(set) var fields: [Field] = []

    public init() {}
    public init(_ pairs: [(String, String)]) { for (name, value) in pairs { add(name, value) } }

    public mutating func add(_ name: String, _ value: String) {
        fields.append(Field(name: name, value: value, key: name.lowercased()))
    }

    /// Replaces every field of that name with one field.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    public mutating func remove(_ name: String) {
        let key = name.lowercased()
        fields.removeAll { $0.key == key }
    }

    /// The first value of a field, or nil.
    public subscript(_ name: String) -> String? {
        let key = name.lowercased()
        return fields.first { $0.key == key }?.value
    }

    /// Every value of a field, in order.
    public func values(_ name: String) -> [String] {
        let key = name.lowercased()
        return fields.filter { $0.key == key }.map(\.value)
    }

    /// The comma-separated list elements of every field of that name, trimmed and lower-cased.
    ///
    /// Works on bytes and folds ASCII only: Unicode case folding would let `chun\u{212A}ed` (Kelvin
    /// sign) pass as `chunked` while a proxy in front sees an unknown coding — a smuggling vector —
    /// and a combining mark would merge with the comma before it.
    public func tokens(_ name: String) -> [String] {
        values(name).flatMap { value in
            value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true).map { element in
                String(decoding: Self.trimmed(element).map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
            }
        }.filter { !$0.isEmpty }
    }

    static func trimmed<C: BidirectionalCollection<UInt8>>(_ bytes: C) -> C.SubSequence {
        var slice = bytes[...]
        while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
        while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
        return slice
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }
    public var count: Int { fields.count }
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }
}

extension Substring {
    /// Drops leading and trailing SP/HTAB bytes (RFC 9110 §5.5 OWS). Bytes, not Characters, so a space
    /// followed by a combining mark is still trimmed.
    func trimmingHTTPWhitespace() -> String {
        String(decoding: HTTPHeaders.trimmed(utf8), as: UTF8.self)
    }
}

/// How the request body is delimited (RFC 9112 §6).
public enum BodyFraming: Sendable, Hashable {
    case none
    case length(Int)
    case chunked
}

/// A parsed request line and header section, before any body byte is read.
public struct HTTPRequestHead: Sendable, Hashable {
    public var method: HTTPMethod
    /// The request-target exactly as sent (origin-form, absolute-form or `*`).
    public var target: String
    /// The decoded path of the target, always starting with `/`.
    public var path: String
    /// The raw query string after `?`, without it; empty when absent.
    public var query: String
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var framing: BodyFraming
    /// False when the client asked to close after this exchange (or HTTP/1.0 without keep-alive).
    public var keepAlive: Bool
    /// True for `Expect: 100-continue`.
    public var expectsContinue: Bool

    public init(method: HTTPMethod, target: String, path: String? = nil, query: String = "", version: HTTPVersion = .http11,
                headers: HTTPHeaders = HTTPHeaders(), framing: BodyFraming = .none, keepAlive: Bool = true, expectsContinue: Bool = false) {
        self.method = method
        self.target = target
        self.path = path ?? target
        self.query = query
        self.version = version
        self.headers = headers
        self.framing = framing
        self.keepAlive = keepAlive
        self.expectsContinue = expectsContinue
    }
}

/// Why a request was refused, with the status the client must receive before the connection closes.
public struct HTTPParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public let status: HTTPStatus
    public let reason: String
    public init(_ status: HTTPStatus, _ reason: String) { self.status = status; self.reason = reason }
    public var description: String { "\(status.code): \(reason)" }
}
