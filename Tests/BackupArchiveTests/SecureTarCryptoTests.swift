@testable import BackupArchive
import Foundation
import Testing

/// The primitives SecureTar v3 needs that are written out in Swift, against published test vectors, and
/// the push-style tar parser against ``TarReader``.
@Suite struct SecureTarCryptoTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
    }

    @Test func blake2bMatchesRFC7693AndPython() {
        // RFC 7693 Appendix A.
        #expect(Self.hex(Blake2b.hash(Array("abc".utf8))) == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
            + "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923")
        // Python: hashlib.blake2b(b'', digest_size=32, key=bytes([7])*32, salt=bytes([1])*16, person=b'SecureTarv3')
        #expect(Self.hex(Blake2b.hash([], outputLength: 32, key: [UInt8](repeating: 7, count: 32), salt: [UInt8](repeating: 1, count: 16),
                                      personal: Array("SecureTarv3".utf8))) == "ea633a7219f087fccb5f51bb4867a74ec617ca4c47204a61a117821396ad7d91")
        // Python: hashlib.blake2b(bytes([5])*300, digest_size=32, key=bytes([7])*32) — several blocks after the key block.
        #expect(Self.hex(Blake2b.hash([UInt8](repeating: 5, count: 300), outputLength: 32, key: [UInt8](repeating: 7, count: 32)))
            == "a4cab4d57e2391a7382db968ab0dc7f313a9f19044155620229831ac3a55166e")
    }

    /// RFC 9106 §5.3 (Argon2id, 4 lanes, with secret and associated data).
    @Test func argon2idMatchesRFC9106() {
        let tag = Argon2id.hash(password: [UInt8](repeating: 1, count: 32), salt: [UInt8](repeating: 2, count: 16), iterations: 3,
                                memoryKiB: 32, lanes: 4, secret: [UInt8](repeating: 3, count: 8), associatedData: [UInt8](repeating: 4, count: 12))
        #expect(Self.hex(tag) == "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659")
    }

    /// draft-irtf-cfrg-xchacha-03 §2.2.1.
    @Test func hchacha20MatchesTheXChaChaDraft() {
        let key = Self.bytes("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
        let nonce = Self.bytes("000000090000004a0000000031415927")
        #expect(Self.hex(HChaCha20.derive(key: key, input: nonce)) == "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
    }

    @Test func secureTarSizeEquations() throws {
        func header(version: UInt8, plaintext: Int64) throws -> SecureTarHeader {
            var bytes = Array("SecureTar".utf8) + [version] + [UInt8](repeating: 0, count: 6)
            bytes += (0..<8).reversed().map { UInt8(truncatingIfNeeded: plaintext >> (8 * $0)) } + [UInt8](repeating: 0, count: 112)
            return try #require(SecureTarHeader.parse(bytes)).get()
        }
        #expect(try header(version: 3, plaintext: 0).expectedEntrySize == 136 + 17)
        #expect(try header(version: 3, plaintext: 1 << 20).expectedEntrySize == 136 + (1 << 20) + 17)
        #expect(try header(version: 3, plaintext: (1 << 20) + 1).expectedEntrySize == 136 + (1 << 20) + 1 + 34)
        #expect(try header(version: 2, plaintext: 32).expectedEntrySize == 48 + 48)
        #expect(try header(version: 2, plaintext: 33).expectedEntrySize == 48 + 48)
        var reserved = Array("SecureTar".utf8) + [3, 0, 0, 1, 0, 0, 0] + [UInt8](repeating: 0, count: 120)
        #expect(throws: SecureTarFailure.self) { try SecureTarHeader.parse(reserved)?.get() }
        reserved[9] = 4
        #expect(throws: SecureTarFailure.self) { try SecureTarHeader.parse(reserved)?.get() }
    }

    /// Bytes pushed one at a time, or in odd pieces, give the same members as TarReader reading the file.
    @Test(.enabled(if: LocalBackupIndexTests.fixturesAvailable), arguments: [1, 7, 512, 4096])
    func pushParserAgreesWithTarReader(pieceSize: Int) throws {
        let bytes = [UInt8](try Data(contentsOf: LocalBackupIndexTests.fixtures.appendingPathComponent("full-plain.tar")))
        let expected = try members(TarReader(bytes: bytes))
        var parser = TarStreamParser()
        var seen: [(entry: TarEntry, data: [UInt8])] = []
        var ends = 0
        for start in stride(from: 0, to: bytes.count, by: pieceSize) {
            try parser.push(bytes[start..<min(bytes.count, start + pieceSize)]) { event in
                switch event {
                case .member(let entry): seen.append((entry, []))
                case .data(let data): seen[seen.count - 1].data += data
                case .memberEnd: ends += 1
                case .end: break
                }
            }
        }
        try parser.finish()
        #expect(parser.sawEndOfArchive)
        #expect(ends == expected.count)
        #expect(seen.map(\.entry) == expected.map(\.entry))
        #expect(seen.map(\.data) == expected.map(\.data))
    }
}
