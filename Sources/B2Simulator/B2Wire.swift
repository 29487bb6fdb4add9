import Foundation
import HTTPServer

// Wire formats shared by the three servers: B2's error envelope, JSON in and out, B2's string
// encoding and byte ranges.

/// An error answered the way B2 answers: `{"code", "message", "status"}` with that HTTP status.
/// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-native-api-error-handling-and-status-codes
struct B2Error: HTTPResponseError, Sendable, CustomStringConvertible {
    let status: Int
    let code: String
    let message: String
    var headers: [(String, String)] = []

    init(_ status: Int, _ code: String, _ message: String, headers: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    var response: HTTPResponse {
        let body = JSON.object([("code", .string(code)), ("message", .string(message)), ("status", .int(status))])
        var response = HTTPResponse(Self.httpStatus(status), body: .bytes(body.encoded()))
        response.headers.set("Content-Type", "application/json;charset=utf-8")
        response.headers.set("Cache-Control", "max-age=0, no-cache, no-store")
        for (name, value) in headers { response.headers.add(name, value) }
        return response
    }

    var description: String { "\(status) \(code): \(message)" }

    static func httpStatus(_ code: Int) -> HTTPStatus {
        switch code {
        case 400: .badRequest
        case 401: .unauthorized
        case 403: .forbidden
        case 404: .notFound
        case 405: .methodNotAllowed
        case 408: .requestTimeout
        case 411: .lengthRequired
        case 416: HTTPStatus(416, "Range Not Satisfiable")
        case 429: .tooManyRequests
        case 500: .internalServerError
        case 503: .serviceUnavailable
        default: HTTPStatus(code, "Error")
        }
    }

    // The errors several endpoints share.
    static func badRequest(_ message: String) -> B2Error { B2Error(400, "bad_request", message) }
    static func missingField(_ name: String) -> B2Error { badRequest("required field \(name) is missing") }
    static func noActiveUpload(_ fileID: String) -> B2Error { badRequest("No active upload for: \(fileID)") }
    static func unauthorized(_ message: String) -> B2Error { B2Error(401, "unauthorized", message) }
    static let badAuthToken = B2Error(401, "bad_auth_token", "Invalid authorization token")
    static let expiredAuthToken = B2Error(401, "expired_auth_token", "Authorization token has expired")
}

/// A JSON value. Objects keep their key order so responses read like B2's.
enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.double(let a), .double(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    static func optional(_ text: String?) -> JSON { text.map(JSON.string) ?? .null }

    /// A string map as an object with sorted keys (B2's `fileInfo`, `bucketInfo`).
    static func map(_ values: [String: String]) -> JSON {
        .object(values.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
    }

    subscript(key: String) -> JSON? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    func encoded() -> [UInt8] {
        var out = ""
        write(to: &out)
        return Array(out.utf8)
    }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value): out += value.isFinite ? String(value) : "null"
        case .string(let value): Self.writeString(value, to: &out)
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.write(to: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (index, (key, value)) in pairs.enumerated() {
                if index > 0 { out += "," }
                Self.writeString(key, to: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }

    private static func writeString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// Parses a request body; nil when it is not JSON.
    static func parse(_ bytes: [UInt8]) -> JSON? {
        try? JSONDecoder().decode(JSON.self, from: Data(bytes))
    }
}

extension JSON: Decodable {
    private struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: Key.self) {
            self = .object(try object.allKeys.sorted { $0.stringValue < $1.stringValue }.map { ($0.stringValue, try object.decode(JSON.self, forKey: $0)) })
        } else if var array = try? decoder.unkeyedContainer() {
            var values: [JSON] = []
            while !array.isAtEnd { values.append(try array.decode(JSON.self)) }
            self = .array(values)
        } else {
            let single = try decoder.singleValueContainer()
            if single.decodeNil() {
                self = .null
            } else if let value = try? single.decode(Bool.self) {
                self = .bool(value)
            } else if let value = try? single.decode(Int.self) {
                self = .int(value)
            } else if let value = try? single.decode(Double.self) {
                self = .double(value)
            } else {
                self = .string(try single.decode(String.self))
            }
        }
    }
}

/// A call's parameters: a JSON body for POST, the query string for GET ("This API endpoint can be
/// called using a GET request by converting the parameters … to query parameters").
/// - SeeAlso: https://www.backblaze.com/apidocs/b2-get-upload-url
struct Parameters: Sendable {
    private let values: [String: JSON]
    /// Query values are all strings; numbers and booleans are parsed from them.
    private let fromQuery: Bool

    init(json: [(String, JSON)]) {
        values = Dictionary(json, uniquingKeysWith: { first, _ in first })
        fromQuery = false
    }

    init(query: [(name: String, value: String)]) {
        values = Dictionary(query.map { ($0.name, JSON.string($0.value)) }, uniquingKeysWith: { first, _ in first })
        fromQuery = true
    }

    /// Reads a request's parameters: JSON object body for POST, query for GET.
    static func read(_ request: HTTPRequest, body: [UInt8]) throws(B2Error) -> Parameters {
        if request.method != .post { return Parameters(query: request.queryItems) }
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return Parameters(json: []) }
        guard let json = JSON.parse(body) else { throw B2Error(400, "bad_json", "the request body is not valid JSON") }
        guard case .object(let pairs) = json else { throw B2Error(400, "bad_json", "the request body must be a JSON object") }
        return Parameters(json: pairs)
    }

    func string(_ key: String) throws(B2Error) -> String? {
        switch values[key] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        default: throw B2Error.badRequest("field \(key) must be a string")
        }
    }

    func requiredString(_ key: String) throws(B2Error) -> String {
        guard let value = try string(key), !value.isEmpty else { throw B2Error.missingField(key) }
        return value
    }

    func int(_ key: String) throws(B2Error) -> Int? {
        switch values[key] {
        case nil, .null?: return nil
        case .int(let value)?: return value
        case .string(let text)? where fromQuery:
            guard let value = Int(text) else { throw B2Error.badRequest("field \(key) must be an integer: \(text)") }
            return value
        default: throw B2Error.badRequest("field \(key) must be an integer")
        }
    }

    func bool(_ key: String) throws(B2Error) -> Bool? {
        switch values[key] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        case .string(let text)? where fromQuery && (text == "true" || text == "false"): return text == "true"
        default: throw B2Error.badRequest("field \(key) must be a boolean")
        }
    }

    func stringArray(_ key: String) throws(B2Error) -> [String]? {
        switch values[key] {
        case nil, .null?: return nil
        case .array(let items)?:
            var strings: [String] = []
            for item in items {
                guard case .string(let text) = item else { throw B2Error.badRequest("field \(key) must be an array of strings") }
                strings.append(text)
            }
            return strings
        default: throw B2Error.badRequest("field \(key) must be an array of strings")
        }
    }

    /// A value as sent (`fileRetention`), for callers that check its shape themselves.
    func json(_ key: String) -> JSON? { values[key] }

    /// A JSON object of string values (`fileInfo`).
    func stringMap(_ key: String) throws(B2Error) -> [String: String]? {
        switch values[key] {
        case nil, .null?: return nil
        case .object(let pairs)?:
            var map: [String: String] = [:]
            for (name, value) in pairs {
                guard case .string(let text) = value else { throw B2Error.badRequest("\(key) values must be strings: \(name)") }
                map[name] = text
            }
            return map
        default: throw B2Error.badRequest("field \(key) must be a JSON object")
        }
    }
}

/// B2's percent-encoding of file names and info values in URLs and headers.
/// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-native-api-string-encoding
enum B2StringEncoding {
    /// Bytes that may stay literal: letters, digits, `/` (never encoded) and `! $ ' ( ) * - . : ; = @ _ ~`.
    private static let literal: Set<UInt8> = {
        var set = Set(Array("/!$'()*-.:;=@_~".utf8))
        set.formUnion(UInt8(ascii: "a")...UInt8(ascii: "z"))
        set.formUnion(UInt8(ascii: "A")...UInt8(ascii: "Z"))
        set.formUnion(UInt8(ascii: "0")...UInt8(ascii: "9"))
        return set
    }()
    private static let hex = Array("0123456789ABCDEF".utf8)

    /// Encodes every other byte as `%XX` (a space as `%20`, a `+` as `%2B`).
    static func encode(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if literal.contains(byte) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes and `+` as a space; nil for a broken escape or bytes that are not UTF-8.
    static func decode(_ text: some StringProtocol) -> String? {
        PercentDecoding.decode(text, plusAsSpace: true)
    }
}

/// The part of a file a `Range` header asks for (RFC 9110 §14.1.2, one range only, as B2 serves).
enum ByteRange {
    /// The inclusive range to send, or a 416 error when the header cannot be satisfied.
    static func resolve(_ header: String, size: Int) throws(B2Error) -> ClosedRange<Int> {
        let unsatisfiable = B2Error(416, "range_not_satisfiable", "The range in the request is outside the size of the file",
                                    headers: [("Content-Range", "bytes */\(size)")])
        let text = header.trimmingCharacters(in: .whitespaces)
        guard text.lowercased().hasPrefix("bytes="), size > 0 else { throw unsatisfiable }
        let spec = text.dropFirst("bytes=".count)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { throw unsatisfiable }
        let first = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        if first.isEmpty {
            // Suffix range: the last N bytes.
            guard let count = Int(last), count > 0 else { throw unsatisfiable }
            return max(0, size - count)...(size - 1)
        }
        guard let start = Int(first), start >= 0, start < size else { throw unsatisfiable }
        if last.isEmpty { return start...(size - 1) }
        guard let end = Int(last), end >= start else { throw unsatisfiable }
        return start...min(end, size - 1)
    }
}

extension HTTPResponse {
    /// A JSON body as B2 sends it.
    static func b2JSON(_ value: JSON) -> HTTPResponse {
        HTTPResponse(.ok, headers: HTTPHeaders([("Content-Type", "application/json;charset=utf-8"),
                                                ("Cache-Control", "max-age=0, no-cache, no-store")]),
                     body: .bytes(value.encoded()))
    }
}

/// Compares names the way B2 orders them: by their UTF-8 bytes.
func utf8Less(_ lhs: String, _ rhs: String) -> Bool {
    lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
}
