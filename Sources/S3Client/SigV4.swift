import Foundation
import Hashing

/// AWS Signature Version 4 (header form), built on Hashing's SHA-256 and HMAC-SHA256.
///
/// The caller chooses which headers are signed (S3Client signs `host`, `x-amz-content-sha256`,
/// `x-amz-date` and `content-md5` when it sends one) and passes the path already URI-encoded, as S3
/// wants it encoded once (other services encode twice; we only talk to S3).
/// The secret is never part of a description.
public struct SigV4Signer: Sendable, CustomStringConvertible {
    public let accessKeyID: String
    private let secretAccessKey: String
    public let region: String
    public let service: String

    /// `x-amz-content-sha256` for a body that is streamed and not hashed first.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    public init(accessKeyID: String, secretAccessKey: String, region: String, service: String = "s3") {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.region = region
        self.service = service
    }

    public var description: String { "SigV4Signer(key id \(accessKeyID), \(region)/\(service))" }

    /// `20150830T123600Z`, the `x-amz-date` form (UTC).
    public static func amzDate(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    /// RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - . _ ~` (and `/` when `keepSlash`).
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical query: names and values encoded, sorted by name then value; a valueless name
    /// (`?uploads`) becomes `uploads=`.
    public static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        let encoded: [(String, String)] = query.map { (encode($0.name), encode($0.value)) }
        let sorted = encoded.sorted { (a: (String, String), b: (String, String)) -> Bool in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
        return sorted.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// The canonical request of SigV4 task 1. `headers` are exactly the headers to sign.
    public static func canonicalRequest(method: String, encodedPath: String, query: [(name: String, value: String)],
                                        headers: [(name: String, value: String)], payloadHash: String) -> (request: String, signedHeaders: String) {
        let normalized = headers.map { ($0.name.lowercased(), $0.value.trimmingCharacters(in: .whitespaces)) }
            .sorted { $0.0 < $1.0 }
        let signed = normalized.map(\.0).joined(separator: ";")
        let canonicalHeaders = normalized.map { "\($0.0):\($0.1)\n" }.joined()
        let request = [method, encodedPath.isEmpty ? "/" : encodedPath, canonicalQuery(query), canonicalHeaders, signed, payloadHash]
            .joined(separator: "\n")
        return (request, signed)
    }

    /// The `Authorization` header value. `headers` must include `x-amz-date` with `amzDate(date)`.
    public func authorization(method: String, encodedPath: String, query: [(name: String, value: String)],
                              headers: [(name: String, value: String)], payloadHash: String, date: Date) -> String {
        let stamp = Self.amzDate(date)
        let day = String(stamp.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let (request, signed) = Self.canonicalRequest(method: method, encodedPath: encodedPath, query: query, headers: headers, payloadHash: payloadHash)
        let stringToSign = ["AWS4-HMAC-SHA256", stamp, scope, Self.sha256Hex(Array(request.utf8))].joined(separator: "\n")
        var key = Array("AWS4\(secretAccessKey)".utf8)
        for part in [day, region, service, "aws4_request"] { key = HMAC.sha256(key: key, message: Array(part.utf8)) }
        let signature = Hex.encode(HMAC.sha256(key: key, message: Array(stringToSign.utf8)))
        return "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope), SignedHeaders=\(signed), Signature=\(signature)"
    }

    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        let digest = StreamingDigest(.sha256)
        digest.update(bytes)
        return digest.hexDigest()
    }
}
