import CCrypto
import Hashing

// SecureTar (securetar 2026.4.1), the encryption of protected Home Assistant backups: headers, key
// derivation and streaming decryption, enough to prove a password right and the content intact.
// Ciphers and MACs come from OpenSSL's libcrypto; Argon2id and BLAKE2b, which it lacks, from Argon2.swift.
// See /work/shared/reference/backup-format.md §4.

/// Why an encrypted archive does not check out.
struct SecureTarFailure: Error {
    enum Kind { case wrongPassword, corrupt }
    let kind: Kind
    let detail: String
    static func corrupt(_ detail: String) -> Self { .init(kind: .corrupt, detail: detail) }
}

/// The header that starts a SecureTar v2 or v3 archive: `"SecureTar"`, version, six zero bytes, the
/// plaintext size (u64 big-endian), eight reserved bytes, then the cipher parameters.
struct SecureTarHeader: Sendable {
    static let magic = Array("SecureTar".utf8)
    static let v3ChunkSize: Int64 = 1 << 20
    static let v3ChunkOverhead: Int64 = 17

    let version: Int
    let plaintextSize: Int64
    let bytes: [UInt8]

    var size: Int { version == 2 ? 48 : 136 }
    /// v3: root salt, validation salt and validation key, shared by every archive of one backup.
    var rootParameters: ArraySlice<UInt8> { version == 3 ? bytes[32..<96] : [] }
    var rootSalt: [UInt8] { Array(bytes[32..<48]) }
    var validationSalt: [UInt8] { Array(bytes[48..<64]) }
    var validationKey: [UInt8] { Array(bytes[64..<96]) }
    var derivationSalt: [UInt8] { Array(bytes[96..<112]) }
    var streamHeader: [UInt8] { Array(bytes[112..<136]) }
    /// v2: the salt the AES IV is derived from.
    var salt: [UInt8] { Array(bytes[32..<48]) }

    static func hasMagic(_ head: some Collection<UInt8>) -> Bool { head.starts(with: magic) }

    /// Parses the header at the start of `head`; nil when `head` does not start with the magic.
    static func parse(_ head: [UInt8]) -> Result<SecureTarHeader, SecureTarFailure>? {
        guard hasMagic(head), head.count >= 10 else { return nil }
        let version = Int(head[9])
        guard version == 2 || version == 3 else { return .failure(.corrupt("unsupported SecureTar version \(version)")) }
        let size = version == 2 ? 48 : 136
        guard head.count >= size else { return .failure(.corrupt("the SecureTar v\(version) header is cut short")) }
        guard head[10..<16].allSatisfy({ $0 == 0 }) else { return .failure(.corrupt("the SecureTar header's reserved bytes are not zero")) }
        let plaintext = head[16..<24].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard plaintext < UInt64(Int64.max / 2) else { return .failure(.corrupt("the SecureTar header claims \(plaintext) bytes")) }
        return .success(SecureTarHeader(version: version, plaintextSize: Int64(plaintext), bytes: Array(head.prefix(size))))
    }

    /// v3: chunks of the secretstream, at least one (an empty plaintext still gets a FINAL chunk).
    var chunkCount: Int64 { max(1, (plaintextSize + Self.v3ChunkSize - 1) / Self.v3ChunkSize) }

    /// The tar entry size this header implies: v3 header + plaintext + 17 bytes a chunk; v2 header +
    /// plaintext PKCS#7-padded to 16 (a whole block of padding when already aligned).
    var expectedEntrySize: Int64 {
        version == 3 ? 136 + plaintextSize + Self.v3ChunkOverhead * chunkCount : 48 + 16 * (plaintextSize / 16 + 1)
    }
}

/// Keys derived from the backup password.
enum SecureTarKeys {
    /// v1/v2 AES-128 key: SHA-256 applied 100 times to the UTF-8 password, first 16 bytes.
    static func aesKey(password: String) -> [UInt8] { Array(sha256Rounds(Array(password.utf8)).prefix(16)) }

    /// v1/v2 IV: SHA-256 applied 100 times to key ‖ salt, first 16 bytes.
    static func aesIV(key: [UInt8], salt: [UInt8]) -> [UInt8] { Array(sha256Rounds(key + salt).prefix(16)) }

    private static func sha256Rounds(_ input: [UInt8]) -> [UInt8] {
        var value = input
        for _ in 0..<100 {
            let digest = StreamingDigest(.sha256)
            digest.update(value)
            value = digest.finalize()
        }
        return value
    }

    /// v3 root key: libsodium `crypto_pwhash` Argon2id13, opslimit 8, memlimit 16 MiB, 32 bytes.
    static func v3RootKey(password: String, rootSalt: [UInt8]) -> [UInt8] {
        Argon2id.hash(password: Array(password.utf8), salt: rootSalt, iterations: 8, memoryKiB: 16 * 1024)
    }

    /// v3 validation and file keys: BLAKE2b-256 of nothing, keyed with the root key, with a salt and
    /// the personalisation `"SecureTarv3"`.
    static func v3Subkey(rootKey: [UInt8], salt: [UInt8]) -> [UInt8] {
        Blake2b.hash([], outputLength: 32, key: rootKey, salt: salt, personal: Array("SecureTarv3".utf8))
    }

    /// Compares without an early exit (the habit for secrets, though the validation key is stored in clear).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Decrypts a ciphertext stream pushed to it piece by piece, handing plaintext on.
protocol SecureTarDecryptor: AnyObject {
    func push(_ bytes: ArraySlice<UInt8>, into sink: (ArraySlice<UInt8>) throws -> Void) throws
    /// Call after the last byte: checks the stream ended where it should.
    func finish(into sink: (ArraySlice<UInt8>) throws -> Void) throws
}

/// AES-128-CBC with PKCS#7 (SecureTar v1 and v2) through OpenSSL's EVP interface.
final class AESCBCDecryptor: SecureTarDecryptor {
    private let context: OpaquePointer
    private var output = [UInt8](repeating: 0, count: 0)

    init(key: [UInt8], iv: [UInt8]) {
        guard let context = EVP_CIPHER_CTX_new(), EVP_DecryptInit_ex(context, EVP_aes_128_cbc(), nil, key, iv) == 1 else {
            fatalError("libcrypto cannot set up AES-128-CBC (out of memory)")
        }
        self.context = context
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    func push(_ bytes: ArraySlice<UInt8>, into sink: (ArraySlice<UInt8>) throws -> Void) throws {
        guard !bytes.isEmpty else { return }
        if output.count < bytes.count + 16 { output = [UInt8](repeating: 0, count: bytes.count + 16) }
        var produced: Int32 = 0
        let status = bytes.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { EVP_DecryptUpdate(context, $0.baseAddress, &produced, input.baseAddress, Int32(input.count)) }
        }
        guard status == 1 else { throw SecureTarFailure.corrupt("AES decryption failed") }
        if produced > 0 { try sink(output[0..<Int(produced)]) }
    }

    func finish(into sink: (ArraySlice<UInt8>) throws -> Void) throws {
        var last = [UInt8](repeating: 0, count: 32)
        var produced: Int32 = 0
        guard EVP_DecryptFinal_ex(context, &last, &produced) == 1 else {
            throw SecureTarFailure.corrupt("the AES padding (PKCS#7) at the end is invalid")
        }
        if produced > 0 { try sink(last[0..<Int(produced)]) }
    }

    /// Decrypts whole blocks without looking for padding: the password check needs only the first ones.
    static func firstBlocks(key: [UInt8], iv: [UInt8], ciphertext: ArraySlice<UInt8>) -> [UInt8] {
        let decryptor = AESCBCDecryptor(key: key, iv: iv)
        EVP_CIPHER_CTX_set_padding(decryptor.context, 0)
        var plain: [UInt8] = []
        try? decryptor.push(ciphertext.prefix(ciphertext.count / 16 * 16)) { plain += $0 }
        return plain
    }
}

/// libsodium's `crypto_secretstream_xchacha20poly1305` pull side (SecureTar v3): 1 MiB plaintext chunks,
/// each a tag byte + ciphertext + Poly1305 MAC; MESSAGE tags except FINAL on the last chunk.
final class SecretStreamDecryptor: SecureTarDecryptor {
    private static let tagMessage: UInt8 = 0
    private static let tagRekey: UInt8 = 2
    private static let tagFinal: UInt8 = 3

    private var key: [UInt8]
    /// The ChaCha20-IETF nonce: a 32-bit little-endian counter, then 8 bytes the MACs evolve.
    private var nonce: [UInt8]
    private let plaintextSize: Int64
    private let chunkCount: Int64
    private var chunkIndex: Int64 = 0
    private var pending: [UInt8] = []

    init(fileKey: [UInt8], header: [UInt8], plaintextSize: Int64, chunkCount: Int64) {
        key = HChaCha20.derive(key: fileKey, input: Array(header[0..<16]))
        nonce = [1, 0, 0, 0] + header[16..<24]
        self.plaintextSize = plaintextSize
        self.chunkCount = chunkCount
        pending.reserveCapacity(Int(SecureTarHeader.v3ChunkSize + SecureTarHeader.v3ChunkOverhead))
    }

    private var currentChunkSize: Int {
        let isLast = chunkIndex == chunkCount - 1
        let plain = isLast ? plaintextSize - (chunkCount - 1) * SecureTarHeader.v3ChunkSize : SecureTarHeader.v3ChunkSize
        return Int(plain + SecureTarHeader.v3ChunkOverhead)
    }

    func push(_ bytes: ArraySlice<UInt8>, into sink: (ArraySlice<UInt8>) throws -> Void) throws {
        var input = bytes
        while !input.isEmpty {
            guard chunkIndex < chunkCount else { throw SecureTarFailure.corrupt("data after the final secretstream chunk") }
            let take = min(currentChunkSize - pending.count, input.count)
            pending += input.prefix(take)
            input = input.dropFirst(take)
            if pending.count == currentChunkSize {
                let isLast = chunkIndex == chunkCount - 1
                let (tag, plain) = try pull(pending)
                guard tag == (isLast ? Self.tagFinal : Self.tagMessage) else {
                    throw SecureTarFailure.corrupt("secretstream chunk \(chunkIndex + 1) of \(chunkCount) has tag \(tag), expected \(isLast ? "FINAL" : "MESSAGE")")
                }
                chunkIndex += 1
                pending.removeAll(keepingCapacity: true)
                try sink(plain[...])
            }
        }
    }

    func finish(into sink: (ArraySlice<UInt8>) throws -> Void) throws {
        guard chunkIndex == chunkCount else {
            throw SecureTarFailure.corrupt("the secretstream stops after \(chunkIndex) of \(chunkCount) chunks")
        }
    }

    /// One `crypto_secretstream_xchacha20poly1305_pull` without additional data.
    private func pull(_ chunk: [UInt8]) throws -> (tag: UInt8, plaintext: [UInt8]) {
        let messageLength = chunk.count - 17
        let polyKey = Array(ChaCha20.xor([UInt8](repeating: 0, count: 64), key: key, nonce: nonce, counter: 0).prefix(32))
        var block = ChaCha20.xor([chunk[0]] + [UInt8](repeating: 0, count: 63), key: key, nonce: nonce, counter: 1)
        let tag = block[0]
        block[0] = chunk[0]
        let ciphertext = chunk[1..<(1 + messageLength)]
        func le64(_ value: Int) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        // libsodium pads with (0x10 - 64 + mlen) & 0xf zero bytes here, not to a 16-byte boundary; kept for compatibility.
        let mac = Poly1305.mac(key: polyKey, parts: [block[...], ciphertext, [UInt8](repeating: 0, count: messageLength & 0xF)[...],
                                                     le64(0)[...], le64(64 + messageLength)[...]])
        guard SecureTarKeys.constantTimeEqual(mac, Array(chunk[(1 + messageLength)...])) else {
            throw SecureTarFailure.corrupt("secretstream chunk \(chunkIndex + 1) of \(chunkCount) fails its MAC (damaged data)")
        }
        let plaintext = ChaCha20.xor(Array(ciphertext), key: key, nonce: nonce, counter: 2)
        for index in 0..<8 { nonce[4 + index] ^= mac[index] }
        increment()
        if tag & Self.tagRekey != 0 || nonce[0..<4].allSatisfy({ $0 == 0 }) { rekey() }
        return (tag, plaintext)
    }

    private func increment() {
        for index in 0..<4 {
            nonce[index] &+= 1
            if nonce[index] != 0 { break }
        }
    }

    private func rekey() {
        let next = ChaCha20.xor(key + nonce[4..<12], key: key, nonce: nonce, counter: 0)
        key = Array(next[0..<32])
        nonce = [1, 0, 0, 0] + next[32..<40]
    }
}

/// ChaCha20 (IETF: 32-bit counter, 96-bit nonce) from OpenSSL, whose 16-byte IV is the counter then the nonce.
enum ChaCha20 {
    static func xor(_ input: [UInt8], key: [UInt8], nonce: [UInt8], counter: UInt32) -> [UInt8] {
        let iv = (0..<4).map { UInt8(truncatingIfNeeded: counter >> (8 * $0)) } + nonce
        guard let context = EVP_CIPHER_CTX_new() else { fatalError("libcrypto cannot allocate a cipher context") }
        defer { EVP_CIPHER_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: input.count)
        var produced: Int32 = 0
        guard EVP_EncryptInit_ex(context, EVP_chacha20(), nil, key, iv) == 1,
              EVP_EncryptUpdate(context, &output, &produced, input, Int32(input.count)) == 1, Int(produced) == input.count else {
            fatalError("libcrypto ChaCha20 failed")
        }
        return output
    }
}

/// HChaCha20 (the XChaCha20 subkey step of libsodium's `crypto_core_hchacha20`), which OpenSSL does not export.
enum HChaCha20 {
    static func derive(key: [UInt8], input: [UInt8]) -> [UInt8] {
        func word(_ bytes: [UInt8], _ index: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[4 * index + $1]) << UInt32(8 * $1) }
        }
        var x: [UInt32] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]
        x += (0..<8).map { word(key, $0) }
        x += (0..<4).map { word(input, $0) }
        func quarter(_ a: Int, _ b: Int, _ c: Int, _ d: Int) {
            x[a] &+= x[b]; x[d] ^= x[a]; x[d] = x[d] << 16 | x[d] >> 16
            x[c] &+= x[d]; x[b] ^= x[c]; x[b] = x[b] << 12 | x[b] >> 20
            x[a] &+= x[b]; x[d] ^= x[a]; x[d] = x[d] << 8 | x[d] >> 24
            x[c] &+= x[d]; x[b] ^= x[c]; x[b] = x[b] << 7 | x[b] >> 25
        }
        for _ in 0..<10 {
            quarter(0, 4, 8, 12); quarter(1, 5, 9, 13); quarter(2, 6, 10, 14); quarter(3, 7, 11, 15)
            quarter(0, 5, 10, 15); quarter(1, 6, 11, 12); quarter(2, 7, 8, 13); quarter(3, 4, 9, 14)
        }
        return [0, 1, 2, 3, 12, 13, 14, 15].flatMap { index in (0..<4).map { UInt8(truncatingIfNeeded: x[index] >> UInt32(8 * $0)) } }
    }
}

/// Poly1305 from OpenSSL's EVP_MAC.
enum Poly1305 {
    static func mac(key: [UInt8], parts: [ArraySlice<UInt8>]) -> [UInt8] {
        guard let algorithm = EVP_MAC_fetch(nil, "POLY1305", nil) else { fatalError("libcrypto has no POLY1305") }
        defer { EVP_MAC_free(algorithm) }
        guard let context = EVP_MAC_CTX_new(algorithm), EVP_MAC_init(context, key, key.count, nil) == 1 else {
            fatalError("libcrypto cannot set up POLY1305")
        }
        defer { EVP_MAC_CTX_free(context) }
        for part in parts where !part.isEmpty {
            _ = part.withUnsafeBufferPointer { EVP_MAC_update(context, $0.baseAddress, $0.count) }
        }
        var out = [UInt8](repeating: 0, count: 16)
        var length = 0
        guard EVP_MAC_final(context, &out, &length, 16) == 1, length == 16 else { fatalError("libcrypto POLY1305 failed") }
        return out
    }
}
