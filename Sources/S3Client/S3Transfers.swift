import Foundation
import HTTPClient
import Hashing

extension S3Client {
    /// Dropped transfers resumed per download before giving up; progress is kept each time, so this
    /// only bounds a connection that fails over and over.
    static let maxDownloadResumes = 20

    /// Downloads `key` to `path`, streamed to disk (never whole in memory), and verifies it.
    ///
    /// A file already at `path` is taken as the start of this object from an earlier, interrupted run and
    /// continued with ranged GETs, as is a transfer that drops on the way. Every GET carries `If-Match`
    /// with the ETag seen at the start, so an object replaced meanwhile fails instead of being spliced.
    /// At the end the size must match, and the SHA-1 — `sha1`, else the object's `x-amz-meta-sha1` — too:
    /// on a mismatch the file is deleted (it cannot be resumed into anything good) and `.integrity` thrown.
    /// Without either SHA-1 only the size is checked.
    ///
    /// - Parameters:
    ///   - expectedSize: what the catalog says; an object of another size is refused before any byte moves.
    ///   - progress: bytes on disk so far and the object's size.
    /// - Returns: the object's size.
    @discardableResult
    public func download(key: String, to path: String, expectedSize: Int64?, sha1: String?,
                         progress: @escaping @Sendable (Int64, Int64) -> Void) async throws(S3Error) -> Int64 {
        let info = try await headObject(key: key)
        if let expectedSize, info.size != expectedSize {
            throw .integrity(operation: "GetObject", detail: "'\(key)' holds \(info.size) bytes; expected \(expectedSize)")
        }
        let total = info.size
        var resumes = 0
        while true {
            let offset = FileManager.default.fileExists(atPath: path) ? try regularFileSize(path) : 0
            if offset > total {
                try? FileManager.default.removeItem(atPath: path)
                throw .integrity(operation: "GetObject", detail: "\(path) already holds \(offset) bytes, more than the \(total) of '\(key)'; removed it")
            }
            progress(offset, total)
            if offset == total {
                if total == 0, !FileManager.default.createFile(atPath: path, contents: nil) {
                    throw .localFile(path: path, detail: "cannot create")
                }
                break
            }
            var headers: [(String, String)] = [("If-Match", info.etag)]
            if offset > 0 { headers.append(("Range", "bytes=\(offset)-")) }
            let request = Request(method: "GET", key: key, headers: headers, responseFile: ResponseFile(path: path, offset: offset), progress: { transfer in
                progress(offset + transfer.downloaded, total)
                return true
            })
            do throws(S3Error) {
                let response = try await perform("GetObject", request)
                if offset > 0, response.status != 206 {
                    throw .invalidResponse(operation: "GetObject", detail: "asked for the bytes from \(offset), got status \(response.status)")
                }
                if response.bytesWritten == 0 { resumes += 1 } // a clean but empty answer must not loop forever
            } catch where error.isTransient || error.isRetriesExhausted {
                resumes += 1
                guard resumes <= Self.maxDownloadResumes else { throw error }
            }
            guard resumes <= Self.maxDownloadResumes else {
                throw .retriesExhausted(operation: "GetObject", attempts: resumes, last: "no progress past byte \(offset)")
            }
        }

        guard let expected = (sha1 ?? info.metadata["sha1"])?.lowercased() else { return total }
        let actual = try await FileDigests.compute(path: path, ranges: [(0, total)], sha1: true, md5: false).sha1 ?? ""
        guard actual == expected else {
            try? FileManager.default.removeItem(atPath: path)
            throw .integrity(operation: "GetObject", detail: "the download of '\(key)' has SHA-1 \(actual); expected \(expected); removed \(path)")
        }
        return total
    }

    /// Aborts the unfinished multipart uploads under `prefix` started before `initiatedBefore`: the parts
    /// of interrupted runs that S3 would otherwise keep (and bill) forever. Uploads without a readable
    /// start date are left alone, since they may be running now. Returns how many were aborted.
    @discardableResult
    public func abortUploads(prefix: String, initiatedBefore: Date) async throws(S3Error) -> Int {
        var aborted = 0
        for upload in try await listMultipartUploads(prefix: prefix) {
            guard let initiated = upload.initiated, initiated < initiatedBefore else { continue }
            do throws(S3Error) {
                try await abortMultipartUpload(key: upload.key, uploadID: upload.uploadID)
                aborted += 1
            } catch where error.code == "NoSuchUpload" {
                continue // finished or aborted by someone else meanwhile
            }
        }
        return aborted
    }
}

extension S3Error {
    var isRetriesExhausted: Bool { if case .retriesExhausted = self { true } else { false } }
}
