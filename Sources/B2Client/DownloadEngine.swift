import Foundation
import HTTPClient
import Logging

public struct DownloadResult: Sendable {
    public let bytes: Int64
    public let sha1: String
    /// Times the transfer was resumed with a `Range` request after a dropped connection.
    public let resumes: Int
}

/// Downloads a B2 file to disk: resumes with `Range` after a dropped connection, verifies the SHA-1,
/// and only then moves the file into place. A corrupt download is an error, never a silent success.
public final class DownloadEngine: Sendable {
    let client: B2Client
    let logger: Logger
    /// Attempts after a dropped or stalled transfer; progress resets nothing, B2's SDK allows 20.
    public let maxResumes: Int

    public init(client: B2Client, maxResumes: Int = 20, logger: Logger) {
        self.client = client
        self.maxResumes = maxResumes
        self.logger = logger
    }

    /// - Parameters:
    ///   - expectedSHA1: the SHA-1 the catalog holds; without it B2's `X-Bz-Content-Sha1` or
    ///     `large_file_sha1` is used, and a file with neither is refused as unverifiable.
    public func download(_ source: B2Client.DownloadSource, to destination: String, expectedSHA1: String? = nil) async throws(B2Error) -> DownloadResult {
        let partial = destination + ".partial"
        let attempts = 2 // a corrupt copy is fetched once more before giving up
        var lastError: B2Error?
        for attempt in 1...attempts {
            do {
                return try await downloadOnce(source, partial: partial, destination: destination, expectedSHA1: expectedSHA1)
            } catch where error.isIntegrityFailure && attempt < attempts {
                logger.warning("downloaded file failed verification; downloading again", metadata: ["error": "\(error)"])
                lastError = error
            } catch {
                try? FileManager.default.removeItem(atPath: partial)
                throw error
            }
        }
        try? FileManager.default.removeItem(atPath: partial)
        throw lastError ?? B2Error.integrity("download failed verification")
    }

    private func downloadOnce(_ source: B2Client.DownloadSource, partial: String, destination: String, expectedSHA1: String?) async throws(B2Error) -> DownloadResult {
        guard FileManager.default.createFile(atPath: partial, contents: nil) else {
            throw B2Error.invalidRequest("cannot create \(partial)")
        }
        var total: Int64?
        var sha1FromB2: String?
        var resumes = 0
        while true {
            let offset = Self.size(of: partial)
            if let total, offset >= total { break }
            do throws(B2Error) {
                let range: ClosedRange<Int64>? = offset > 0 ? offset...((total ?? Int64.max / 2) - 1) : nil
                let response = try await client.download(source, range: range, into: ResponseFile(path: partial, offset: offset))
                if total == nil {
                    total = Self.totalLength(response, offset: offset)
                    sha1FromB2 = Self.sha1(response)
                }
                if offset > 0, response.status != 206 {
                    throw B2Error.invalidResponse(operation: "b2_download_file", detail: "asked for bytes from \(offset), got status \(response.status)")
                }
                if total == nil { break } // length unknown: the transfer ending cleanly is the end
            } catch where error.isTransient {
                resumes += 1
                guard resumes <= maxResumes else {
                    throw B2Error.retriesExhausted(operation: "b2_download_file", attempts: resumes, last: error.description)
                }
                logger.info("download interrupted; resuming", metadata: ["bytes": "\(Self.size(of: partial))", "error": "\(error)"])
                if case .service(_, _, _, _, let retryAfter) = error {
                    try? await Task.sleep(for: client.retryPolicy.delay(afterAttempt: resumes, retryAfter: retryAfter))
                }
            }
        }
        let bytes = Self.size(of: partial)
        if let total, bytes != total {
            throw B2Error.integrity("downloaded \(bytes) bytes; B2 announced \(total)")
        }
        guard let expected = (expectedSHA1 ?? sha1FromB2)?.lowercased() else {
            throw B2Error.integrity("B2 has no SHA-1 for this file, so the download cannot be verified")
        }
        let actual = try await FileHasher.sha1(path: partial)
        guard actual == expected else {
            throw B2Error.integrity("the downloaded file's SHA-1 is \(actual); expected \(expected)")
        }
        do {
            if FileManager.default.fileExists(atPath: destination) { try FileManager.default.removeItem(atPath: destination) }
            try FileManager.default.moveItem(atPath: partial, toPath: destination)
        } catch {
            throw B2Error.invalidRequest("cannot move the download to \(destination): \((error as NSError).localizedDescription)")
        }
        return DownloadResult(bytes: bytes, sha1: actual, resumes: resumes)
    }

    static func size(of path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
    }

    /// The whole file's length: from `Content-Range: bytes a-b/total`, else `Content-Length` plus the offset.
    static func totalLength(_ response: HTTPClientResponse, offset: Int64) -> Int64? {
        if let range = response.header("Content-Range"), let slash = range.lastIndex(of: "/"), let total = Int64(range[range.index(after: slash)...]) {
            return total
        }
        return response.header("Content-Length").flatMap { Int64($0) }.map { $0 + offset }
    }

    static func sha1(_ response: HTTPClientResponse) -> String? {
        if let sha1 = response.header("X-Bz-Content-Sha1"), sha1 != "none" {
            return sha1.hasPrefix("unverified:") ? String(sha1.dropFirst(11)) : sha1
        }
        return response.header("X-Bz-Info-large_file_sha1")
    }
}

extension B2Error {
    var isIntegrityFailure: Bool { if case .integrity = self { true } else { false } }
}
