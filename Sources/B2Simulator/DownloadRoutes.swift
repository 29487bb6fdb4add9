import Foundation
import HTTPServer

/// The download host: by name at `/file/<bucket>/<name>` and by ID at `/b2api/vN/b2_download_file_by_id`,
/// with ranges, HEAD and B2's response headers. Bodies stream from disk.
/// - SeeAlso: https://www.backblaze.com/apidocs/b2-download-file-by-name, https://www.backblaze.com/apidocs/b2-download-file-by-id
enum DownloadRoutes {
    static let chunkSize = 256 * 1024

    static func router(_ context: HandlerContext) -> Router {
        var router = Router()
        router.get("/file/:bucket/*name") { request in try await byName(request, context) }
        router.get("/b2api/:version/b2_download_file_by_id") { request in try await byID(request, context) }
        router.post("/b2api/:version/b2_download_file_by_id", bodyLimit: APIRoutes.jsonBodyLimit) { request in try await byID(request, context) }
        CatchAll.add(to: &router) { path in
            let parts = path.split(separator: "/")
            return parts.count == 3 && parts[0] == "b2api" && parts[2] == "b2_download_file_by_id"
        }
        return router
    }

    private static func byName(_ request: HTTPRequest, _ context: HandlerContext) async throws -> HTTPResponse {
        let operation = "b2_download_file_by_name"
        await context.state.count(operation)
        if let failure = await APIRoutes.admissionFailure(operation, request, context) { throw failure }
        // Decode from the raw target: the server's decoded path cannot tell `+` (a space, for B2) from `%2B`.
        var raw = Substring(request.head.target)
        if let query = raw.firstIndex(of: "?") { raw = raw[..<query] }
        guard let start = raw.range(of: "/file/") else { throw B2Error(404, "not_found", "no such API: \(request.path)") }
        let rest = raw[start.upperBound...]
        guard let slash = rest.firstIndex(of: "/"), let bucketName = B2StringEncoding.decode(rest[..<slash]),
              let fileName = B2StringEncoding.decode(rest[rest.index(after: slash)...]) else {
            throw B2Error.badRequest("the file name in the URL is not percent-encoded UTF-8")
        }
        guard !fileName.isEmpty else { throw B2Error.badRequest("the URL names no file") }
        let caller = try await context.state.authenticate(authorization(request))
        let (version, bucket) = try await context.state.downloadTarget(caller, bucketName: bucketName, fileName: fileName)
        return try await serve(version, lockHeaders: ObjectLock.downloadHeaders(version, bucket: bucket, caller: caller), operation: operation, request, context)
    }

    private static func byID(_ request: HTTPRequest, _ context: HandlerContext) async throws -> HTTPResponse {
        let operation = "b2_download_file_by_id"
        await context.state.count(operation)
        if let failure = await APIRoutes.admissionFailure(operation, request, context) { throw failure }
        guard APIRoutes.supportedVersions.contains(request.pathParameters["version"] ?? "") else {
            throw B2Error(404, "not_found", "no such API: \(request.path)")
        }
        let body = try await request.body.collect()
        let fileID = try Parameters.read(request, body: body).requiredString("fileId")
        let caller = try await context.state.authenticate(authorization(request))
        let (version, bucket) = try await context.state.downloadTarget(caller, fileID: fileID)
        return try await serve(version, lockHeaders: ObjectLock.downloadHeaders(version, bucket: bucket, caller: caller), operation: operation, request, context)
    }

    /// The account token from the header, or from `?Authorization=` as B2 allows for private buckets.
    private static func authorization(_ request: HTTPRequest) -> String? {
        request.headers["Authorization"] ?? request.query("Authorization")
    }

    private static func serve(_ version: SimulatorState.Version, lockHeaders: [(String, String)], operation: String, _ request: HTTPRequest,
                              _ context: HandlerContext) async throws -> HTTPResponse {
        if await context.faults.resetPoint(operation) != nil { throw AbortConnection() }
        let size = version.contentLength
        var headers = HTTPHeaders()
        headers.add("Accept-Ranges", "bytes")
        headers.add("Content-Type", request.query("b2ContentType") ?? version.contentType)
        headers.add("X-Bz-File-Id", version.id)
        headers.add("X-Bz-File-Name", B2StringEncoding.encode(version.name))
        headers.add("X-Bz-Content-Sha1", version.contentSha1)
        headers.add("X-Bz-Upload-Timestamp", String(version.uploadTimestamp))
        headers.add("X-Bz-Server-Side-Encryption", "AES256")
        for (name, value) in lockHeaders { headers.add(name, value) }
        for (key, value) in version.fileInfo.sorted(by: { $0.key < $1.key }) {
            if let special = FileRules.specialKeys[key] {
                headers.add(special, value)
            } else {
                headers.add("X-Bz-Info-\(key)", B2StringEncoding.encode(value))
            }
        }
        // Query overrides B2 accepts for these headers.
        for (query, header) in [("b2ContentDisposition", "Content-Disposition"), ("b2ContentLanguage", "Content-Language"),
                                ("b2Expires", "Expires"), ("b2CacheControl", "Cache-Control"), ("b2ContentEncoding", "Content-Encoding")] {
            if let value = request.query(query) { headers.set(header, value) }
        }

        var status = HTTPStatus.ok
        var range = 0..<size
        if let header = request.headers["Range"] {
            let resolved = try ByteRange.resolve(header, size: size)
            range = resolved.lowerBound..<(resolved.upperBound + 1)
            status = .partialContent
            headers.add("Content-Range", "bytes \(resolved.lowerBound)-\(resolved.upperBound)/\(size)")
        }
        guard !range.isEmpty else { return HTTPResponse(status, headers: headers, body: .bytes([])) }
        // HEAD sends no body, so it must not use up a damage rule.
        var damage: (truncateAfter: Int?, corrupt: Bool) = (nil, false)
        if request.method == .get { damage = await context.faults.downloadDamage() }
        let segments = version.segments
        let bounds = range
        let (truncateAfter, corrupt) = damage
        return HTTPResponse(status, headers: headers, body: .stream(length: range.count) { writer in
            try await stream(segments, range: bounds, truncateAfter: truncateAfter, corrupt: corrupt, to: writer)
        })
    }

    /// Sends `range` of the concatenated segments in chunks; a truncation stops early by failing, which
    /// makes the server cut the connection after a body shorter than its Content-Length.
    private static func stream(_ segments: [SimulatorState.Segment], range: Range<Int>, truncateAfter: Int?, corrupt: Bool,
                               to writer: any ResponseBodyWriter) async throws {
        var sent = 0
        var flipped = !corrupt
        var segmentStart = 0
        for segment in segments {
            defer { segmentStart += segment.length }
            // Segments wholly before or after the range overlap nothing (and would make an inverted Range).
            let lower = max(range.lowerBound, segmentStart), upper = min(range.upperBound, segmentStart + segment.length)
            guard lower < upper else { continue }
            let overlap = lower..<upper
            let handle = try FileHandle(forReadingFrom: segment.path)
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(overlap.lowerBound - segmentStart))
            var remaining = overlap.count
            while remaining > 0 {
                guard let data = try handle.read(upToCount: min(chunkSize, remaining)), !data.isEmpty else {
                    throw B2SimulatorError("stored file \(segment.path.lastPathComponent) is shorter than recorded")
                }
                var chunk = [UInt8](data)
                remaining -= chunk.count
                if !flipped {
                    chunk[chunk.count / 2] ^= 0xFF
                    flipped = true
                }
                if let truncateAfter, sent + chunk.count > truncateAfter {
                    try await writer.write(Array(chunk.prefix(truncateAfter - sent)))
                    throw AbortConnection()
                }
                try await writer.write(chunk)
                sent += chunk.count
            }
        }
    }
}
