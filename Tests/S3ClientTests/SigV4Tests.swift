import Foundation
import S3Client
import MotoSupport
import Testing

/// AWS's SigV4 test suite ("get-vanilla", "get-vanilla-query-order-key") and an S3-style request; all
/// values cross-checked with botocore 1.x (`SigV4Auth` / `S3SigV4Auth` with the clock fixed).
@Suite struct SigV4Tests {
    static let date = Date(timeIntervalSince1970: 1_440_938_160) // 2015-08-30T12:36:00Z
    static let suite = SigV4Signer(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                   region: "us-east-1", service: "service")
    static let emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    private func sign(_ signer: SigV4Signer = suite, method: String = "GET", path: String = "/", query: [(name: String, value: String)] = [],
                      host: String = "example.amazonaws.com", extra: [(name: String, value: String)] = [], payload: String = emptyHash) -> String {
        signer.authorization(method: method, encodedPath: path, query: query,
                             headers: [("Host", host), ("X-Amz-Date", SigV4Signer.amzDate(Self.date))] + extra, payloadHash: payload, date: Self.date)
    }

    @Test func amzDate() {
        #expect(SigV4Signer.amzDate(Self.date) == "20150830T123600Z")
    }

    @Test func getVanilla() {
        #expect(sign() == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    @Test func getVanillaQueryOrderKey() {
        #expect(sign(query: [("Param2", "value2"), ("Param1", "value1")]).hasSuffix("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"))
    }

    @Test func valuelessKeyAndEncodedValue() {
        // `?uploads&b=c%20d`: the valueless key is signed as `uploads=`.
        #expect(SigV4Signer.canonicalQuery([("uploads", ""), ("b", "c d")]) == "b=c%20d&uploads=")
        #expect(sign(query: [("uploads", ""), ("b", "c d")]).hasSuffix("Signature=31d7741776e6c0b8c9e7cbbefa952d39155864d72ff80f521da6785214424695"))
    }

    @Test func s3StylePut() {
        // PUT http://127.0.0.1:9000/bucket/a%20b/c.tar?partNumber=2&uploadId=xyz with body "hello".
        let signer = SigV4Signer(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region: "us-east-1")
        let hash = SigV4Signer.sha256Hex(Array("hello".utf8))
        let value = sign(signer, method: "PUT", path: "/bucket/" + SigV4Signer.encode("a b/c.tar", keepSlash: true),
                         query: [("partNumber", "2"), ("uploadId", "xyz")], host: "127.0.0.1:9000",
                         extra: [("x-amz-content-sha256", hash)], payload: hash)
        #expect(value == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=1a03c493312cae318bbaa6d0fe1550a86b20c7929ee393ef921cbb9a6c9d9377")
    }

    @Test func secretNeverDescribed() {
        #expect(!"\(Self.suite)".contains("wJalr"))
    }
}
