import CCrypto

// Ciphers and a MAC from OpenSSL's libcrypto, for SecureTar (protected Home Assistant backups): AES-CBC
// (SecureTar v1/v2) and ChaCha20 and Poly1305, the parts of libsodium's XChaCha20-Poly1305 secretstream
// (SecureTar v3) that libcrypto has. Like ``StreamingDigest`` each type owns one libcrypto context, freed
// in deinit, and is not Sendable; the API speaks in Swift bytes only.

/// A cipher operation libcrypto refused (bad padding at the end of a decryption, input not in whole
/// blocks without padding).
public struct CipherError: Error, Sendable, Hashable, CustomStringConvertible {
    public let detail: String
    public init(_ detail: String) { self.detail = detail }
    public var description: String { detail }
}

/// AES in CBC mode (NIST SP 800-38A), encrypting or decrypting a stream piece by piece. The key length
/// picks AES-128, -192 or -256. Owns one `EVP_CIPHER_CTX`.
///
/// With `padding` (the default) encryption appends PKCS#7 padding (1…16 bytes) in ``finalize()`` and
/// decryption checks and removes it there; without it the input must come to whole 16-byte blocks.
/// Output lags input by up to one block: ``update(_:)-(ArraySlice<UInt8>)`` returns whole blocks only.
public final class AESCBC {
    public enum Operation: Sendable { case encrypt, decrypt }

    public static let blockSize = 16

    private let context: OpaquePointer
    private var finished = false

    /// - Parameters:
    ///   - key: 16, 24 or 32 bytes.
    ///   - iv: 16 bytes.
    public init(_ operation: Operation, key: [UInt8], iv: [UInt8], padding: Bool = true) {
        precondition([16, 24, 32].contains(key.count), "an AES key has 16, 24 or 32 bytes, not \(key.count)")
        precondition(iv.count == Self.blockSize, "an AES-CBC IV has 16 bytes, not \(iv.count)")
        let cipher = switch key.count {
        case 16: EVP_aes_128_cbc()
        case 24: EVP_aes_192_cbc()
        default: EVP_aes_256_cbc()
        }
        guard let context = EVP_CIPHER_CTX_new(),
              EVP_CipherInit_ex(context, cipher, nil, key, iv, operation == .encrypt ? 1 : 0) == 1,
              EVP_CIPHER_CTX_set_padding(context, padding ? 1 : 0) == 1 else {
            fatalError("libcrypto cannot set up AES-CBC (out of memory)")
        }
        self.context = context
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// Encrypts or decrypts the next bytes; returns the whole blocks that are ready.
    public func update(_ bytes: ArraySlice<UInt8>) throws(CipherError) -> [UInt8] {
        precondition(!finished, "AES-CBC updated after finalize")
        guard !bytes.isEmpty else { return [] }
        guard bytes.count <= Int(Int32.max) - Self.blockSize else { throw CipherError("AES-CBC input of \(bytes.count) bytes is too large for one update") }
        var produced: Int32 = 0
        var status: Int32 = 0
        let output = [UInt8](unsafeUninitializedCapacity: bytes.count + Self.blockSize) { buffer, count in
            status = bytes.withUnsafeBufferPointer { input in
                EVP_CipherUpdate(context, buffer.baseAddress, &produced, input.baseAddress, Int32(input.count))
            }
            count = status == 1 ? Int(produced) : 0
        }
        guard status == 1 else { throw CipherError("AES-CBC failed") }
        return output
    }

    public func update(_ bytes: [UInt8]) throws(CipherError) -> [UInt8] { try update(bytes[...]) }

    /// The last block: encrypting, the padded final block (nothing without padding); decrypting, the
    /// last plaintext bytes with the padding checked and removed. The object cannot be used afterwards.
    /// - Throws: ``CipherError`` when the padding is invalid (a wrong key, damaged or cut ciphertext) or,
    ///   without padding, when the input did not come to whole blocks.
    public func finalize() throws(CipherError) -> [UInt8] {
        precondition(!finished, "AES-CBC finalized twice")
        finished = true
        var produced: Int32 = 0
        var status: Int32 = 0
        let output = [UInt8](unsafeUninitializedCapacity: Self.blockSize) { buffer, count in
            status = EVP_CipherFinal_ex(context, buffer.baseAddress, &produced)
            count = status == 1 ? Int(produced) : 0
        }
        guard status == 1 else { throw CipherError("AES-CBC: the final block or its PKCS#7 padding is invalid") }
        return output
    }
}

@available(*, unavailable)
extension AESCBC: Sendable {}

/// The ChaCha20 stream cipher of RFC 8439 §2.4 (256-bit key, 96-bit nonce, 32-bit initial block
/// counter): a keystream XORed onto the input, so encrypting and decrypting are the same call. Successive
/// calls continue the keystream where the last one stopped. Owns one `EVP_CIPHER_CTX`.
public final class ChaCha20 {
    public static let keySize = 32
    public static let nonceSize = 12
    /// One keystream block; the counter counts these.
    public static let blockSize = 64

    private let context: OpaquePointer

    /// - Parameters:
    ///   - key: 32 bytes.
    ///   - nonce: 12 bytes.
    ///   - counter: the block the keystream starts at (RFC 8439 encrypts from 1, keeping block 0 for the Poly1305 key).
    public init(key: [UInt8], nonce: [UInt8], counter: UInt32 = 0) {
        precondition(key.count == Self.keySize, "a ChaCha20 key has 32 bytes, not \(key.count)")
        precondition(nonce.count == Self.nonceSize, "a ChaCha20 nonce has 12 bytes, not \(nonce.count)")
        // libcrypto's 16-byte IV is the block counter (little-endian) followed by the nonce.
        let iv = (0..<4).map { UInt8(truncatingIfNeeded: counter >> (8 * UInt32($0))) } + nonce
        guard let context = EVP_CIPHER_CTX_new(), EVP_EncryptInit_ex(context, EVP_chacha20(), nil, key, iv) == 1 else {
            fatalError("libcrypto cannot set up ChaCha20 (out of memory)")
        }
        self.context = context
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// XORs the next `bytes.count` bytes of keystream onto `bytes`.
    public func xor(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        guard !bytes.isEmpty else { return [] }
        precondition(bytes.count <= Int(Int32.max), "ChaCha20 input of \(bytes.count) bytes is too large for one call")
        var produced: Int32 = 0
        var status: Int32 = 0
        let output = [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, count in
            status = bytes.withUnsafeBufferPointer { input in
                EVP_EncryptUpdate(context, buffer.baseAddress, &produced, input.baseAddress, Int32(input.count))
            }
            count = status == 1 ? Int(produced) : 0
        }
        guard status == 1, output.count == bytes.count else { fatalError("libcrypto ChaCha20 failed") }
        return output
    }

    public func xor(_ bytes: [UInt8]) -> [UInt8] { xor(bytes[...]) }

    /// The next `count` bytes of keystream (the keystream XORed onto zeros).
    public func keystream(_ count: Int) -> [UInt8] { xor([UInt8](repeating: 0, count: count)) }

    /// One call: `bytes` XORed with the keystream that starts at block `counter`.
    public static func xor(_ bytes: ArraySlice<UInt8>, key: [UInt8], nonce: [UInt8], counter: UInt32) -> [UInt8] {
        ChaCha20(key: key, nonce: nonce, counter: counter).xor(bytes)
    }

    public static func xor(_ bytes: [UInt8], key: [UInt8], nonce: [UInt8], counter: UInt32) -> [UInt8] {
        xor(bytes[...], key: key, nonce: nonce, counter: counter)
    }
}

@available(*, unavailable)
extension ChaCha20: Sendable {}

/// The Poly1305 one-time authenticator of RFC 8439 §2.5: a 16-byte tag of a message under a 32-byte
/// key that must never be used twice. Owns one `EVP_MAC_CTX` (libcrypto's `POLY1305` MAC).
public final class Poly1305 {
    public static let keySize = 32
    public static let tagSize = 16

    private let algorithm: OpaquePointer
    private let context: OpaquePointer
    private var finished = false

    public init(key: [UInt8]) {
        precondition(key.count == Self.keySize, "a Poly1305 key has 32 bytes, not \(key.count)")
        guard let algorithm = EVP_MAC_fetch(nil, "POLY1305", nil) else { fatalError("libcrypto has no POLY1305") }
        guard let context = EVP_MAC_CTX_new(algorithm), EVP_MAC_init(context, key, key.count, nil) == 1 else {
            EVP_MAC_free(algorithm)
            fatalError("libcrypto cannot set up POLY1305 (out of memory)")
        }
        self.algorithm = algorithm
        self.context = context
    }

    deinit {
        EVP_MAC_CTX_free(context)
        EVP_MAC_free(algorithm)
    }

    public func update(_ bytes: ArraySlice<UInt8>) {
        precondition(!finished, "Poly1305 updated after finalize")
        guard !bytes.isEmpty else { return }
        let status = bytes.withUnsafeBufferPointer { EVP_MAC_update(context, $0.baseAddress, $0.count) }
        guard status == 1 else { fatalError("libcrypto POLY1305 failed") }
    }

    public func update(_ bytes: [UInt8]) { update(bytes[...]) }

    /// The 16-byte tag; the object cannot be used afterwards.
    public func finalize() -> [UInt8] {
        precondition(!finished, "Poly1305 finalized twice")
        finished = true
        var length = 0
        var status: Int32 = 0
        let tag = [UInt8](unsafeUninitializedCapacity: Self.tagSize) { buffer, count in
            status = EVP_MAC_final(context, buffer.baseAddress, &length, Self.tagSize)
            count = status == 1 ? length : 0
        }
        guard status == 1, tag.count == Self.tagSize else { fatalError("libcrypto POLY1305 failed") }
        return tag
    }

    /// The tag of `message` under `key`, in one call.
    public static func tag(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        let mac = Poly1305(key: key)
        mac.update(message)
        return mac.finalize()
    }
}

@available(*, unavailable)
extension Poly1305: Sendable {}
