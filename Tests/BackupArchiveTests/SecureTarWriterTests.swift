@testable import BackupArchive
import Compression
import Foundation
import Testing

/// The encrypting side of SecureTar: it reproduces securetar's own bytes given the same random values,
/// round-trips through the decryptors, and writes backups the verifier accepts with the password only.
/// Argon2id takes about two seconds in a debug build, so the v3 keys are derived once and shared.
@Suite struct SecureTarWriterTests {
    static let password = "writer-password-1"
    /// One Argon2id for every v3 test that does not need a fixture's salts.
    static let v3Key = SecureTarBackupKey(password: password, version: .v3)
    static let v2Key = SecureTarBackupKey(password: password, version: .v2)

    static func encrypt(_ plaintext: [UInt8], key: SecureTarBackupKey, pieceSize: Int = 1 << 20) throws -> [UInt8] {
        var entry: [UInt8] = []
        let writer = try SecureTarWriter(key: key, plaintextSize: Int64(plaintext.count)) { entry += $0 }
        for start in stride(from: 0, to: plaintext.count, by: pieceSize) { try writer.write(plaintext[start..<min(plaintext.count, start + pieceSize)]) }
        try writer.finish()
        #expect(writer.bytesWritten == Int64(entry.count))
        return entry
    }

    /// Decrypts an entry the way the verifier does, with the keys derived from `key`'s secret.
    static func decrypt(_ entry: [UInt8], key: SecureTarBackupKey) throws -> [UInt8] {
        let header = try #require(SecureTarHeader.parse(entry)).get()
        #expect(header.expectedEntrySize == Int64(entry.count))
        let decryptor: any SecureTarDecryptor = header.version == 3
            ? SecretStreamDecryptor(fileKey: SecureTarKeys.v3Subkey(rootKey: key.secret, salt: header.derivationSalt), header: header.streamHeader,
                                    plaintextSize: header.plaintextSize, chunkCount: header.chunkCount)
            : AESCBCDecryptor(key: key.secret, iv: SecureTarKeys.aesIV(key: key.secret, salt: header.salt))
        var plain: [UInt8] = []
        try decryptor.push(entry[header.size...]) { plain += $0 }
        try decryptor.finish { plain += $0 }
        #expect(Int64(plain.count) == header.plaintextSize)
        return plain
    }

    static func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 9) } }

    /// Given the fixture's salts and stream headers, the writer produces every archive of the fixtures
    /// byte for byte: the secretstream (tags, MACs, chunking, nonce evolution) and v2's AES-CBC and IV are
    /// securetar's.
    @Test(.enabled(if: LocalBackupIndexTests.fixturesAvailable, "../shared/fixtures/backups is not beside this checkout"),
          arguments: ["full-protected.tar", "partial-protected-v2.tar"])
    func reproducesTheFixturesArchives(file: String) throws {
        let archives = try members(of: LocalBackupIndexTests.fixtures.appendingPathComponent(file)).filter { $0.entry.normalizedName != "backup.json" }
        #expect(archives.count == (file == "full-protected.tar" ? 8 : 2))
        let first = try #require(SecureTarHeader.parse(archives[0].data)).get()
        let key = SecureTarBackupKey(password: BackupVerifierTests.right, version: first.version == 3 ? .v3 : .v2,
                                     rootSalt: first.rootSalt, validationSalt: first.version == 3 ? first.validationSalt : first.salt)
        if first.version == 3 { #expect(key.rootParameters[...] == first.rootParameters) }
        for (entry, data) in archives {
            let header = try #require(SecureTarHeader.parse(data)).get()
            let plaintext = try Self.decrypt(data, key: key)
            #expect(plaintext.starts(with: [0x1F, 0x8B, 0x08]), "\(entry.name)")
            var written: [UInt8] = []
            let writer = try SecureTarWriter(key: key, plaintextSize: Int64(plaintext.count), salt: header.version == 3 ? header.derivationSalt : header.salt,
                                             streamHeader: header.version == 3 ? header.streamHeader : []) { written += $0 }
            try writer.write(plaintext)
            try writer.finish()
            #expect(written == data, "\(entry.name)")
            #expect(SecureTarWriter.entrySize(plaintextSize: Int64(plaintext.count), version: key.version) == entry.size)
        }
    }

    /// Chunk boundaries: empty, one byte, exactly one chunk, one byte more, several chunks; written in one
    /// piece and in odd pieces; each decrypts to the plaintext and has the size the reference gives.
    @Test(arguments: [0, 1, 16, 1 << 20, (1 << 20) + 1, (5 << 19) + 7])
    func v3RoundTrips(size: Int) throws {
        let plaintext = Self.pattern(size)
        for pieces in [1 << 20, 65_537] {
            let entry = try Self.encrypt(plaintext, key: Self.v3Key, pieceSize: pieces)
            #expect(Int64(entry.count) == SecureTarWriter.entrySize(plaintextSize: Int64(size), version: .v3))
            #expect(Int64(entry.count) == 136 + Int64(size) + 17 * Int64(max(1, (size + (1 << 20) - 1) >> 20)))
            #expect(try Self.decrypt(entry, key: Self.v3Key) == plaintext)
            #expect(Array(entry[32..<96]) == Self.v3Key.rootParameters)
        }
        // Fresh derivation salt and stream header for every archive.
        let twice = try (Self.encrypt(plaintext, key: Self.v3Key), Self.encrypt(plaintext, key: Self.v3Key))
        #expect(twice.0[96..<136] != twice.1[96..<136])
    }

    @Test(arguments: [0, 1, 15, 16, 17, 100_000])
    func v2RoundTrips(size: Int) throws {
        let plaintext = Self.pattern(size)
        let entry = try Self.encrypt(plaintext, key: Self.v2Key, pieceSize: 4099)
        #expect(Int64(entry.count) == SecureTarWriter.entrySize(plaintextSize: Int64(size), version: .v2))
        #expect(entry.count == 48 + 16 * (size / 16 + 1))
        #expect(try Self.decrypt(entry, key: Self.v2Key) == plaintext)
    }

    /// The header's plaintext size is a promise: more bytes are refused at once, fewer at the end.
    @Test func thePlaintextSizeIsEnforced() throws {
        for key in [Self.v2Key, Self.v3Key] {
            let long = try SecureTarWriter(key: key, plaintextSize: 10) { _ in }
            try long.write(Self.pattern(10))
            #expect(throws: SecureTarWriteError.self) { try long.write([1]) }
            let short = try SecureTarWriter(key: key, plaintextSize: 10) { _ in }
            try short.write(Self.pattern(9))
            #expect(throws: SecureTarWriteError.self) { try short.finish() }
        }
    }

    /// The password check the Supervisor simulator runs before restoring a backup it did not make.
    @Test(.enabled(if: LocalBackupIndexTests.fixturesAvailable, "../shared/fixtures/backups is not beside this checkout"))
    func passwordCheckOnArchiveHeads() throws {
        func head(_ file: String) throws -> [UInt8] {
            Array(try #require(members(of: LocalBackupIndexTests.fixtures.appendingPathComponent(file)).first).data.prefix(SecureTarPassword.headSize))
        }
        let v3 = try Self.encrypt(Self.pattern(3000), key: Self.v3Key)
        #expect(SecureTarPassword.opens(archiveHead: Array(v3.prefix(512)), password: Self.password))
        #expect(!SecureTarPassword.opens(archiveHead: Array(v3.prefix(512)), password: "writer-password-2"))
        #expect(!SecureTarPassword.isPlaintext(archiveHead: Array(v3.prefix(512))))
        let v2 = try head("partial-protected-v2.tar")
        #expect(SecureTarPassword.opens(archiveHead: v2, password: BackupVerifierTests.right))
        #expect(!SecureTarPassword.opens(archiveHead: v2, password: BackupVerifierTests.wrong))
        // Plain gzip in a backup that claims protection: taken as v1, and the password does not open it.
        let lying = try head("lying-protected.tar")
        #expect(SecureTarPassword.isPlaintext(archiveHead: lying))
        #expect(!SecureTarPassword.opens(archiveHead: lying, password: BackupVerifierTests.right))
    }

    /// A whole backup written with the writer, every archive under one key: restorable with the password
    /// (MACs, gzip and inner tars checked). A wrong one is rejected by the validation key (the fixtures'
    /// verdicts and the simulator's protected backups show it; one Argon2id less here).
    @Test func aWrittenBackupVerifiesWithThePassword() async throws {
        var inner: [UInt8] = []
        let tar = TarWriter { inner += $0 }
        try tar.add(TarEntry(name: "./", kind: .directory, mode: 0o700))
        try tar.add(TarEntry(name: "./addon.json", size: 2), contents: Array("{}".utf8))
        try tar.finish()
        let gzip = try Deflater(format: .gzip, level: 9)
        let compressed = try gzip.compress(inner) + gzip.finish()
        var file: [UInt8] = []
        let outer = TarWriter { file += $0 }
        for name in ["homeassistant.tar.gz", "core_mosquitto.tar.gz"] {
            try outer.begin(TarEntry(name: name, size: SecureTarWriter.entrySize(plaintextSize: Int64(compressed.count), version: .v3), mode: 0o644))
            let writer = try SecureTarWriter(key: Self.v3Key, plaintextSize: Int64(compressed.count)) { try outer.write($0) }
            try writer.write(compressed)
            try writer.finish()
            try outer.end()
        }
        let json = #"{"slug":"0123abcd","version":2,"name":"Written","date":"2026-09-14T03:00:04.512873+00:00","type":"partial","#
            + #""supervisor_version":"2026.08.0","compressed":true,"protected":true,"homeassistant":{"version":"2026.9.2","exclude_database":false,"size":0.0},"#
            + #""folders":[],"addons":[{"slug":"core_mosquitto","name":"Mosquitto broker","version":"6.5.1","size":0.0}],"repositories":[],"extra":{}}"#
        try outer.add(TarEntry(name: "./backup.json", size: Int64(json.utf8.count)), contents: Array(json.utf8))
        try outer.finish()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("securetar-writer-\(UUID().uuidString).tar")
        try Data(file).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let right = await BackupVerifier.verify(try FileByteSource(path: path.path), mode: .full, password: Self.password)
        #expect(right.verdict == .restorable, "\(right.problems)")
        #expect(right.archives.allSatisfy { $0.format == "securetar-v3" && $0.ok })
    }
}
