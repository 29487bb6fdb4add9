import Foundation
import Hashing

/// Temporary files and random content for the S3 tests.
enum TestFiles {
    static func path(_ label: String = "s3") -> String { NSTemporaryDirectory() + "\(label)-\(UUID().uuidString)" }

    static func write(_ bytes: [UInt8], to path: String = path()) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func read(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    static func remove(_ paths: String...) { for path in paths { try? FileManager.default.removeItem(atPath: path) } }

    /// Random bytes, eight at a time (megabytes of them one byte at a time are slow in a debug build).
    static func random(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < count {
                var word = generator.next()
                let length = min(8, count - offset)
                withUnsafeBytes(of: &word) { buffer.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: length) }
                offset += length
            }
        }
        return bytes
    }

    static func md5Hex(_ bytes: [UInt8]) -> String {
        let digest = StreamingDigest(.md5)
        digest.update(bytes)
        return digest.hexDigest()
    }
}
