import HTTPClient

/// A failed S3 operation. S3's own `status`, `Code` and `Message` are kept as they came.
public enum S3Error: Error, Sendable, CustomStringConvertible {
    /// S3 answered with an error document (or, for HEAD, only a status).
    case service(operation: String, bucket: String, status: Int, code: String, message: String)
    /// The request did not complete (connection refused, reset, timeout).
    case transport(operation: String, HTTPClientError)
    /// S3 answered something we could not understand.
    case invalidResponse(operation: String, detail: String)
    /// The configuration cannot work (an endpoint that is not an http(s) URL).
    case invalidConfiguration(String)
    /// Retries ran out; the last error is kept.
    case retriesExhausted(operation: String, attempts: Int, last: String)
    /// What S3 stored, or what was downloaded, is not what was sent: the size, ETag or SHA-1 differs.
    case integrity(operation: String, detail: String)
    /// A local file could not be read or written (the file to upload, the download target).
    case localFile(path: String, detail: String)

    public var status: Int? { if case .service(_, _, let status, _, _) = self { status } else { nil } }
    public var code: String? { if case .service(_, _, _, let code, _) = self { code } else { nil } }

    /// Worth trying again with backoff: 500, 503, SlowDown and friends, and dropped connections.
    var isTransient: Bool {
        switch self {
        case .service(_, _, let status, let code, _):
            status == 500 || status == 503 || ["SlowDown", "InternalError", "RequestTimeout", "ServiceUnavailable"].contains(code)
        case .transport(_, let error): error.kind != .localFile && error.kind != .setup && error.kind != .aborted
        default: false
        }
    }

    public var description: String {
        switch self {
        case .service(let operation, let bucket, let status, let code, let message):
            "S3 \(operation) on bucket '\(bucket)' failed: \(status) \(code)" + (message.isEmpty ? "" : ": \(message)")
                + (Self.hint(code: code, bucket: bucket).map { " — \($0)" } ?? "")
        case .transport(let operation, let error): "S3 \(operation) failed: \(error)"
        case .invalidResponse(let operation, let detail): "S3 \(operation): unexpected answer: \(detail)"
        case .invalidConfiguration(let detail): "S3 configuration: \(detail)"
        case .retriesExhausted(let operation, let attempts, let last): "S3 \(operation) failed after \(attempts) attempts; last error: \(last)"
        case .integrity(let operation, let detail): "S3 \(operation): integrity check failed: \(detail)"
        case .localFile(let path, let detail): "S3 transfer: local file \(path): \(detail)"
        }
    }

    /// What a homeowner should do about the common permanent errors.
    static func hint(code: String, bucket: String) -> String? {
        switch code {
        case "AccessDenied":
            "the access key is not allowed to use bucket '\(bucket)'; give it read, write, list and delete on the bucket"
        case "NoSuchBucket":
            "bucket '\(bucket)' does not exist at this endpoint and region; check the bucket name, endpoint and region"
        case "SignatureDoesNotMatch":
            "the secret access key does not match the access key id; copy the secret again (no spaces) and check the region"
        case "InvalidAccessKeyId":
            "the access key id is not known to this S3 endpoint; check the key id and the endpoint"
        default:
            nil
        }
    }
}
