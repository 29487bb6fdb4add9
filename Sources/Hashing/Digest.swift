import CCrypto

// Hashing: digests and ciphers from libcrypto. The one Swift module that imports CCrypto (the package's
// rule: each C library is wrapped by exactly one module); every other module hashes, encrypts and
// authenticates through the Swift types here (StreamingDigest; AESCBC, ChaCha20, Poly1305 in Cipher.swift).

/// Streaming message digests from OpenSSL's libcrypto (a kept implementation, not our own).
///
/// Owns one `EVP_MD_CTX`; feed it chunks as they are read, so a 20 GB file is hashed in a few KiB.
public final class StreamingDigest {
    public enum Algorithm: Sendable {
        /// MD5 only for S3's `Content-MD5` and ETags, which are defined with it; never for security.
        case md5, sha1, sha256
        var evp: OpaquePointer? {
            switch self {
            case .md5: EVP_md5()
            case .sha1: EVP_sha1()
            case .sha256: EVP_sha256()
            }
        }
    }

    private let context: OpaquePointer
    private var finished = false

    public init(_ algorithm: Algorithm) {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, algorithm.evp, nil) == 1 else {
            fatalError("libcrypto cannot initialise a digest (out of memory)")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!finished, "digest updated after finalize")
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest; the object cannot be used afterwards.
    public func finalize() -> [UInt8] {
        precondition(!finished, "digest finalized twice")
        finished = true
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &output, &length)
        return Array(output[0..<Int(length)])
    }

    /// Lower-case hex, as B2 writes SHA-1 values.
    public func hexDigest() -> String { Hex.encode(finalize()) }

    public static func sha1Hex(_ bytes: [UInt8]) -> String {
        let digest = StreamingDigest(.sha1)
        digest.update(bytes)
        return digest.hexDigest()
    }
}

@available(*, unavailable)
extension StreamingDigest: Sendable {}

public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// True for 40 lower- or upper-case hex digits.
    public static func isSHA1(_ text: String) -> Bool {
        text.utf8.count == 40 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }
    }
}
