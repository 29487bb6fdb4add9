import Compression
import Testing

@Suite struct CompressionTests {
    @Test(arguments: [0, 1, 100, 64 * 1024, 300_000])
    func gzipRoundTrip(size: Int) throws {
        var generator = SystemRandomNumberGenerator()
        // Half random, half repetitive: exercises both stored and compressed blocks.
        let input = (0..<size).map { $0 % 2 == 0 ? UInt8.random(in: 0...255, using: &generator) : UInt8($0 % 7) }
        let compressed = try Gzip.compress(input)
        #expect(compressed.starts(with: [0x1f, 0x8b]))
        #expect(try Gzip.decompress(compressed) == input)
    }

    @Test func streamingInflateAcrossTinyChunks() throws {
        let input = Array(String(repeating: "home assistant backup ", count: 5000).utf8)
        let compressed = try Gzip.compress(input)
        let inflater = try Inflater()
        var output: [UInt8] = []
        for start in stride(from: 0, to: compressed.count, by: 7) {
            try inflater.decompress(Array(compressed[start..<min(start + 7, compressed.count)])) { output += $0 }
        }
        try inflater.finish()
        #expect(output == input)
    }

    @Test func corruptCRCIsReported() throws {
        var compressed = try Gzip.compress(Array("hello world".utf8))
        compressed[compressed.count - 6] ^= 0xff // inside the CRC-32 trailer
        #expect { try Gzip.decompress(compressed) } throws: { error in
            (error as? CompressionError)?.code == .corruptData
        }
    }

    @Test func truncatedStreamIsReported() throws {
        let compressed = try Gzip.compress(Array(repeating: 42, count: 10_000))
        #expect { try Gzip.decompress(Array(compressed.dropLast(5))) } throws: { error in
            (error as? CompressionError)?.code == .truncated
        }
    }

    @Test func crc32MatchesKnownValue() {
        // The classic check value of CRC-32/ISO-HDLC.
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        var running = CRC32()
        running.update(Array("12345".utf8))
        running.update(Array("6789".utf8))
        #expect(running.value == 0xCBF4_3926)
    }
}
