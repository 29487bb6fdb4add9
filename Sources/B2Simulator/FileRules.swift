/// B2's rules for file names, custom file info and content types.
enum FileRules {
    /// "Names can be pretty much any UTF-8 string up to 1024 bytes long": no control characters, no DEL,
    /// no backslash; no leading or trailing `/` and no `//`.
    /// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-files
    static func validate(name: String) throws(B2Error) {
        guard !name.isEmpty else { throw B2Error.badRequest("file name is empty") }
        guard name.utf8.count <= 1024 else { throw B2Error.badRequest("file name is longer than 1024 bytes: \(name.utf8.count) bytes") }
        if name.utf8.contains(where: { $0 < 32 || $0 == 127 }) { throw B2Error.badRequest("file names must not contain control characters or DEL") }
        if name.contains("\\") { throw B2Error.badRequest("file names must not contain backslashes") }
        if name.hasPrefix("/") || name.hasSuffix("/") || name.contains("//") {
            throw B2Error.badRequest("file names must not start or end with '/' or contain '//': \(name)")
        }
    }

    /// Characters allowed in a custom info key (after the `X-Bz-Info-` prefix).
    private static let keyCharacters = Set(Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.`~!#$%^&*'|+".utf8))
    /// The `b2-` keys B2 accepts; they become response headers on download.
    static let specialKeys: [String: String] = [
        "b2-content-disposition": "Content-Disposition", "b2-content-language": "Content-Language", "b2-expires": "Expires",
        "b2-cache-control": "Cache-Control", "b2-content-encoding": "Content-Encoding",
    ]

    /// Lower-cases the keys and checks them, and the limit on the name plus info: 7000 bytes, 2048 with Object Lock.
    /// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-add-file-information-with-the-native-api
    static func normalizedInfo(_ info: [String: String], fileName: String, withRetention: Bool = false) throws(B2Error) -> [String: String] {
        let limit = withRetention ? ObjectLock.maxInfoBytes : SimulatorState.maxInfoBytes
        var normalized: [String: String] = [:]
        var total = fileName.utf8.count
        for (key, value) in info {
            let lower = key.lowercased()
            guard !lower.isEmpty, lower.utf8.count <= 50, lower.utf8.allSatisfy(keyCharacters.contains) else {
                throw B2Error.badRequest("invalid file info name: \(key) (at most 50 letters, digits and - _ . ` ~ ! # $ % ^ & * ' | +)")
            }
            if lower.hasPrefix("b2-"), specialKeys[lower] == nil {
                throw B2Error.badRequest("file info names starting with b2- are reserved: \(key)")
            }
            guard normalized[lower] == nil else { throw B2Error.badRequest("file info name given twice: \(lower)") }
            normalized[lower] = value
            total += lower.utf8.count + value.utf8.count
        }
        guard total <= limit else {
            throw B2Error.badRequest("the file name and file info take \(total) bytes; the limit is \(limit)")
        }
        return normalized
    }

    /// `b2/x-auto` picks a type from the extension, falling back to `application/octet-stream`.
    static func resolveContentType(_ contentType: String, fileName: String) -> String {
        guard contentType == "b2/x-auto" else { return contentType }
        let ext = fileName.split(separator: "/").last.flatMap { $0.contains(".") ? $0.split(separator: ".").last : nil }.map { $0.lowercased() }
        switch ext {
        case "tar": return "application/x-tar"
        case "gz", "tgz": return "application/gzip"
        case "json": return "application/json"
        case "txt": return "text/plain"
        case "html", "htm": return "text/html"
        case "jpg", "jpeg": return "image/jpeg"
        case "png": return "image/png"
        case "zip": return "application/zip"
        default: return "application/octet-stream"
        }
    }

    /// Headers B2 refuses on uploads; their `X-Bz-Info-b2-…` forms are the way to set them.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-upload-file
    static let refusedUploadHeaders = ["Content-Disposition", "Content-Encoding", "Content-Language", "Content-Location", "Content-Range", "Expires"]
}
