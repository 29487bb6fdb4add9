import Foundation
import HTTPClient
import Logging

/// The B2 native API (v4). Knows nothing of Home Assistant.
///
/// Holds the account authorization and renews it when B2 says it expired; every JSON call follows
/// Backblaze's retry rules (re-authorize on `bad_auth_token`/`expired_auth_token`, back off on 408, 429
/// and 5xx, honour `Retry-After`). Upload calls are retried one level up, by the upload engine, because
/// they need a new upload URL.
/// - SeeAlso: https://www.backblaze.com/apidocs/introduction-to-the-b2-native-api
public actor B2Client {
    public nonisolated let realm: String
    public nonisolated let retryPolicy: RetryPolicy
    let credentials: B2Credentials
    let http: HTTPClient
    let logger: Logger
    private var authorization: B2Authorization?
    static let apiVersion = "v4"

    /// - Parameter realm: the API base, `B2_API_URL` (default `https://api.backblazeb2.com`).
    public init(credentials: B2Credentials, realm: String = "https://api.backblazeb2.com", retryPolicy: RetryPolicy = RetryPolicy(),
                http: HTTPClient? = nil, logger: Logger) {
        self.credentials = credentials
        self.realm = realm.hasSuffix("/") ? String(realm.dropLast()) : realm
        self.retryPolicy = retryPolicy
        self.http = http ?? HTTPClient(logger: logger)
        self.logger = logger
    }

    // MARK: Authorization

    /// The current authorization, obtaining one first if needed.
    public func authorized() async throws(B2Error) -> B2Authorization {
        if let authorization { return authorization }
        return try await authorize()
    }

    /// `b2_authorize_account`; replaces the cached authorization.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-authorize-account
    @discardableResult
    public func authorize() async throws(B2Error) -> B2Authorization {
        let operation = "b2_authorize_account"
        let basic = Data("\(credentials.keyID):\(credentials.applicationKey)".utf8).base64EncodedString()
        let request = HTTPClientRequest(url: "\(realm)/b2api/\(Self.apiVersion)/b2_authorize_account", headers: [("Authorization", "Basic \(basic)")])
        let data = try await withTransientRetries(operation) { () throws(B2Error) -> [UInt8] in
            let response = try await self.send(request, operation)
            if response.status == 401 {
                // A wrong key is permanent: say which options to check instead of retrying.
                throw B2Error.service(operation: operation, status: 401, code: Self.errorBody(response)?.code ?? "unauthorized",
                                      message: "the application key ID or key is wrong, or the key was deleted; check b2_key_id and b2_key", retryAfter: nil)
            }
            return try Self.checked(response, operation)
        }
        let result: B2Authorization = try Self.decode(AuthorizeResponse.self, data, operation).normalised
        authorization = result
        logger.debug("authorized with B2", metadata: ["b2.api_url": "\(result.apiURL)", "b2.restricted": "\(result.allowedBuckets != nil)"])
        return result
    }

    // MARK: JSON calls

    /// POSTs a JSON call to `apiUrl`, re-authorizing once on an invalid token and retrying transient errors.
    func call(_ operation: String, _ body: [String: Any]) async throws(B2Error) -> [UInt8] {
        var reauthorized = false
        while true {
            let auth = try await authorized()
            do {
                return try await withTransientRetries(operation) { () throws(B2Error) -> [UInt8] in
                    let payload: [UInt8]
                    do { payload = Array(try JSONSerialization.data(withJSONObject: body)) } catch {
                        throw B2Error.invalidRequest("cannot encode \(operation) request")
                    }
                    let request = HTTPClientRequest(method: "POST", url: "\(auth.apiURL)/b2api/\(Self.apiVersion)/\(operation)",
                                                    headers: [("Authorization", auth.token), ("Content-Type", "application/json")], body: payload)
                    return try Self.checked(try await self.send(request, operation), operation)
                }
            } catch where error.needsReauthorization && !reauthorized {
                reauthorized = true
                authorization = nil
                logger.info("B2 authorization expired; authorizing again", metadata: ["b2.operation": "\(operation)"])
            }
        }
    }

    func call<T: Decodable>(_ operation: String, _ body: [String: Any], as type: T.Type) async throws(B2Error) -> T {
        try Self.decode(T.self, try await call(operation, body), operation)
    }

    /// Runs `attempt` until it succeeds, fails permanently, or the policy's attempts run out.
    func withTransientRetries<T>(_ operation: String, _ attempt: () async throws(B2Error) -> T) async throws(B2Error) -> T {
        var tries = 0
        while true {
            tries += 1
            do {
                return try await attempt()
            } catch where error.isTransient {
                guard tries < retryPolicy.maxAttempts else {
                    throw B2Error.retriesExhausted(operation: operation, attempts: tries, last: error.description)
                }
                let retryAfter: Int? = if case .service(_, _, _, _, let value) = error { value } else { nil }
                let wait = retryPolicy.delay(afterAttempt: tries, retryAfter: retryAfter)
                logger.info("B2 call failed, retrying", metadata: ["b2.operation": "\(operation)", "error": "\(error)", "retry.in": "\(wait)"])
                try? await Task.sleep(for: wait)
            }
        }
    }

    nonisolated func send(_ request: HTTPClientRequest, _ operation: String) async throws(B2Error) -> HTTPClientResponse {
        do {
            return try await http.send(request)
        } catch {
            throw B2Error.transport(operation: operation, error)
        }
    }

    /// The body of a 2xx answer, or the service error it carries.
    static func checked(_ response: HTTPClientResponse, _ operation: String) throws(B2Error) -> [UInt8] {
        guard (200..<300).contains(response.status) else { throw serviceError(response, operation) }
        return response.body
    }

    static func serviceError(_ response: HTTPClientResponse, _ operation: String) -> B2Error {
        let body = errorBody(response)
        let retryAfter = response.header("Retry-After").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return .service(operation: operation, status: body?.status ?? response.status, code: body?.code ?? "http_\(response.status)",
                        message: body?.message ?? String(response.text.prefix(200)), retryAfter: retryAfter)
    }

    static func errorBody(_ response: HTTPClientResponse) -> B2ErrorBody? {
        try? JSONDecoder().decode(B2ErrorBody.self, from: Data(response.body))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ data: [UInt8], _ operation: String) throws(B2Error) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(data))
        } catch {
            throw B2Error.invalidResponse(operation: operation, detail: "\(error)")
        }
    }

    // MARK: Buckets

    /// Finds a bucket by name; works with a bucket-restricted key (which must name its bucket).
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-list-buckets
    public func bucket(named name: String) async throws(B2Error) -> B2Bucket {
        let auth = try await authorized()
        if let allowed = auth.allowedBuckets, !allowed.contains(where: { $0.name == name }) {
            let names = allowed.map(\.name).joined(separator: ", ")
            throw B2Error.invalidRequest("the application key is restricted to bucket \(names), not \(name); use that bucket or a key for \(name)")
        }
        struct Buckets: Decodable { let buckets: [B2Bucket] }
        let result = try await call("b2_list_buckets", ["accountId": auth.accountID, "bucketName": name], as: Buckets.self)
        guard let bucket = result.buckets.first(where: { $0.bucketName == name }) else {
            throw B2Error.invalidRequest("the bucket \(name) does not exist in this Backblaze account; create it or fix b2_bucket")
        }
        return bucket
    }

    // MARK: Uploads

    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-get-upload-url
    public func uploadURL(bucketID: String) async throws(B2Error) -> B2UploadTarget {
        try await call("b2_get_upload_url", ["bucketId": bucketID], as: B2UploadTarget.self)
    }

    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-get-upload-part-url
    public func uploadPartURL(fileID: String) async throws(B2Error) -> B2UploadTarget {
        try await call("b2_get_upload_part_url", ["fileId": fileID], as: B2UploadTarget.self)
    }

    /// `b2_upload_file` of a file range, once (the caller retries with a new URL when B2 says so).
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-upload-file
    public nonisolated func uploadFile(to target: B2UploadTarget, fileName: String, range: FileRange, sha1: String, contentType: String = "b2/x-auto",
                                       fileInfo: [String: String] = [:], retention: B2FileRetention? = nil, maxBytesPerSecond: Int64? = nil,
                                       progress: (@Sendable (TransferProgress) -> Bool)? = nil) async throws(B2Error) -> B2File {
        let operation = "b2_upload_file"
        var headers = [("Authorization", target.authorizationToken), ("X-Bz-File-Name", B2FileName.encode(fileName)),
                       ("Content-Type", contentType), ("X-Bz-Content-Sha1", sha1)]
        for (key, value) in fileInfo.sorted(by: { $0.key < $1.key }) { headers.append(("X-Bz-Info-\(key)", B2FileName.encode(value))) }
        if let retention {
            headers += [("X-Bz-File-Retention-Mode", retention.mode.rawValue),
                        ("X-Bz-File-Retention-Retain-Until-Timestamp", String(retention.retainUntilMillis))]
        }
        var request = HTTPClientRequest(method: "POST", url: target.uploadUrl, headers: headers, timeout: nil)
        request.bodyFile = range
        request.maxSendBytesPerSecond = maxBytesPerSecond
        request.progress = progress
        let data = try Self.checked(try await send(request, operation), operation)
        return try Self.decode(B2File.self, data, operation)
    }

    /// - Parameter retention: Object Lock retention of the finished file (the key needs `writeFileRetentions`).
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-start-large-file
    public func startLargeFile(bucketID: String, fileName: String, contentType: String = "b2/x-auto", fileInfo: [String: String],
                               retention: B2FileRetention? = nil) async throws(B2Error) -> B2File {
        var body: [String: Any] = ["bucketId": bucketID, "fileName": fileName, "contentType": contentType, "fileInfo": fileInfo]
        if let retention { body["fileRetention"] = retention.json }
        return try await call("b2_start_large_file", body, as: B2File.self)
    }

    /// `b2_upload_part` of a file range, once.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-upload-part
    public nonisolated func uploadPart(to target: B2UploadTarget, partNumber: Int, range: FileRange, sha1: String, maxBytesPerSecond: Int64? = nil,
                                       progress: (@Sendable (TransferProgress) -> Bool)? = nil) async throws(B2Error) -> B2Part {
        let operation = "b2_upload_part"
        var request = HTTPClientRequest(method: "POST", url: target.uploadUrl, headers: [
            ("Authorization", target.authorizationToken), ("X-Bz-Part-Number", String(partNumber)), ("X-Bz-Content-Sha1", sha1),
        ], timeout: nil)
        request.bodyFile = range
        request.maxSendBytesPerSecond = maxBytesPerSecond
        request.progress = progress
        let data = try Self.checked(try await send(request, operation), operation)
        return try Self.decode(B2Part.self, data, operation)
    }

    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-finish-large-file
    public func finishLargeFile(fileID: String, partSHA1s: [String]) async throws(B2Error) -> B2File {
        try await call("b2_finish_large_file", ["fileId": fileID, "partSha1Array": partSHA1s], as: B2File.self)
    }

    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-cancel-large-file
    public func cancelLargeFile(fileID: String) async throws(B2Error) {
        _ = try await call("b2_cancel_large_file", ["fileId": fileID])
    }

    /// Every uploaded part of an unfinished large file (all pages).
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-list-parts
    public func listParts(fileID: String) async throws(B2Error) -> [B2Part] {
        struct Page: Decodable { let parts: [B2Part]; let nextPartNumber: Int? }
        var parts: [B2Part] = []
        var start = 1
        while true {
            let page = try await call("b2_list_parts", ["fileId": fileID, "startPartNumber": start, "maxPartCount": 1000], as: Page.self)
            parts += page.parts
            guard let next = page.nextPartNumber, next > start else { return parts }
            start = next
        }
    }

    /// Unfinished large files in a bucket, optionally under a prefix (all pages).
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-list-unfinished-large-files
    public func listUnfinishedLargeFiles(bucketID: String, prefix: String? = nil) async throws(B2Error) -> [B2File] {
        struct Page: Decodable { let files: [B2File]; let nextFileId: String? }
        var files: [B2File] = []
        var startFileID: String?
        while true {
            var body: [String: Any] = ["bucketId": bucketID, "maxFileCount": 100]
            if let prefix { body["namePrefix"] = prefix }
            if let startFileID { body["startFileId"] = startFileID }
            let page = try await call("b2_list_unfinished_large_files", body, as: Page.self)
            files += page.files
            guard let next = page.nextFileId, next != startFileID else { return files }
            startFileID = next
        }
    }

    // MARK: Listing, hiding, deleting

    /// The newest visible version of each name under `prefix` (all pages).
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-list-file-names
    /// With a `delimiter` ("/"), names below a deeper level come back once as a `folder` entry.
    public func listFileNames(bucketID: String, prefix: String = "", delimiter: String? = nil, pageSize: Int = 1000) async throws(B2Error) -> [B2File] {
        struct Page: Decodable { let files: [B2File]; let nextFileName: String? }
        var files: [B2File] = []
        var start: String?
        while true {
            var body: [String: Any] = ["bucketId": bucketID, "maxFileCount": pageSize, "prefix": prefix]
            if let delimiter { body["delimiter"] = delimiter }
            if let start { body["startFileName"] = start }
            let page = try await call("b2_list_file_names", body, as: Page.self)
            files += page.files
            guard let next = page.nextFileName, next != start else { return files }
            start = next
        }
    }

    /// Every version (uploads, hide markers, unfinished large files) under `prefix`, newest first per name.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-list-file-versions
    public func listFileVersions(bucketID: String, prefix: String = "", pageSize: Int = 1000) async throws(B2Error) -> [B2File] {
        struct Page: Decodable { let files: [B2File]; let nextFileName: String?; let nextFileId: String? }
        var files: [B2File] = []
        var start: (name: String, id: String?)?
        while true {
            var body: [String: Any] = ["bucketId": bucketID, "maxFileCount": pageSize, "prefix": prefix]
            if let start {
                body["startFileName"] = start.name
                if let id = start.id { body["startFileId"] = id }
            }
            let page = try await call("b2_list_file_versions", body, as: Page.self)
            files += page.files
            guard let name = page.nextFileName else { return files }
            if let start, start.name == name, start.id == page.nextFileId { return files }
            start = (name, page.nextFileId)
        }
    }

    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-hide-file
    public func hideFile(bucketID: String, fileName: String) async throws(B2Error) -> B2File {
        try await call("b2_hide_file", ["bucketId": bucketID, "fileName": fileName], as: B2File.self)
    }

    /// A version under an Object Lock retention is refused with 403 `access_denied`; `bypassGovernance` (sent only when
    /// true) lifts a governance lock for a key with that capability.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-delete-file-version
    public func deleteFileVersion(fileName: String, fileID: String, bypassGovernance: Bool = false) async throws(B2Error) {
        var body: [String: Any] = ["fileName": fileName, "fileId": fileID]
        if bypassGovernance { body["bypassGovernance"] = true }
        _ = try await call("b2_delete_file_version", body)
    }

    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-get-file-info
    public func fileInfo(fileID: String) async throws(B2Error) -> B2File {
        try await call("b2_get_file_info", ["fileId": fileID], as: B2File.self)
    }

    // MARK: Downloads

    public enum DownloadSource: Sendable, Hashable {
        case name(bucket: String, fileName: String)
        case id(String)
    }

    /// One ranged GET into `destination` at `offset` (the download engine resumes and verifies).
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-download-file-by-name
    public func download(_ source: DownloadSource, range: ClosedRange<Int64>?, into destination: ResponseFile) async throws(B2Error) -> HTTPClientResponse {
        try await get(source, range: range, into: destination)
    }

    /// A byte range in memory (the verifier reads backups from B2 in chunks); transient failures are retried.
    public func read(_ source: DownloadSource, range: ClosedRange<Int64>) async throws(B2Error) -> [UInt8] {
        var attempt = 0
        while true {
            attempt += 1
            do throws(B2Error) {
                let response = try await get(source, range: range, into: nil)
                guard response.status == 206 || (response.status == 200 && range.lowerBound == 0) else {
                    throw B2Error.invalidResponse(operation: "b2_download_file", detail: "asked for bytes \(range), got status \(response.status)")
                }
                return response.status == 200 ? Array(response.body.prefix(range.count)) : response.body
            } catch where error.isTransient && attempt < retryPolicy.maxAttempts {
                try? await Task.sleep(for: retryPolicy.delay(afterAttempt: attempt, retryAfter: nil))
            }
        }
    }

    private func get(_ source: DownloadSource, range: ClosedRange<Int64>?, into destination: ResponseFile?) async throws(B2Error) -> HTTPClientResponse {
        let operation = "b2_download_file"
        var reauthorized = false
        while true {
            let auth = try await authorized()
            let url = switch source {
            case .name(let bucket, let fileName): "\(auth.downloadURL)/file/\(B2FileName.encode(bucket))/\(B2FileName.encode(fileName))"
            case .id(let id): "\(auth.downloadURL)/b2api/\(Self.apiVersion)/b2_download_file_by_id?fileId=\(B2FileName.encode(id))"
            }
            var headers = [("Authorization", auth.token)]
            if let range { headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
            var request = HTTPClientRequest(url: url, headers: headers, timeout: nil)
            request.responseFile = destination
            let response = try await send(request, operation)
            if (200..<300).contains(response.status) { return response }
            let error = Self.serviceError(response, operation)
            if error.needsReauthorization && !reauthorized {
                reauthorized = true
                authorization = nil
                continue
            }
            throw error
        }
    }
}
