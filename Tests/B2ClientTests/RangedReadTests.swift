import B2Client
import B2Simulator
import Foundation
import Testing

/// `B2Client.read`: byte ranges in memory, across the parts of a large file.
@Suite(.timeLimit(.minutes(1)))
struct RangedReadTests {
    @Test(arguments: [0...99, 999_900...1_000_099, 2_100_000...2_200_000, 2_499_000...2_499_999])
    func rangesOfALargeFileComeBackExactly(range: ClosedRange<Int64>) async throws {
        try await withSimulator { _, client, directory in
            let source = directory.path("large.tar")
            try writeRandomFile(source, size: 2_500_000, seed: 7)
            let bucket = try await client.bucket(named: bucketName)
            let engine = UploadEngine(client: client, journal: nil, logger: quietLogger)
            let result = try await engine.upload(path: source, bucket: bucket, fileName: "homeassistant/large.tar")
            #expect(result.partCount == 3)
            let bytes = try await client.read(.name(bucket: bucketName, fileName: "homeassistant/large.tar"), range: range)
            let expected = try Data(contentsOf: URL(fileURLWithPath: source))[Int(range.lowerBound)...Int(range.upperBound)]
            #expect(bytes == Array(expected))
        }
    }
}
