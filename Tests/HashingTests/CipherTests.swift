import Hashing
import Testing

/// The ciphers against published vectors: RFC 8439 (ChaCha20, Poly1305, and the AEAD built from both the
/// way libsodium's secretstream uses them) and NIST SP 800-38A (AES-128-CBC).
@Suite struct CipherTests {
    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.utf8).filter { $0 != UInt8(ascii: " ") }
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
    }

    static let sunscreen = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)

    /// RFC 8439 §2.3.2: the block function (key 00…1f, counter 1).
    @Test func chacha20BlockMatchesRFC8439() {
        let stream = ChaCha20(key: Array(0..<32), nonce: Self.bytes("000000090000004a00000000"), counter: 1)
        #expect(Hex.encode(stream.keystream(64)) == "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
            + "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")
    }

    /// RFC 8439 §2.4.2: encryption from counter 1, in one call and in odd pieces (the keystream continues).
    @Test func chacha20EncryptionMatchesRFC8439() {
        let key: [UInt8] = Array(0..<32)
        let nonce = Self.bytes("000000000000004a00000000")
        let expected = "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd62b357"
            + "1639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
            + "5af90bbf74a35be6b40b8eedf2785e42874d"
        #expect(Hex.encode(ChaCha20.xor(Self.sunscreen, key: key, nonce: nonce, counter: 1)) == expected)
        let pieces = ChaCha20(key: key, nonce: nonce, counter: 1)
        var output: [UInt8] = []
        var offset = 0
        for size in [1, 63, 3, 64, 100] where offset < Self.sunscreen.count {
            let end = min(Self.sunscreen.count, offset + size)
            output += pieces.xor(Self.sunscreen[offset..<end])
            offset = end
        }
        #expect(Hex.encode(output) == expected)
        // XOR twice gives the plaintext back.
        #expect(ChaCha20.xor(Self.bytes(expected), key: key, nonce: nonce, counter: 1) == Self.sunscreen)
    }

    /// RFC 8439 §2.6.2: the Poly1305 key is the first 32 bytes of block 0.
    @Test func poly1305KeyGenerationMatchesRFC8439() {
        let stream = ChaCha20(key: Array(0x80...0x9F), nonce: Self.bytes("000000000001020304050607"))
        #expect(Hex.encode(stream.keystream(32)) == "8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646")
    }

    /// RFC 8439 §2.5.2, whole and in pieces.
    @Test func poly1305MatchesRFC8439() {
        let key = Self.bytes("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
        let message = Array("Cryptographic Forum Research Group".utf8)
        #expect(Hex.encode(Poly1305.tag(message, key: key)) == "a8061dc1305136c6c22b8baf0c0127a9")
        let mac = Poly1305(key: key)
        mac.update(message[0..<5])
        mac.update([])
        mac.update(message[5...])
        #expect(Hex.encode(mac.finalize()) == "a8061dc1305136c6c22b8baf0c0127a9")
    }

    /// RFC 8439 §2.8.2: the ChaCha20-Poly1305 AEAD, put together from the two primitives.
    @Test func chachaPolyAEADMatchesRFC8439() {
        let key: [UInt8] = Array(0x80...0x9F)
        let nonce = Self.bytes("070000004041424344454647")
        let aad = Self.bytes("50515253c0c1c2c3c4c5c6c7")
        let ciphertext = ChaCha20.xor(Self.sunscreen, key: key, nonce: nonce, counter: 1)
        #expect(Hex.encode(ciphertext) == "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
            + "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
            + "3ff4def08e4b7a9de576d26586cec64b6116")
        func pad16(_ count: Int) -> [UInt8] { [UInt8](repeating: 0, count: (16 - count % 16) % 16) }
        func le64(_ value: Int) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        let mac = Poly1305(key: ChaCha20(key: key, nonce: nonce).keystream(32))
        for part in [aad, pad16(aad.count), ciphertext, pad16(ciphertext.count), le64(aad.count), le64(ciphertext.count)] { mac.update(part) }
        #expect(Hex.encode(mac.finalize()) == "1ae10b594f09e26a7e902ecbd0600691")
    }

    static let nistKey = bytes("2b7e151628aed2a6abf7158809cf4f3c")
    static let nistIV = bytes("000102030405060708090a0b0c0d0e0f")
    static let nistPlaintext = bytes("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"
        + "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710")
    static let nistCiphertext = bytes("7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2"
        + "73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7")

    /// NIST SP 800-38A F.2.1 and F.2.2 (CBC-AES128), without padding, whole and in pieces.
    @Test func aes128CBCMatchesNIST() throws {
        let encrypt = AESCBC(.encrypt, key: Self.nistKey, iv: Self.nistIV, padding: false)
        #expect(try encrypt.update(Self.nistPlaintext) + encrypt.finalize() == Self.nistCiphertext)
        let decrypt = AESCBC(.decrypt, key: Self.nistKey, iv: Self.nistIV, padding: false)
        var plain: [UInt8] = []
        for range in [0..<5, 5..<16, 16..<17, 17..<64] { plain += try decrypt.update(Self.nistCiphertext[range]) }
        plain += try decrypt.finalize()
        #expect(plain == Self.nistPlaintext)
        // Without padding, input that is not whole blocks is refused at the end.
        let ragged = AESCBC(.encrypt, key: Self.nistKey, iv: Self.nistIV, padding: false)
        _ = try ragged.update(Array(Self.nistPlaintext[0..<20]))
        #expect(throws: CipherError.self) { try ragged.finalize() }
    }

    /// PKCS#7: the NIST blocks come first, then a whole block of padding when the input is aligned; a
    /// short input is padded to its block; decryption removes it; a wrong key fails the padding check
    /// (or, rarely, yields garbage), never the plaintext.
    @Test func aesCBCPaddingRoundTrips() throws {
        let encrypt = AESCBC(.encrypt, key: Self.nistKey, iv: Self.nistIV)
        let ciphertext = try encrypt.update(Self.nistPlaintext) + encrypt.finalize()
        #expect(ciphertext.count == 80)
        #expect(Array(ciphertext[0..<64]) == Self.nistCiphertext)
        for length in [0, 1, 15, 16, 17, 1000] {
            let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let e = AESCBC(.encrypt, key: Self.nistKey, iv: Self.nistIV)
            let sealed = try e.update(message) + e.finalize()
            #expect(sealed.count == 16 * (length / 16 + 1))
            let d = AESCBC(.decrypt, key: Self.nistKey, iv: Self.nistIV)
            #expect(try d.update(sealed) + d.finalize() == message)
        }
        let wrong = AESCBC(.decrypt, key: [UInt8](repeating: 1, count: 16), iv: Self.nistIV)
        let opened = try? wrong.update(ciphertext) + wrong.finalize()
        #expect(opened != Self.nistPlaintext)
        // A cut ciphertext is not whole blocks: the padding check fails.
        let cut = AESCBC(.decrypt, key: Self.nistKey, iv: Self.nistIV)
        _ = try cut.update(Array(ciphertext[0..<70]))
        #expect(throws: CipherError.self) { try cut.finalize() }
    }

    /// NIST SP 800-38A F.2.5 (CBC-AES256): the key length picks the variant.
    @Test func aes256CBCMatchesNIST() throws {
        let key = Self.bytes("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
        let encrypt = AESCBC(.encrypt, key: key, iv: Self.nistIV, padding: false)
        #expect(Hex.encode(try encrypt.update(Array(Self.nistPlaintext[0..<16])) + encrypt.finalize()) == "f58c4c04d6e5f1ba779eabfb5f7bfbd6")
    }
}
