import Foundation
import Glibc
import HTTPServer
import Logging

/// `POST /backups/new/upload` (SUP `api/backups.py upload`, `BackupManager.import_backup`): the first
/// part of a `multipart/form-data` body, whatever its field name, streams into a temporary file; the slug
/// comes from the `./backup.json` inside; the file moves into the backup folder as `?filename=` or
/// `<slug>.tar`. Nothing of the body is held in memory beyond one chunk.
enum UploadRoute {
    static func upload(_ request: HTTPRequest, _ context: Context) async throws -> HTTPResponse {
        let locations = request.queryItems.filter { $0.name == "location" }.map(\.value)
        if !locations.isEmpty { try BackupRoutes.checkLocations(locations) }
        var fileName: String?
        if let requested = request.query("filename") {
            guard Schema.isBackupFileName(requested) else {
                throw APIError("does not match regular expression \(Schema.fileNamePattern). Got \(JSONValue.string(requested).pythonRepr)")
            }
            fileName = requested
        }
        // `request.multipart()` asserts a multipart type with a boundary; anything else escapes as a 500.
        guard let boundary = boundary(request.headers["Content-Type"]) else {
            context.logger.debug("Supervisor simulator: upload is not multipart", metadata: ["http.content_type": "\(request.headers["Content-Type"] ?? "")"])
            throw InternalServerError()
        }
        let temporary = context.scratch.appendingPathComponent("upload-\(UUID().uuidString)").appendingPathComponent("backup.tar")
        defer { try? FileManager.default.removeItem(at: temporary.deletingLastPathComponent()) }
        do {
            try FileManager.default.createDirectory(at: temporary.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            throw APIError.unknown
        }
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil), let handle = FileHandle(forWritingAtPath: temporary.path) else {
            throw APIError.unknown
        }
        do {
            defer { try? handle.close() }
            try await MultipartFirstPart.stream(request.body, boundary: boundary, to: handle)
        }
        // "Can't write new backup file" → the handler returns False.
        if await context.faults.takeUploadFailure() { throw APIError.unknown }
        // `Backup.load()` failing (no backup.json, bad JSON, schema) makes import_backup return None.
        guard let scanned = BackupScanner.load(temporary) else { throw APIError.unknown }
        let target = context.configuration.backupDirectory.appendingPathComponent(fileName ?? "\(scanned.slug).tar")
        do {
            // `Path.rename` replaces an existing file of that name.
            if FileManager.default.fileExists(atPath: target.path) { try FileManager.default.removeItem(at: target) }
            try FileManager.default.moveItem(at: temporary, to: target)
        } catch {
            throw APIError.unknown
        }
        await context.state.add(.init(metadata: scanned.metadata, file: target, sizeBytes: scanned.sizeBytes))
        return Envelope.ok(["slug": .string(scanned.slug)])
    }

    /// The `boundary` parameter of a `multipart/*` media type (RFC 2046 §5.1.1), quoted or not.
    static func boundary(_ contentType: String?) -> String? {
        guard let contentType else { return nil }
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let type = parts.first, type.lowercased().hasPrefix("multipart/") else { return nil }
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else { continue }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value.isEmpty || value.utf8.count > 200 ? nil : value
        }
        return nil
    }
}

/// Streams the body of the first part of a multipart body to a file (RFC 2046 §5.1.1, RFC 7578): skips the
/// preamble and the part's headers, then writes everything up to the next `CRLF--boundary`, holding back
/// only as many bytes as that delimiter has.
enum MultipartFirstPart {
    static let maxHeaderBytes = 64 * 1024

    static func stream(_ body: RequestBody, boundary: String, to handle: FileHandle) async throws {
        let dashBoundary = Array("--\(boundary)".utf8)
        let delimiter = Array("\r\n--\(boundary)".utf8)
        var pending: [UInt8] = []
        var chunks = body.makeAsyncIterator()

        func more() async throws -> Bool {
            guard let chunk = try await chunks.next() else { return false }
            pending += chunk
            return true
        }

        // Preamble: the first delimiter is at the very start or after a CRLF.
        while true {
            if pending.starts(with: dashBoundary) {
                pending.removeFirst(dashBoundary.count)
                break
            }
            if let index = search(delimiter, in: pending, from: 0) {
                pending.removeFirst(index + delimiter.count)
                break
            }
            if pending.count > maxHeaderBytes { throw InternalServerError() }
            guard try await more() else { throw InternalServerError() }
        }
        // Rest of the delimiter line: `--` would close the body with no part at all.
        while true {
            if pending.count >= 2, pending[0] == UInt8(ascii: "-"), pending[1] == UInt8(ascii: "-") { throw InternalServerError() }
            if let end = search(Array("\r\n".utf8), in: pending, from: 0) {
                pending.removeFirst(end + 2)
                break
            }
            if pending.count > maxHeaderBytes { throw InternalServerError() }
            guard try await more() else { throw InternalServerError() }
        }
        // Part headers end with an empty line (or the part has none).
        while true {
            if pending.starts(with: Array("\r\n".utf8)) {
                pending.removeFirst(2)
                break
            }
            if let end = search(Array("\r\n\r\n".utf8), in: pending, from: 0) {
                pending.removeFirst(end + 4)
                break
            }
            if pending.count > maxHeaderBytes { throw InternalServerError() }
            guard try await more() else { throw InternalServerError() }
        }
        // The part's data.
        while true {
            if let index = search(delimiter, in: pending, from: 0) {
                try write(pending[..<index], to: handle)
                return
            }
            let keep = min(pending.count, delimiter.count - 1)
            let flushable = pending.count - keep
            if flushable > 0 {
                try write(pending[..<flushable], to: handle)
                pending.removeFirst(flushable)
            }
            guard try await more() else { throw InternalServerError() } // the body ended inside the part
        }
    }

    private static func write(_ bytes: ArraySlice<UInt8>, to handle: FileHandle) throws {
        guard !bytes.isEmpty else { return }
        do {
            try handle.write(contentsOf: bytes)
        } catch {
            throw APIError.unknown
        }
    }

    /// The first index of `needle` in `haystack` at or after `start`: memchr for its first byte, then a compare.
    static func search(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count - start >= needle.count else { return nil }
        return haystack.withUnsafeBufferPointer { hay -> Int? in
            needle.withUnsafeBufferPointer { pattern -> Int? in
                guard let base = hay.baseAddress else { return nil }
                var position = start
                let last = hay.count - pattern.count
                while position <= last {
                    guard let found = memchr(base + position, Int32(pattern[0]), last - position + 1) else { return nil }
                    let index = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                    if memcmp(base + index, pattern.baseAddress!, pattern.count) == 0 { return index }
                    position = index + 1
                }
                return nil
            }
        }
    }
}
