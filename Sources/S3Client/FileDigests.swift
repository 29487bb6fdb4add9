import Foundation
import Hashing

/// Runs blocking file I/O on a thread of its own, so Swift's cooperative threads (two on a two-core
/// machine) never wait on a disk while other transfers need them.
func onFileThread<T: Sendable>(_ work: @escaping @Sendable () throws(S3Error) -> T) async throws(S3Error) -> T {
    let result: Result<T, S3Error> = await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: Result { () throws(S3Error) -> T in try work() }) }
        thread.name = "s3-file-io"
        thread.start()
    }
    return try result.get()
}

/// The size of a regular file, for planning an upload or resuming a download.
func regularFileSize(_ path: String) throws(S3Error) -> Int64 {
    let attributes: [FileAttributeKey: Any]
    do { attributes = try FileManager.default.attributesOfItem(atPath: path) } catch {
        throw .localFile(path: path, detail: (error as NSError).localizedDescription)
    }
    guard (attributes[.type] as? FileAttributeType) == .typeRegular else { throw .localFile(path: path, detail: "not a regular file") }
    return (attributes[.size] as? NSNumber)?.int64Value ?? 0
}

/// Digests of a local file read once, front to back, through one small buffer: the SHA-1 of all the
/// ranges in order (the whole file's, when they cover it) and the binary MD5 of each range (S3's ETag of
/// a part, and its `Content-MD5`). One pass serves both, because reading a backup is what costs.
struct FileDigests: Sendable {
    static let bufferSize = 256 * 1024

    var sha1: String?
    /// One per range; empty when MD5s were not asked for.
    var partMD5s: [[UInt8]]

    /// Reads on the calling thread; see `compute` for the async form.
    static func read(path: String, ranges: [(offset: Int64, length: Int64)], sha1 wantSHA1: Bool, md5 wantMD5: Bool = true) throws(S3Error) -> FileDigests {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .localFile(path: path, detail: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        let whole = wantSHA1 ? StreamingDigest(.sha1) : nil
        var md5s: [[UInt8]] = []
        for range in ranges {
            let part = wantMD5 ? StreamingDigest(.md5) : nil
            var done: Int64 = 0
            while done < range.length {
                let count = pread(fd, buffer.baseAddress, Int(min(Int64(bufferSize), range.length - done)), off_t(range.offset + done))
                if count < 0 { throw .localFile(path: path, detail: "cannot read: \(String(cString: strerror(errno)))") }
                if count == 0 { throw .localFile(path: path, detail: "changed while it was read (ended at byte \(range.offset + done))") }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
                whole?.update(chunk)
                part?.update(chunk)
                done += Int64(count)
            }
            if let part { md5s.append(part.finalize()) }
        }
        return FileDigests(sha1: whole?.hexDigest(), partMD5s: md5s)
    }

    static func compute(path: String, ranges: [(offset: Int64, length: Int64)], sha1: Bool, md5: Bool = true) async throws(S3Error) -> FileDigests {
        try await onFileThread { () throws(S3Error) -> FileDigests in try read(path: path, ranges: ranges, sha1: sha1, md5: md5) }
    }
}
