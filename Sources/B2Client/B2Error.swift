import HTTPClient

/// A failed B2 operation. B2's own `status`, `code` and `message` are kept as they came.
public enum B2Error: Error, Sendable, CustomStringConvertible {
    /// B2 answered with an error document.
    case service(operation: String, status: Int, code: String, message: String, retryAfter: Int?)
    /// The request did not complete (connection refused, reset, timeout).
    case transport(operation: String, HTTPClientError)
    /// B2 answered something we could not understand.
    case invalidResponse(operation: String, detail: String)
    /// A local precondition: the file, the bucket, the sizes.
    case invalidRequest(String)
    /// The bytes B2 confirmed are not the bytes we sent or expected.
    case integrity(String)
    /// Retries ran out; the last error is kept.
    case retriesExhausted(operation: String, attempts: Int, last: String)

    public var status: Int? { if case .service(_, let status, _, _, _) = self { status } else { nil } }
    public var code: String? { if case .service(_, _, let code, _, _) = self { code } else { nil } }

    /// Worth trying again (with backoff): B2 says so for 408, 429 and 5xx, and networks drop.
    var isTransient: Bool {
        switch self {
        case .service(_, let status, _, _, _): status == 408 || status == 429 || status >= 500
        case .transport(_, let error): error.kind != .localFile && error.kind != .setup && error.kind != .aborted
        default: false
        }
    }

    /// The account token is no longer valid: authorize again.
    var needsReauthorization: Bool {
        code == "expired_auth_token" || code == "bad_auth_token"
    }

    /// Backblaze's rule for uploads: after 401, 408, 5xx or a broken connection, get a new upload URL.
    var needsNewUploadURL: Bool {
        switch self {
        case .service(_, let status, _, _, _): status == 401 || status == 408 || status >= 500
        case .transport: isTransient
        default: false
        }
    }

    public var description: String {
        switch self {
        case .service(let operation, let status, let code, let message, _):
            "\(operation) failed: \(status) \(code): \(message)" + (hint.map { " — \($0)" } ?? "")
        case .transport(let operation, let error): "\(operation) failed: \(error)"
        case .invalidResponse(let operation, let detail): "\(operation): unexpected answer from B2: \(detail)"
        case .invalidRequest(let detail): detail
        case .integrity(let detail): "integrity check failed: \(detail)"
        case .retriesExhausted(let operation, let attempts, let last): "\(operation) failed after \(attempts) attempts; last error: \(last)"
        }
    }

    /// What a homeowner should do about the permanent errors.
    var hint: String? {
        switch code {
        case "cap_exceeded", "storage_cap_exceeded", "transaction_cap_exceeded":
            "a Backblaze account cap is reached; raise the caps under 'Caps & Alerts' in your Backblaze account"
        case "unauthorized":
            "the application key lacks a capability or access to this bucket; create a key with read and write access to the bucket"
        case "access_denied":
            "B2 refused access (for example Object Lock, or a key restricted to another bucket or prefix)"
        default:
            nil
        }
    }
}
