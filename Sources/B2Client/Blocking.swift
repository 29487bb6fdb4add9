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

/// SHA-1 of a whole file and of each part, in one sequential pass with bounded memory.
enum FileHasher {
    static func hash(path: String, partSize: Int64, progress: (@Sendable (Int64) -> Void)? = nil) async throws(B2Error) -> (whole: String, parts: [String]) {
        try await onIOThread { () throws(B2Error) -> (whole: String, parts: [String]) in
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw B2Error.invalidRequest("cannot open \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let whole = StreamingDigest(.sha1)
            var part = StreamingDigest(.sha1)
            var partFill: Int64 = 0
            var parts: [String] = []
            var offset: Int64 = 0
            let chunk = 1 << 20
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let want = Int(min(Int64(chunk), partSize - partFill))
                let count = pread(fd, buffer.baseAddress, want, off_t(offset))
                if count < 0 { throw B2Error.invalidRequest("cannot read \(path): \(String(cString: strerror(errno)))") }
                if count == 0 { break }
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
                whole.update(bytes)
                part.update(bytes)
                partFill += Int64(count)
                offset += Int64(count)
                if partFill == partSize {
                    parts.append(part.hexDigest())
                    part = StreamingDigest(.sha1)
                    partFill = 0
                }
                if offset % (64 << 20) == 0 { progress?(offset) }
            }
            if partFill > 0 { parts.append(part.hexDigest()) }
            progress?(offset)
            return (whole.hexDigest(), parts)
        }
    }

    static func sha1(path: String) async throws(B2Error) -> String {
        try await hash(path: path, partSize: .max).whole
    }
}
