#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random-access bytes of a backup: a local file, or ranges fetched from B2. The verifier asks for
/// ranges instead of taking a stream so that a quick check reads only headers, while a full check
/// reads every byte once, in order.
public protocol ByteSource: Sendable {
    var size: Int64 { get }
    /// Up to `length` bytes from `offset`; fewer only at the end of the source.
    func read(offset: Int64, length: Int) async throws -> [UInt8]
}

/// Why a ``FileByteSource`` could not open or read its file.
public struct ByteSourceError: Error, Sendable, Hashable, CustomStringConvertible {
    public let path: String
    public let operation: String
    public let errno: Int32

    public var description: String { "cannot \(operation) \(path): \(String(cString: strerror(errno)))" }
}

/// A local file read with `pread`: each read is positioned, so nothing is shared between reads and the
/// file is never loaded whole (backups are many GB).
public struct FileByteSource: ByteSource {
    /// Owns the descriptor so that copies of the struct share it and it closes with the last one.
    private final class Descriptor: Sendable {
        let fd: Int32
        init(_ fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    private let descriptor: Descriptor
    public let path: String
    public let size: Int64

    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ByteSourceError(path: path, operation: "open", errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = ByteSourceError(path: path, operation: "stat", errno: errno)
            close(fd)
            throw error
        }
        descriptor = Descriptor(fd)
        self.path = path
        size = Int64(info.st_size)
    }

    public func read(offset: Int64, length: Int) async throws -> [UInt8] {
        let count = Int(max(0, min(Int64(max(0, length)), size - offset)))
        guard count > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let result = buffer.withUnsafeMutableBytes { raw in
                pread(descriptor.fd, raw.baseAddress! + filled, count - filled, off_t(offset) + off_t(filled))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw ByteSourceError(path: path, operation: "read", errno: errno)
            }
            if result == 0 { break } // the file shrank since it was opened
            filled += result
        }
        if filled < count { buffer.removeSubrange(filled...) }
        return buffer
    }
}
