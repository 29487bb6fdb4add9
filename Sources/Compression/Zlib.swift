import CZlib

/// What went wrong inside zlib, with zlib's own return code and message.
public struct CompressionError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The input is not a valid gzip/deflate stream (bad header, bad CRC, bad length).
        case corruptData
        /// The input ended before the end of the stream.
        case truncated
        /// zlib could not allocate its state.
        case outOfMemory
        /// Any other zlib return code.
        case zlib(Int32)
    }
    public let code: Code
    public let operation: String
    public let detail: String

    public var description: String { "zlib \(operation) failed: \(detail)" }

    static func from(_ status: Int32, _ operation: String, _ stream: UnsafeMutablePointer<z_stream>) -> CompressionError {
        let message = stream.pointee.msg.map { String(cString: $0) } ?? "return code \(status)"
        switch status {
        case Z_DATA_ERROR: return .init(code: .corruptData, operation: operation, detail: message)
        case Z_MEM_ERROR: return .init(code: .outOfMemory, operation: operation, detail: "out of memory")
        default: return .init(code: .zlib(status), operation: operation, detail: message)
        }
    }
}

/// The format around deflate data, chosen by zlib's window-bits convention.
public enum CompressionFormat: Sendable {
    case gzip, deflate, raw
    var windowBits: Int32 {
        switch self {
        case .gzip: 15 + 16
        case .deflate: 15
        case .raw: -15
        }
    }
}

/// Streaming compressor. Owns one `z_stream`, heap-allocated because zlib keeps its address.
///
/// Feed input with ``compress(_:)`` as it arrives and call ``finish()`` once; memory stays bounded
/// by zlib's window, whatever the input size.
public final class Deflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private var finished = false

    public init(format: CompressionFormat = .gzip, level: Int32 = 6) throws(CompressionError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = b2_deflateInit2(stream, level, format.windowBits, 8)
        guard status == Z_OK else {
            let error = CompressionError.from(status, "deflateInit2", stream)
            stream.deallocate()
            throw error
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// Compresses a chunk; returns whatever compressed bytes zlib emits for it (possibly none).
    public func compress(_ input: [UInt8]) throws(CompressionError) -> [UInt8] {
        try run(input, flush: Z_NO_FLUSH)
    }

    /// Ends the stream and returns the remaining bytes, including the gzip trailer.
    public func finish() throws(CompressionError) -> [UInt8] {
        precondition(!finished, "Deflater.finish called twice")
        finished = true
        return try run([], flush: Z_FINISH)
    }

    private func run(_ input: [UInt8], flush: Int32) throws(CompressionError) -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        var failure: CompressionError?
        input.withUnsafeBufferPointer { inBuffer in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
            stream.pointee.avail_in = UInt32(inBuffer.count)
            repeat {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { outBuffer in
                    stream.pointee.next_out = outBuffer.baseAddress
                    stream.pointee.avail_out = UInt32(outBuffer.count)
                    let status = deflate(stream, flush)
                    if status == Z_STREAM_ERROR { failure = .from(status, "deflate", stream) }
                    return outBuffer.count - Int(stream.pointee.avail_out)
                }
                output.append(contentsOf: chunk[0..<produced])
            } while failure == nil && stream.pointee.avail_out == 0
            stream.pointee.next_in = nil
        }
        if let failure { throw failure }
        return output
    }
}

/// Streaming decompressor for gzip, zlib or raw deflate data; verifies the gzip CRC-32 and length.
public final class Inflater {
    private let stream: UnsafeMutablePointer<z_stream>
    /// True once the end of the compressed stream (and its trailer) was read.
    public private(set) var isFinished = false

    public init(format: CompressionFormat = .gzip) throws(CompressionError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = b2_inflateInit2(stream, format.windowBits)
        guard status == Z_OK else {
            let error = CompressionError.from(status, "inflateInit2", stream)
            stream.deallocate()
            throw error
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Decompresses a chunk, handing each piece of output to `sink`. Bytes after the end of the stream are ignored.
    public func decompress(_ input: [UInt8], into sink: ([UInt8]) throws -> Void) throws {
        guard !isFinished else { return }
        var chunk = [UInt8](repeating: 0, count: 32 * 1024)
        try input.withUnsafeBufferPointer { inBuffer in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
            stream.pointee.avail_in = UInt32(inBuffer.count)
            defer { stream.pointee.next_in = nil }
            while true {
                var status: Int32 = Z_OK
                let produced: Int = chunk.withUnsafeMutableBufferPointer { outBuffer in
                    stream.pointee.next_out = outBuffer.baseAddress
                    stream.pointee.avail_out = UInt32(outBuffer.count)
                    status = inflate(stream, Z_NO_FLUSH)
                    return outBuffer.count - Int(stream.pointee.avail_out)
                }
                if produced > 0 { try sink(Array(chunk[0..<produced])) }
                switch status {
                case Z_STREAM_END:
                    isFinished = true
                    return
                case Z_OK:
                    if stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0 { return }
                case Z_BUF_ERROR:
                    return // needs more input
                default:
                    throw CompressionError.from(status, "inflate", stream)
                }
            }
        }
    }

    /// Call when the input is exhausted: throws `.truncated` unless the stream ended properly.
    public func finish() throws(CompressionError) {
        guard isFinished else {
            throw CompressionError(code: .truncated, operation: "inflate", detail: "the compressed stream ended early")
        }
    }
}

/// Running CRC-32 (the gzip and tar-check checksum), computed by zlib.
public struct CRC32: Sendable, Hashable {
    public private(set) var value: UInt32 = 0
    public init() {}

    public mutating func update(_ bytes: some Collection<UInt8>) {
        let current = UInt(value)
        let next = bytes.withContiguousStorageIfAvailable { buffer in
            crc32(current, buffer.baseAddress, UInt32(buffer.count))
        } ?? Array(bytes).withUnsafeBufferPointer { crc32(current, $0.baseAddress, UInt32($0.count)) }
        value = UInt32(truncatingIfNeeded: next)
    }

    public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        var crc = CRC32()
        crc.update(bytes)
        return crc.value
    }
}

/// One-shot helpers for small buffers such as embedded web assets.
public enum Gzip {
    public static func compress(_ bytes: [UInt8], level: Int32 = 9) throws(CompressionError) -> [UInt8] {
        let deflater = try Deflater(format: .gzip, level: level)
        return try deflater.compress(bytes) + deflater.finish()
    }

    public static func decompress(_ bytes: [UInt8]) throws -> [UInt8] {
        let inflater = try Inflater(format: .gzip)
        var output: [UInt8] = []
        try inflater.decompress(bytes) { output.append(contentsOf: $0) }
        try inflater.finish()
        return output
    }
}
