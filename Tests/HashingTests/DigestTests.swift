import Hashing
import Testing

@Suite struct DigestTests {
    /// FIPS 180 test vectors.
    @Test(arguments: [
        ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
    ])
    func sha1Vectors(input: String, expected: String) {
        #expect(StreamingDigest.sha1Hex(Array(input.utf8)) == expected)
    }

    @Test func sha256Vector() {
        let digest = StreamingDigest(.sha256)
        digest.update(Array("abc".utf8))
        #expect(digest.hexDigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    /// RFC 1321 test vectors.
    @Test(arguments: [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("12345678901234567890123456789012345678901234567890123456789012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a"),
    ])
    func md5Vectors(input: String, expected: String) {
        let digest = StreamingDigest(.md5)
        digest.update(Array(input.utf8))
        #expect(digest.hexDigest() == expected)
    }

    @Test func chunkedEqualsWhole() {
        let data = (0..<1_000_003).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let chunked = StreamingDigest(.sha1)
        var offset = 0
        for size in [1, 7, 64, 4096, 100_000] + Array(repeating: 300_000, count: 4) where offset < data.count {
            let end = min(data.count, offset + size)
            chunked.update(Array(data[offset..<end]))
            offset = end
        }
        #expect(chunked.hexDigest() == StreamingDigest.sha1Hex(data))
    }

    @Test func hexHelpers() {
        #expect(Hex.encode([0x00, 0xab, 0xff]) == "00abff")
        #expect(Hex.isSHA1("a9993e364706816aba3e25717850c26c9cd0d89d"))
        #expect(!Hex.isSHA1("none"))
        #expect(!Hex.isSHA1("g9993e364706816aba3e25717850c26c9cd0d89d"))
    }
}
