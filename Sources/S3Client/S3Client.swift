import Foundation
import HTTPClient
import Hashing
import Logging

/// An object listed by ListObjectsV2.
public struct S3Object: Sendable, Hashable {
    public var key: String
    public var size: Int64
    /// As S3 sends it, quotes included.
    public var etag: String
    public var lastModified: String
}

/// What HeadObject says about an object.
public struct S3ObjectInfo: Sendable, Hashable {
    public var size: Int64
    public var etag: String
    public var contentType: String?
    /// User metadata (`x-amz-meta-*`), names lower-cased and without the prefix.
    public var metadata: [String: String]
}

/// An uploaded part of a multipart upload.
public struct S3Part: Sendable, Hashable {
    public var number: Int
    /// As S3 sends it, quotes included; passed back unchanged to CompleteMultipartUpload.
    public var etag: String
    public var size: Int64

    public init(number: Int, etag: String, size: Int64 = 0) {
        self.number = number
        self.etag = etag
        self.size = size
    }
}

/// A multipart upload in progress (ListMultipartUploads).
public struct S3Upload: Sendable, Hashable {
    public var key: String
    public var uploadID: String
    /// When it was created (`Initiated`); nil when the store sent no date we could read.
    public var initiated: Date?

    public init(key: String, uploadID: String, initiated: Date? = nil) {
        self.key = key
        self.uploadID = uploadID
        self.initiated = initiated
    }
}

/// One page of ListObjectsV2.
public struct S3ListPage: Sendable {
    public var objects: [S3Object]
    /// Pass back to get the next page; nil on the last page.
    public var nextContinuationToken: String?
}

/// A client for one bucket of an S3-compatible object store (AWS S3, MinIO, Backblaze B2's S3 API,
/// Wasabi, moto): AWS Signature V4 signed by us, requests sent by HTTPClient (libcurl), XML answers read
/// with Foundation's XMLParser. Transient failures (500, 503, SlowDown, dropped connections) are retried
/// with exponential backoff and full jitter; file bodies are re-read from disk on every attempt.
public final class S3Client: Sendable {
    public enum Addressing: Sendable, Hashable {
        /// `https://endpoint/bucket/key`: MinIO, moto and most self-hosted stores.
        case path
        /// `https://bucket.endpoint/key`: AWS's preferred form.
        case virtualHosted
    }

    public struct Configuration: Sendable, CustomStringConvertible, CustomReflectable {
        /// `https://s3.eu-central-1.amazonaws.com`; plain http is allowed for endpoints on the local network.
        public var endpoint: String
        public var region: String
        public var bucket: String
        public var accessKeyID: String
        /// Never shown in `description` or logs.
        public var secretAccessKey: String
        public var addressing: Addressing
        public var maxAttempts: Int
        public var baseDelay: Duration
        public var maxDelay: Duration

        public init(endpoint: String, region: String, bucket: String, accessKeyID: String, secretAccessKey: String,
                    addressing: Addressing = .path, maxAttempts: Int = 6, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30)) {
            self.endpoint = endpoint
            self.region = region
            self.bucket = bucket
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.addressing = addressing
            self.maxAttempts = maxAttempts
            self.baseDelay = baseDelay
            self.maxDelay = maxDelay
        }

        public var description: String {
            "S3(\(endpoint), region \(region), bucket \(bucket), key id \(accessKeyID), \(addressing == .path ? "path-style" : "virtual-hosted"))"
        }

        /// What `dump` and test failures print: the description, so the secret never shows there either.
        public var customMirror: Mirror { Mirror(self, children: ["description": description]) }
    }

    public let configuration: Configuration
    private let http: HTTPClient
    private let logger: Logger
    private let signer: SigV4Signer
    private let scheme: String
    /// Host and port as sent in `Host` (and signed).
    private let host: String
    /// The endpoint's own path, normally empty.
    private let basePath: String

    public init(configuration: Configuration, http: HTTPClient, logger: Logger) throws(S3Error) {
        guard let url = URLComponents(string: configuration.endpoint), let scheme = url.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty else {
            throw .invalidConfiguration("the endpoint '\(configuration.endpoint)' is not an http(s) URL")
        }
        guard !configuration.bucket.isEmpty else { throw .invalidConfiguration("no bucket is set") }
        self.configuration = configuration
        self.http = http
        self.logger = logger
        self.signer = SigV4Signer(accessKeyID: configuration.accessKeyID, secretAccessKey: configuration.secretAccessKey, region: configuration.region)
        self.scheme = scheme
        let hostPort = url.port.map { "\(host):\($0)" } ?? host
        self.host = configuration.addressing == .virtualHosted ? "\(configuration.bucket).\(hostPort)" : hostPort
        self.basePath = url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path
    }

    // MARK: Bucket

    /// CreateBucket for the configured bucket (for tests and set-up; us-east-1 needs no location body).
    public func createBucket() async throws(S3Error) {
        var body: [UInt8] = []
        if configuration.region != "us-east-1" {
            body = Array("<CreateBucketConfiguration><LocationConstraint>\(configuration.region.xmlEscaped)</LocationConstraint></CreateBucketConfiguration>".utf8)
        }
        _ = try await perform("CreateBucket", Request(method: "PUT", headers: [("Content-Type", "application/xml")], body: body))
    }

    // MARK: Objects

    /// PutObject, streaming `file` from disk (unsigned payload). Returns the ETag.
    ///
    /// The payload is not signed (that would mean reading it twice more), so `Content-MD5` is what lets S3
    /// refuse bytes that changed on the way (`BadDigest`). `contentMD5` is the range's binary MD5 when the
    /// caller has it already; otherwise it is computed here, in one extra read of the range.
    @discardableResult
    public func putObject(key: String, file: FileRange, metadata: [String: String] = [:], contentType: String = "application/octet-stream",
                          contentMD5: [UInt8]? = nil, maxBytesPerSecond: Int64? = nil,
                          progress: (@Sendable (TransferProgress) -> Bool)? = nil) async throws(S3Error) -> String {
        let md5 = try await md5(of: file, given: contentMD5)
        let headers = metaHeaders(metadata) + [("Content-Type", contentType), ("Content-MD5", Self.base64(md5))]
        let response = try await perform("PutObject", Request(method: "PUT", key: key, headers: headers, file: file,
                                                              maxSendBytesPerSecond: maxBytesPerSecond, progress: progress))
        return response.header("ETag") ?? ""
    }

    /// PutObject from memory (signed payload, and `Content-MD5`). Returns the ETag.
    @discardableResult
    public func putObject(key: String, bytes: [UInt8], metadata: [String: String] = [:], contentType: String = "application/octet-stream") async throws(S3Error) -> String {
        let digest = StreamingDigest(.md5)
        digest.update(bytes)
        let headers = metaHeaders(metadata) + [("Content-Type", contentType), ("Content-MD5", Self.base64(digest.finalize()))]
        let response = try await perform("PutObject", Request(method: "PUT", key: key, headers: headers, body: bytes))
        return response.header("ETag") ?? ""
    }

    /// A ranged GetObject into memory (inclusive byte positions), for reading an object piece by piece,
    /// e.g. a restorability check in 8 MiB chunks. A range running past the end gives the bytes up to it.
    public func readObject(key: String, range: ClosedRange<Int64>) async throws(S3Error) -> [UInt8] {
        let response = try await perform("GetObject", Request(method: "GET", key: key, headers: [("Range", "bytes=\(range.lowerBound)-\(range.upperBound)")]))
        // A store that ignores Range answers 200 with the whole object: never hand that back as the range.
        guard response.status == 206 || (range.lowerBound == 0 && Int64(response.body.count) <= Int64(range.count)) else {
            throw .invalidResponse(operation: "GetObject", detail: "asked for bytes \(range.lowerBound)-\(range.upperBound), got status \(response.status) with \(response.body.count) bytes")
        }
        guard Int64(response.body.count) <= Int64(range.count) else {
            throw .invalidResponse(operation: "GetObject", detail: "asked for \(range.count) bytes, got \(response.body.count)")
        }
        return response.body
    }

    /// GetObject into `file`, optionally only `range` (inclusive byte positions). Returns the bytes written.
    @discardableResult
    public func getObject(key: String, range: ClosedRange<Int64>? = nil, to file: ResponseFile) async throws(S3Error) -> Int64 {
        let headers = range.map { [("Range", "bytes=\($0.lowerBound)-\($0.upperBound)")] } ?? []
        return try await perform("GetObject", Request(method: "GET", key: key, headers: headers, responseFile: file)).bytesWritten
    }

    public func headObject(key: String) async throws(S3Error) -> S3ObjectInfo {
        let response = try await perform("HeadObject", Request(method: "HEAD", key: key))
        var metadata: [String: String] = [:]
        for (name, value) in response.headers where name.lowercased().hasPrefix("x-amz-meta-") {
            metadata[String(name.lowercased().dropFirst("x-amz-meta-".count))] = value
        }
        return S3ObjectInfo(size: Int64(response.header("Content-Length") ?? "") ?? 0, etag: response.header("ETag") ?? "",
                            contentType: response.header("Content-Type"), metadata: metadata)
    }

    /// DeleteObject; S3 answers success for a key that does not exist.
    public func deleteObject(key: String) async throws(S3Error) {
        _ = try await perform("DeleteObject", Request(method: "DELETE", key: key))
    }

    /// One page of ListObjectsV2.
    public func listObjectsPage(prefix: String = "", maxKeys: Int = 1000, continuationToken: String? = nil) async throws(S3Error) -> S3ListPage {
        var query: [(name: String, value: String)] = [("list-type", "2"), ("max-keys", "\(maxKeys)")]
        if !prefix.isEmpty { query.append(("prefix", prefix)) }
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        let root = try await document("ListObjectsV2", Request(method: "GET", query: query))
        let objects = root.all("Contents").map {
            S3Object(key: $0.value("Key") ?? "", size: Int64($0.value("Size") ?? "") ?? 0, etag: $0.value("ETag") ?? "", lastModified: $0.value("LastModified") ?? "")
        }
        let truncated = root.value("IsTruncated") == "true"
        return S3ListPage(objects: objects, nextContinuationToken: truncated ? root.value("NextContinuationToken") : nil)
    }

    /// Every object under `prefix`, following continuation tokens.
    public func listObjects(prefix: String = "", pageSize: Int = 1000) async throws(S3Error) -> [S3Object] {
        var objects: [S3Object] = []
        var token: String?
        repeat {
            let page = try await listObjectsPage(prefix: prefix, maxKeys: pageSize, continuationToken: token)
            objects += page.objects
            token = page.nextContinuationToken
        } while token != nil
        return objects
    }

    // MARK: Multipart uploads

    /// CreateMultipartUpload; returns the upload id.
    public func createMultipartUpload(key: String, metadata: [String: String] = [:], contentType: String = "application/octet-stream") async throws(S3Error) -> String {
        let root = try await document("CreateMultipartUpload", Request(method: "POST", key: key, query: [("uploads", "")],
                                                                       headers: metaHeaders(metadata) + [("Content-Type", contentType)], body: []))
        guard let id = root.value("UploadId"), !id.isEmpty else { throw .invalidResponse(operation: "CreateMultipartUpload", detail: "no UploadId") }
        return id
    }

    /// UploadPart, streaming `file` (S3's minimum is 5 MiB for every part but the last). Returns the ETag.
    ///
    /// Sends `Content-MD5` (see `putObject(key:file:)`): `contentMD5` if given, else computed from the range.
    /// `progress` sees the bytes sent; returning false aborts the transfer.
    public func uploadPart(key: String, uploadID: String, partNumber: Int, file: FileRange, contentMD5: [UInt8]? = nil,
                           maxBytesPerSecond: Int64? = nil, progress: (@Sendable (TransferProgress) -> Bool)? = nil) async throws(S3Error) -> String {
        let md5 = try await md5(of: file, given: contentMD5)
        let response = try await perform("UploadPart", Request(method: "PUT", key: key, query: [("partNumber", "\(partNumber)"), ("uploadId", uploadID)],
                                                               headers: [("Content-Type", "application/octet-stream"), ("Content-MD5", Self.base64(md5))], file: file,
                                                               maxSendBytesPerSecond: maxBytesPerSecond, progress: progress))
        guard let etag = response.header("ETag") else { throw .invalidResponse(operation: "UploadPart", detail: "no ETag") }
        return etag
    }

    /// The parts S3 holds for an upload (all pages), to resume after a restart.
    public func listParts(key: String, uploadID: String) async throws(S3Error) -> [S3Part] {
        var parts: [S3Part] = []
        var marker: String?
        while true {
            var query: [(name: String, value: String)] = [("uploadId", uploadID)]
            if let marker { query.append(("part-number-marker", marker)) }
            let root = try await document("ListParts", Request(method: "GET", key: key, query: query))
            parts += root.all("Part").map {
                S3Part(number: Int($0.value("PartNumber") ?? "") ?? 0, etag: $0.value("ETag") ?? "", size: Int64($0.value("Size") ?? "") ?? 0)
            }
            guard root.value("IsTruncated") == "true", let next = root.value("NextPartNumberMarker") else { return parts }
            marker = next
        }
    }

    /// CompleteMultipartUpload with the parts in number order. Returns the object's ETag.
    @discardableResult
    public func completeMultipartUpload(key: String, uploadID: String, parts: [S3Part]) async throws(S3Error) -> String {
        let body = "<CompleteMultipartUpload>" + parts.sorted { $0.number < $1.number }.map {
            "<Part><PartNumber>\($0.number)</PartNumber><ETag>\($0.etag.xmlEscaped)</ETag></Part>"
        }.joined() + "</CompleteMultipartUpload>"
        let root = try await document("CompleteMultipartUpload", Request(method: "POST", key: key, query: [("uploadId", uploadID)],
                                                                         headers: [("Content-Type", "application/xml")], body: Array(body.utf8)))
        return root.value("ETag") ?? ""
    }

    public func abortMultipartUpload(key: String, uploadID: String) async throws(S3Error) {
        _ = try await perform("AbortMultipartUpload", Request(method: "DELETE", key: key, query: [("uploadId", uploadID)]))
    }

    /// Every upload in progress under `prefix` (all pages): what an interrupted run left behind.
    public func listMultipartUploads(prefix: String = "", pageSize: Int = 1000) async throws(S3Error) -> [S3Upload] {
        var uploads: [S3Upload] = []
        var markers: (key: String, uploadID: String)?
        while true {
            var query: [(name: String, value: String)] = [("uploads", ""), ("max-uploads", "\(pageSize)")]
            if !prefix.isEmpty { query.append(("prefix", prefix)) }
            if let markers {
                query.append(("key-marker", markers.key))
                if !markers.uploadID.isEmpty { query.append(("upload-id-marker", markers.uploadID)) }
            }
            let root = try await document("ListMultipartUploads", Request(method: "GET", query: query))
            uploads += root.all("Upload").map {
                S3Upload(key: $0.value("Key") ?? "", uploadID: $0.value("UploadId") ?? "", initiated: $0.value("Initiated").flatMap(Self.parseTimestamp))
            }
            guard root.value("IsTruncated") == "true", let nextKey = root.value("NextKeyMarker"), !nextKey.isEmpty else { return uploads }
            let next = (key: nextKey, uploadID: root.value("NextUploadIdMarker") ?? "")
            // A store that repeats its markers would loop forever; stop at what we have instead.
            guard markers.map({ $0 != next }) ?? true else {
                throw .invalidResponse(operation: "ListMultipartUploads", detail: "the next page's markers repeat (\(next.key), \(next.uploadID))")
            }
            markers = next
        }
    }

    /// S3's timestamps: ISO 8601 in UTC, with or without milliseconds.
    static func parseTimestamp(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    // MARK: Requests

    /// A request on the bucket (`key` nil) or on one object.
    struct Request: Sendable {
        var method: String
        var key: String?
        var query: [(name: String, value: String)] = []
        var headers: [(String, String)] = []
        var body: [UInt8]?
        var file: FileRange?
        var responseFile: ResponseFile?
        var maxSendBytesPerSecond: Int64?
        var progress: (@Sendable (TransferProgress) -> Bool)?
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// The binary MD5 of a file range: `given` when the caller has it, else read from disk off the cooperative pool.
    private func md5(of file: FileRange, given: [UInt8]?) async throws(S3Error) -> [UInt8] {
        if let given { return given }
        return try await onFileThread { () throws(S3Error) -> [UInt8] in
            try FileDigests.read(path: file.path, ranges: [(file.offset, file.length)], sha1: false).partMD5s[0]
        }
    }

    private func metaHeaders(_ metadata: [String: String]) -> [(String, String)] {
        metadata.sorted { $0.key < $1.key }.map { ("x-amz-meta-\($0.key.lowercased())", $0.value) }
    }

    /// Sends with retries and returns the 2xx answer parsed as XML; a 200 carrying `<Error>` (which
    /// CompleteMultipartUpload may send) is an error.
    private func document(_ operation: String, _ request: Request) async throws(S3Error) -> XMLElement {
        let response = try await perform(operation, request)
        guard let root = XMLElement.parse(response.body) else {
            throw .invalidResponse(operation: operation, detail: "not XML: \(response.text.prefix(200))")
        }
        if root.name == "Error" {
            throw .service(operation: operation, bucket: configuration.bucket, status: response.status,
                           code: root.value("Code") ?? "", message: root.value("Message") ?? "")
        }
        return root
    }

    /// Sends with retries on transient failures; returns the 2xx answer or throws the last error.
    func perform(_ operation: String, _ request: Request) async throws(S3Error) -> HTTPClientResponse {
        var attempt = 1
        while true {
            let error: S3Error
            do throws(S3Error) {
                return try await send(operation, request)
            } catch let failure {
                error = failure
            }
            guard error.isTransient, attempt < configuration.maxAttempts, !Task.isCancelled else {
                if error.isTransient, attempt > 1 { throw .retriesExhausted(operation: operation, attempts: attempt, last: "\(error)") }
                throw error
            }
            let delay = backoff(afterAttempt: attempt)
            logger.info("S3 \(operation) failed, retrying", metadata: ["attempt": "\(attempt)", "error": "\(error)", "delay": "\(delay)"])
            try? await Task.sleep(for: delay)
            attempt += 1
        }
    }

    /// Exponential backoff with full jitter, capped.
    private func backoff(afterAttempt attempt: Int) -> Duration {
        let ceiling = min(configuration.maxDelay, configuration.baseDelay * (1 << min(attempt - 1, 20)))
        let nanoseconds = Double(ceiling.components.seconds) * 1e9 + Double(ceiling.components.attoseconds) / 1e9
        return .nanoseconds(Int64(Double.random(in: 0...1) * nanoseconds))
    }

    /// One signed attempt.
    private func send(_ operation: String, _ request: Request) async throws(S3Error) -> HTTPClientResponse {
        var path = basePath
        if configuration.addressing == .path { path += "/" + SigV4Signer.encode(configuration.bucket) }
        if let key = request.key { path += "/" + SigV4Signer.encode(key, keepSlash: true) } else if path.isEmpty { path = "/" }
        let queryString = request.query.map { $0.value.isEmpty ? SigV4Signer.encode($0.name) : "\(SigV4Signer.encode($0.name))=\(SigV4Signer.encode($0.value))" }
            .joined(separator: "&")
        let url = "\(scheme)://\(host)\(path)" + (queryString.isEmpty ? "" : "?\(queryString)")

        let date = Date()
        let payloadHash = request.file != nil ? SigV4Signer.unsignedPayload : SigV4Signer.sha256Hex(request.body ?? [])
        var headers: [(String, String)] = [("Host", host), ("x-amz-date", SigV4Signer.amzDate(date)), ("x-amz-content-sha256", payloadHash)]
        headers += request.headers
        // S3 wants every x-amz-* header signed; content-md5 too when sent. The rest (Range, Content-Type) need not be.
        let signed = headers.filter { let name = $0.0.lowercased(); return name == "host" || name == "content-md5" || name.hasPrefix("x-amz-") }
            .map { (name: $0.0, value: $0.1) }
        let authorization = signer.authorization(method: request.method, encodedPath: path, query: request.query, headers: signed, payloadHash: payloadHash, date: date)
        headers.append(("Authorization", authorization))

        var http = HTTPClientRequest(method: request.method, url: url, headers: headers, body: request.body,
                                     timeout: request.file != nil || request.responseFile != nil ? nil : .seconds(120))
        http.bodyFile = request.file
        http.responseFile = request.responseFile
        http.maxSendBytesPerSecond = request.maxSendBytesPerSecond
        http.progress = request.progress
        logger.debug("S3 request", metadata: ["operation": "\(operation)", "method": "\(request.method)", "key": "\(request.key ?? "")"])
        let response: HTTPClientResponse
        do {
            response = try await self.http.send(http)
        } catch {
            throw .transport(operation: operation, error)
        }
        guard (200..<300).contains(response.status) else {
            let root = XMLElement.parse(response.body)
            let code = root?.value("Code") ?? Self.codeForStatus(response.status)
            throw .service(operation: operation, bucket: configuration.bucket, status: response.status, code: code, message: root?.value("Message") ?? "")
        }
        return response
    }

    /// HEAD answers carry no body: name the status the way S3's error codes would.
    private static func codeForStatus(_ status: Int) -> String {
        switch status {
        case 403: "AccessDenied"
        case 404: "NotFound"
        case 503: "SlowDown"
        default: "HTTP\(status)"
        }
    }
}
