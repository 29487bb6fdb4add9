import Foundation
import Hashing

/// Runs blocking file I/O on a thread of its own, so Swift's cooperative threads never wait on a disk.
func onIOThread<T: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: Result { () throws(E) -> T in try work() }) }
        thread.name = "b2-file-io"
        thread.start()
    }
    return try result.get()
}

/// File facts the engines need, read with `stat`.
struct LocalFile: Sendable {
    let path: String
    let size: Int64
    let modifiedMillis: Int64

    static func stat(_ path: String) throws(B2Error) -> LocalFile {
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            guard (attributes[.type] as? FileAttributeType) == .typeRegular else { throw B2Error.invalidRequest("\(path) is not a regular file") }
            let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
            let modified = (attributes[.modificationDate] as? Date).map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } ?? 0
            return LocalFile(path: path, size: size, modifiedMillis: modified)
        } catch let error as B2Error {
            throw error
        } catch {
            throw B2Error.invalidRequest("cannot read \(path): \((error as NSError).localizedDescription)")
        }
    }
}

/// SHA-1 of a whole file and of each part, with bounded memory (one small buffer per thread).
///
/// The whole-file digest is inherently sequential, so it runs on one thread while the part digests run
/// on the other cores at the same time: on two cores that halves the time of hashing both in one pass.
enum FileHasher {
    static let bufferSize = 256 * 1024

    static func hash(path: String, partSize: Int64, progress: (@Sendable (Int64) -> Void)? = nil) async throws(B2Error) -> (whole: String, parts: [String]) {
        let size = try LocalFile.stat(path).size
        let parts = stride(from: Int64(0), to: max(size, 1), by: Int(partSize)).map { ($0, min(partSize, size - $0)) }
        let groups = max(1, min(parts.count, ProcessInfo.processInfo.activeProcessorCount - 1))
        let perGroup = (parts.count + groups - 1) / groups
        async let whole = onIOThread { digests(path: path, ranges: [(0, size)], progress: progress) }
        var partDigests: [String] = []
        await withTaskGroup(of: (Int, Result<[String], B2Error>).self) { group in
            for index in 0..<groups {
                let slice = Array(parts[min(parts.count, index * perGroup)..<min(parts.count, (index + 1) * perGroup)])
                group.addTask { (index, await onIOThread { digests(path: path, ranges: slice, progress: nil) }) }
            }
            var results: [(Int, Result<[String], B2Error>)] = []
            for await result in group { results.append(result) }
            for (_, result) in results.sorted(by: { $0.0 < $1.0 }) {
                switch result {
                case .success(let hashes): partDigests += hashes
                case .failure: partDigests = []
                }
            }
        }
        let wholeDigest = try await whole.get()
        guard partDigests.count == parts.count else { throw B2Error.invalidRequest("cannot hash the parts of \(path)") }
        return (wholeDigest.first ?? "", partDigests)
    }

    static func sha1(path: String) async throws(B2Error) -> String {
        let size = try LocalFile.stat(path).size
        return try await onIOThread { digests(path: path, ranges: [(0, size)], progress: nil) }.get().first ?? ""
    }

    /// SHA-1 of each byte range, in order, read with `pread` through one buffer. Runs on the calling thread.
    static func digests(path: String, ranges: [(offset: Int64, length: Int64)], progress: (@Sendable (Int64) -> Void)?) -> Result<[String], B2Error> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(B2Error.invalidRequest("cannot open \(path): \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        var results: [String] = []
        for range in ranges {
            let digest = StreamingDigest(.sha1)
            var done: Int64 = 0
            while done < range.length {
                let count = pread(fd, buffer.baseAddress, Int(min(Int64(bufferSize), range.length - done)), off_t(range.offset + done))
                if count < 0 { return .failure(B2Error.invalidRequest("cannot read \(path): \(String(cString: strerror(errno)))")) }
                if count == 0 { return .failure(B2Error.invalidRequest("\(path) changed while it was read (ended at byte \(range.offset + done))")) }
                digest.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                done += Int64(count)
                if done % (64 << 20) == 0 { progress?(range.offset + done) }
            }
            progress?(range.offset + done)
            results.append(digest.hexDigest())
        }
        return .success(results)
    }
}
