import Hashing

// SecureTar (securetar 2026.4.1), the encryption of protected Home Assistant backups: headers, key
// derivation and streaming decryption, enough to prove a password right and the content intact.
// Writing too (SecureTarWriter), for the Supervisor simulator's protected backups. AES-CBC, ChaCha20 and
// Poly1305 come from libcrypto through Hashing; Argon2id and BLAKE2b, which it lacks, from Argon2.swift,
// and HChaCha20 from here.
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

/// AES-128-CBC with PKCS#7 (SecureTar v1 and v2), through Hashing's ``AESCBC``.
final class AESCBCDecryptor: SecureTarDecryptor {
    private let cipher: AESCBC

    init(key: [UInt8], iv: [UInt8], padding: Bool = true) {
        cipher = AESCBC(.decrypt, key: key, iv: iv, padding: padding)
    }

    func push(_ bytes: ArraySlice<UInt8>, into sink: (ArraySlice<UInt8>) throws -> Void) throws {
        guard !bytes.isEmpty else { return }
        let plain: [UInt8]
        do { plain = try cipher.update(bytes) } catch { throw SecureTarFailure.corrupt("AES decryption failed") }
        if !plain.isEmpty { try sink(plain[...]) }
    }

    func finish(into sink: (ArraySlice<UInt8>) throws -> Void) throws {
        let last: [UInt8]
        do { last = try cipher.finalize() } catch { throw SecureTarFailure.corrupt("the AES padding (PKCS#7) at the end is invalid") }
        if !last.isEmpty { try sink(last[...]) }
    }

    /// Decrypts whole blocks without looking for padding: the password check needs only the first ones.
    static func firstBlocks(key: [UInt8], iv: [UInt8], ciphertext: ArraySlice<UInt8>) -> [UInt8] {
        let decryptor = AESCBCDecryptor(key: key, iv: iv, padding: false)
        var plain: [UInt8] = []
        try? decryptor.push(ciphertext.prefix(ciphertext.count / 16 * 16)) { plain += $0 }
        return plain
    }
}

/// The state of libsodium's `crypto_secretstream_xchacha20poly1305` (key and nonce), which pushing and
/// pulling advance alike. Each message becomes a tag byte, the ciphertext and a Poly1305 MAC (17 bytes
/// more); there is no additional data here. Mirrors libsodium's `secretstream/xchacha20poly1305`.
struct SecretStreamState {
    static let headerSize = 24
    static let overhead = 17
    static let tagMessage: UInt8 = 0
    static let tagRekey: UInt8 = 2
    static let tagFinal: UInt8 = 3

    private var key: [UInt8]
    /// The ChaCha20-IETF nonce: a 32-bit little-endian counter, then 8 bytes the MACs evolve.
    private var nonce: [UInt8]

    /// `init_push` / `init_pull`: the subkey is HChaCha20 of the key and the header's first 16 bytes, the
    /// nonce the counter 1 and the header's last 8 bytes.
    init(key: [UInt8], header: [UInt8]) {
        precondition(key.count == 32 && header.count == Self.headerSize)
        self.key = HChaCha20.derive(key: key, input: Array(header[0..<16]))
        nonce = [1, 0, 0, 0] + header[16..<24]
    }

    /// `crypto_secretstream_xchacha20poly1305_push`: the sealed message.
    mutating func push(_ message: ArraySlice<UInt8>, tag: UInt8) -> [UInt8] {
        let block = ChaCha20.xor([tag] + [UInt8](repeating: 0, count: 63), key: key, nonce: nonce, counter: 1)
        let ciphertext = ChaCha20.xor(message, key: key, nonce: nonce, counter: 2)
        let mac = self.mac(block: block, ciphertext: ciphertext[...])
        advance(mac: mac, tag: tag)
        var sealed = [UInt8]()
        sealed.reserveCapacity(ciphertext.count + Self.overhead)
        sealed.append(block[0])
        sealed += ciphertext
        sealed += mac
        return sealed
    }

    /// `crypto_secretstream_xchacha20poly1305_pull`: the tag and the plaintext, or nil when the MAC does
    /// not verify (the state is then left as it was).
    mutating func pull(_ sealed: ArraySlice<UInt8>) -> (tag: UInt8, plaintext: [UInt8])? {
        guard sealed.count >= Self.overhead else { return nil }
        let start = sealed.startIndex
        let messageLength = sealed.count - Self.overhead
        var block = ChaCha20.xor([sealed[start]] + [UInt8](repeating: 0, count: 63), key: key, nonce: nonce, counter: 1)
        let tag = block[0]
        block[0] = sealed[start]
        let ciphertext = sealed[(start + 1)..<(start + 1 + messageLength)]
        let mac = self.mac(block: block, ciphertext: ciphertext)
        guard SecureTarKeys.constantTimeEqual(mac, Array(sealed[(start + 1 + messageLength)...])) else { return nil }
        let plaintext = ChaCha20.xor(ciphertext, key: key, nonce: nonce, counter: 2)
        advance(mac: mac, tag: tag)
        return (tag, plaintext)
    }

    /// Poly1305 keyed with block 0 of the keystream, over the tag block, the ciphertext and the lengths.
    private func mac(block: [UInt8], ciphertext: ArraySlice<UInt8>) -> [UInt8] {
        func le64(_ value: Int) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        let poly = Poly1305(key: ChaCha20(key: key, nonce: nonce, counter: 0).keystream(32))
        // No additional data, so no AD padding; block is 64 bytes, already aligned.
        poly.update(block)
        poly.update(ciphertext)
        // libsodium pads with (0x10 - 64 + mlen) & 0xf zero bytes here, not to a 16-byte boundary; kept for compatibility.
        poly.update([UInt8](repeating: 0, count: ciphertext.count & 0xF))
        poly.update(le64(0))
        poly.update(le64(64 + ciphertext.count))
        return poly.finalize()
    }

    /// After each message: the MAC's first 8 bytes are XORed into the nonce, the counter goes up, and a
    /// REKEY tag or a counter that wrapped to zero rekeys.
    private mutating func advance(mac: [UInt8], tag: UInt8) {
        for index in 0..<8 { nonce[4 + index] ^= mac[index] }
        for index in 0..<4 {
            nonce[index] &+= 1
            if nonce[index] != 0 { break }
        }
        if tag & Self.tagRekey != 0 || nonce[0..<4].allSatisfy({ $0 == 0 }) { rekey() }
    }

    private mutating func rekey() {
        let next = ChaCha20.xor(key + nonce[4..<12], key: key, nonce: nonce, counter: 0)
        key = Array(next[0..<32])
        nonce = [1, 0, 0, 0] + next[32..<40]
    }
}

/// The pull side of the secretstream (SecureTar v3): 1 MiB plaintext chunks, MESSAGE tags except FINAL
/// on the last chunk.
final class SecretStreamDecryptor: SecureTarDecryptor {
    private var state: SecretStreamState
    private let plaintextSize: Int64
    private let chunkCount: Int64
    private var chunkIndex: Int64 = 0
    private var pending: [UInt8] = []

    init(fileKey: [UInt8], header: [UInt8], plaintextSize: Int64, chunkCount: Int64) {
        state = SecretStreamState(key: fileKey, header: header)
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
                guard let (tag, plain) = state.pull(pending[...]) else {
                    throw SecureTarFailure.corrupt("secretstream chunk \(chunkIndex + 1) of \(chunkCount) fails its MAC (damaged data)")
                }
                let expected = isLast ? SecretStreamState.tagFinal : SecretStreamState.tagMessage
                guard tag == expected else {
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


// MARK: Writing

/// The key material one protected backup shares: every archive of a backup made by Supervisor 2026.08
/// uses one password, and for SecureTar v3 one root salt, validation salt and validation key (so Argon2id,
/// 16 MiB and about a second, runs once per backup, here). v2 derives its AES key with SHA-256 only.
///
/// ```swift
/// let key = SecureTarBackupKey(password: "1234-…", version: .v3)   // Argon2id runs here
/// let writer = try SecureTarWriter(key: key, plaintextSize: Int64(gzip.count)) { try outer.write($0) }
/// try writer.write(gzip)
/// try writer.finish()
/// ```
public struct SecureTarBackupKey: Sendable {
    /// The SecureTar version archives are written in: Supervisor 2026.08 writes v3 when the installed Core
    /// is 2026.3.0 or newer, v2 otherwise.
    public enum Version: Int, Sendable, Hashable {
        case v2 = 2
        case v3 = 3
    }

    public let version: Version
    /// v3: the 64 bytes every archive header of the backup carries (root salt, validation salt, validation key).
    let rootParameters: [UInt8]
    /// v3: the Argon2id root key; v2: the AES-128 key.
    let secret: [UInt8]

    /// Derives the keys from the password, with fresh random salts.
    public init(password: String, version: Version = .v3) {
        self.init(password: password, version: version, rootSalt: Self.random(16), validationSalt: Self.random(16))
    }

    /// Derives the keys with the given salts (tests reproduce a fixture's bytes with them).
    init(password: String, version: Version, rootSalt: [UInt8], validationSalt: [UInt8]) {
        precondition(rootSalt.count == 16 && validationSalt.count == 16)
        self.version = version
        switch version {
        case .v2:
            secret = SecureTarKeys.aesKey(password: password)
            rootParameters = []
        case .v3:
            let rootKey = SecureTarKeys.v3RootKey(password: password, rootSalt: rootSalt)
            secret = rootKey
            rootParameters = rootSalt + validationSalt + SecureTarKeys.v3Subkey(rootKey: rootKey, salt: validationSalt)
        }
    }

    static func random(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}

/// Why ``SecureTarWriter`` refused to go on.
public struct SecureTarWriteError: Error, Sendable, Hashable, CustomStringConvertible {
    public let detail: String
    public var description: String { "SecureTar: \(detail)" }
}

/// Encrypts one inner archive (its gzip stream, or its tar when the backup is uncompressed) as securetar
/// 2026.4.1 writes it, pushing the entry's bytes to a sink: the header, then
/// - v3: `crypto_secretstream_xchacha20poly1305` with the archive's file key (BLAKE2b of the root key and
///   a fresh derivation salt) and a fresh stream header, in 1 MiB chunks (+17 bytes each), MESSAGE tags
///   and FINAL on the last (an empty plaintext still gets one FINAL chunk);
/// - v2: AES-128-CBC with PKCS#7, IV from the key and a fresh salt.
///
/// The header records the plaintext size, so it is given up front and the bytes written must come to
/// exactly that. The entry's size is ``entrySize(plaintextSize:version:)`` (what the outer tar header needs
/// before the data). Memory: one chunk.
public final class SecureTarWriter {
    public typealias Sink = ([UInt8]) throws -> Void

    private let sink: Sink
    private let plaintextSize: Int64
    private var plaintextWritten: Int64 = 0
    private var finished = false
    private let cipher: Cipher
    /// Bytes of the entry given to the sink so far, header included.
    public private(set) var bytesWritten: Int64 = 0

    private enum Cipher {
        case secretStream(SecretStreamBox)
        case aes(AESCBC)
    }

    /// The v3 stream and the chunk being filled.
    private final class SecretStreamBox {
        var state: SecretStreamState
        let chunkCount: Int64
        var chunkIndex: Int64 = 0
        var pending: [UInt8] = []
        init(state: SecretStreamState, chunkCount: Int64) {
            self.state = state
            self.chunkCount = chunkCount
        }
    }

    /// The size of the tar entry that holds an archive of `plaintextSize` bytes (reference §4).
    public static func entrySize(plaintextSize: Int64, version: SecureTarBackupKey.Version) -> Int64 {
        switch version {
        case .v3: 136 + plaintextSize + SecureTarHeader.v3ChunkOverhead * max(1, (plaintextSize + SecureTarHeader.v3ChunkSize - 1) / SecureTarHeader.v3ChunkSize)
        case .v2: 48 + 16 * (plaintextSize / 16 + 1)
        }
    }

    /// Starts an archive and writes its header to `sink`.
    public convenience init(key: SecureTarBackupKey, plaintextSize: Int64, sink: @escaping Sink) throws {
        switch key.version {
        case .v3:
            try self.init(key: key, plaintextSize: plaintextSize, salt: SecureTarBackupKey.random(16),
                          streamHeader: SecureTarBackupKey.random(SecretStreamState.headerSize), sink: sink)
        case .v2:
            try self.init(key: key, plaintextSize: plaintextSize, salt: SecureTarBackupKey.random(16), streamHeader: [], sink: sink)
        }
    }

    /// With the archive's own random values given: `salt` is v3's derivation salt or v2's IV salt.
    init(key: SecureTarBackupKey, plaintextSize: Int64, salt: [UInt8], streamHeader: [UInt8], sink: @escaping Sink) throws {
        precondition(plaintextSize >= 0 && salt.count == 16)
        self.sink = sink
        self.plaintextSize = plaintextSize
        var header = SecureTarHeader.magic + [UInt8(key.version.rawValue)] + [UInt8](repeating: 0, count: 6)
        header += (0..<8).reversed().map { UInt8(truncatingIfNeeded: plaintextSize >> (8 * $0)) }
        header += [UInt8](repeating: 0, count: 8)
        switch key.version {
        case .v3:
            precondition(streamHeader.count == SecretStreamState.headerSize)
            header += key.rootParameters + salt + streamHeader
            let fileKey = SecureTarKeys.v3Subkey(rootKey: key.secret, salt: salt)
            let chunkCount = max(1, (plaintextSize + SecureTarHeader.v3ChunkSize - 1) / SecureTarHeader.v3ChunkSize)
            cipher = .secretStream(SecretStreamBox(state: SecretStreamState(key: fileKey, header: streamHeader), chunkCount: chunkCount))
        case .v2:
            header += salt
            cipher = .aes(AESCBC(.encrypt, key: key.secret, iv: SecureTarKeys.aesIV(key: key.secret, salt: salt)))
        }
        try emit(header)
    }

    /// Encrypts the next plaintext bytes; whole chunks (v3) or blocks (v2) go to the sink as they fill.
    public func write(_ bytes: ArraySlice<UInt8>) throws {
        precondition(!finished, "SecureTarWriter written after finish")
        guard !bytes.isEmpty else { return }
        guard plaintextWritten + Int64(bytes.count) <= plaintextSize else {
            throw SecureTarWriteError(detail: "more than the \(plaintextSize) bytes of plaintext the header declares")
        }
        plaintextWritten += Int64(bytes.count)
        switch cipher {
        case .aes(let aes):
            try emit(try aes.update(bytes))
        case .secretStream(let stream):
            var input = bytes
            while !input.isEmpty {
                let take = min(chunkPlaintextSize(stream) - stream.pending.count, input.count)
                stream.pending += input.prefix(take)
                input = input.dropFirst(take)
                if stream.pending.count == chunkPlaintextSize(stream) { try sealChunk(stream) }
            }
        }
    }

    public func write(_ bytes: [UInt8]) throws { try write(bytes[...]) }

    /// Writes what is left (v2: the padded last block; v3: an empty FINAL chunk for an empty plaintext).
    /// - Throws: ``SecureTarWriteError`` when fewer bytes came than the header declares.
    public func finish() throws {
        precondition(!finished, "SecureTarWriter finished twice")
        finished = true
        guard plaintextWritten == plaintextSize else {
            throw SecureTarWriteError(detail: "\(plaintextWritten) bytes of plaintext written, but the header declares \(plaintextSize)")
        }
        switch cipher {
        case .aes(let aes):
            try emit(try aes.finalize())
        case .secretStream(let stream):
            if stream.chunkIndex < stream.chunkCount { try sealChunk(stream) } // only an empty plaintext's one chunk is left
        }
    }

    private func chunkPlaintextSize(_ stream: SecretStreamBox) -> Int {
        let isLast = stream.chunkIndex == stream.chunkCount - 1
        return Int(isLast ? plaintextSize - (stream.chunkCount - 1) * SecureTarHeader.v3ChunkSize : SecureTarHeader.v3ChunkSize)
    }

    private func sealChunk(_ stream: SecretStreamBox) throws {
        let isLast = stream.chunkIndex == stream.chunkCount - 1
        let sealed = stream.state.push(stream.pending[...], tag: isLast ? SecretStreamState.tagFinal : SecretStreamState.tagMessage)
        stream.chunkIndex += 1
        stream.pending.removeAll(keepingCapacity: true)
        try emit(sealed)
    }

    private func emit(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        bytesWritten += Int64(bytes.count)
        try sink(bytes)
    }
}

@available(*, unavailable)
extension SecureTarWriter: Sendable {}

/// The Supervisor's password check before a restore (`Backup.validate_backup`): securetar opens the
/// backup's first inner archive with the password and reads its start.
public enum SecureTarPassword {
    /// Bytes of an inner archive the check looks at: a v3 header is 136, a tar's `ustar` magic sits at 257.
    public static let headSize = 512

    /// Whether `password` opens the inner archive that starts with `head` (its first ``headSize`` bytes,
    /// or all of it when shorter): v3 by the validation key in its header (one Argon2id), v2 by the first
    /// decrypted block being gzip or tar, and an archive without the SecureTar magic as v1 (a 16-byte
    /// salt, then AES) the same way, so a plain gzip archive in a backup that claims protection fails as
    /// it does in the Supervisor.
    public static func opens(archiveHead head: [UInt8], password: String) -> Bool {
        let keys = PasswordKeys(password: password)
        switch SecureTarHeader.parse(head) {
        case .success(let header)?:
            if header.version == 3 { return keys.v3FileKey(for: header) != nil }
            return keys.aesFirstBlockLooksRight(salt: header.salt, ciphertext: head[header.size...])
        case .failure?:
            return false
        case nil:
            guard head.count >= 32 else { return false }
            return keys.aesFirstBlockLooksRight(salt: Array(head[0..<16]), ciphertext: head[16...])
        }
    }

    /// Whether an inner archive starting with `head` is stored in the clear (gzip, or a tar when the backup is
    /// uncompressed): what the Supervisor reads without a password.
    public static func isPlaintext(archiveHead head: [UInt8]) -> Bool { PlainArchiveCheck.looksLikeGzipOrTar(head) }
}
