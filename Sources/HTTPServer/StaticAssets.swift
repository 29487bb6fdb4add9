import Compression

/// Files embedded in the binary, served with a strong ETag, `304 Not Modified`, and gzip for text.
///
/// Paths are looked up in a fixed table, never on disk, so traversal (`..`, `%2e%2e`, `\`) cannot
/// reach anything outside it; such paths are refused outright.
public struct StaticAssets: Sendable {
    public struct Asset: Sendable {
        public let contentType: String
        public let bytes: [UInt8]
        /// Present when gzip made a text asset smaller.
        public let gzipped: [UInt8]?
        public let etag: String
    }

    private let assets: [String: Asset]

    /// - Parameter files: path (without leading `/`, e.g. `index.html`) → contents.
    public init(files: [String: [UInt8]]) {
        var assets: [String: Asset] = [:]
        for (path, bytes) in files {
            let type = Self.contentType(for: path)
            let compressible = type.hasPrefix("text/") || type.hasPrefix("application/json") || type.hasPrefix("application/javascript") || type.hasPrefix("image/svg")
            let gzipped = compressible ? (try? Gzip.compress(bytes)).flatMap { $0.count < bytes.count ? $0 : nil } : nil
            var crc = CRC32()
            crc.update(bytes)
            let etag = "\"\(String(crc.value, radix: 16))-\(String(bytes.count, radix: 16))\""
            assets[path] = Asset(contentType: type, bytes: bytes, gzipped: gzipped, etag: etag)
        }
        self.assets = assets
    }

    public func asset(_ path: String) -> Asset? { assets[path] }
    public var paths: [String] { assets.keys.sorted() }

    /// Answers a GET/HEAD for `path` (relative, e.g. from a `*path` route parameter); "" means `index.html`.
    public func response(for path: String, request: HTTPRequest) -> HTTPResponse {
        guard Self.isSafe(path) else { return HTTPError(.badRequest, message: "invalid asset path").response }
        guard let asset = assets[path.isEmpty ? "index.html" : path] else {
            return HTTPError(.notFound, message: "no asset at /\(path)").response
        }
        var headers = HTTPHeaders()
        headers.add("ETag", asset.etag)
        headers.add("Cache-Control", "no-cache") // revalidate each time: cheap with the ETag, and never stale after an update
        headers.add("X-Content-Type-Options", "nosniff")
        if asset.gzipped != nil { headers.add("Vary", "Accept-Encoding") }
        // RFC 9110 §13.1.2: If-None-Match with a matching entity tag (or *) → 304.
        if let match = request.headers["If-None-Match"],
           match.trimmingCharacters(in: " ") == "*" || match.split(separator: ",").contains(where: { Self.weakMatch($0, asset.etag) }) {
            return HTTPResponse(.notModified, headers: headers)
        }
        headers.add("Content-Type", asset.contentType)
        if let gzipped = asset.gzipped, Self.acceptsGzip(request.headers) {
            headers.add("Content-Encoding", "gzip")
            return HTTPResponse(.ok, headers: headers, body: .bytes(gzipped))
        }
        return HTTPResponse(.ok, headers: headers, body: .bytes(asset.bytes))
    }

    static func isSafe(_ path: String) -> Bool {
        guard !path.hasPrefix("/"), !path.contains("\\"), !path.contains("\0") else { return false }
        return !path.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == ".." || $0 == "." || ($0.isEmpty && path != "") }
    }

    private static func weakMatch(_ candidate: Substring, _ etag: String) -> Bool {
        var tag = candidate.trimmingCharacters(in: " ")
        if tag.hasPrefix("W/") { tag.removeFirst(2) }
        return tag == etag
    }

    /// `gzip` listed with a non-zero quality (RFC 9110 §12.5.3).
    static func acceptsGzip(_ headers: HTTPHeaders) -> Bool {
        for element in headers.tokens("Accept-Encoding") {
            let parts = element.split(separator: ";").map { $0.trimmingCharacters(in: " ") }
            guard parts.first == "gzip" || parts.first == "x-gzip" else { continue }
            if let q = parts.dropFirst().first(where: { $0.hasPrefix("q=") }), let value = Double(q.dropFirst(2)), value == 0 { return false }
            return true
        }
        return false
    }

    static func contentType(for path: String) -> String {
        switch path.split(separator: ".").last.map({ $0.lowercased() }) {
        case "html": "text/html; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "js", "mjs": "application/javascript; charset=utf-8"
        case "json": "application/json"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        case "txt": "text/plain; charset=utf-8"
        case "woff2": "font/woff2"
        default: "application/octet-stream"
        }
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: Character) -> String {
        var slice = self[...]
        while slice.first == set { slice = slice.dropFirst() }
        while slice.last == set { slice = slice.dropLast() }
        return String(slice)
    }
}
