import B2Simulator
import Foundation
import Testing

/// API version v1, as rclone 1.60 speaks it: the flat authorize shape plus `minimumPartSize`, and
/// `size` instead of `contentLength` in listings.
@Suite(.timeLimit(.minutes(1)))
struct VersionOneTests {
    @Test func v1AuthorizeIsFlatWithTheDeprecatedMinimumPartSize() async throws {
        try await withSimulator { harness in
            let reply = try await harness.authorizeReply("bucket-key-id", "bucket-key", version: "v1")
            #expect(reply.status == 200)
            #expect(reply.json["apiInfo"] == nil)
            #expect(reply.string("accountId") == "5a9e1c0b7f3d")
            #expect(reply.string("authorizationToken")?.isEmpty == false)
            #expect(reply.string("apiUrl") == harness.simulator.apiURL)
            #expect(reply.string("downloadUrl") == harness.simulator.downloadURL)
            #expect(reply.json["s3ApiUrl"] is String)
            #expect(reply.json["recommendedPartSize"] as? Int == 5000)
            #expect(reply.json["minimumPartSize"] as? Int == 5000)
            #expect(reply.json["absoluteMinimumPartSize"] as? Int == 1000)
            let allowed = try #require(reply.json["allowed"] as? [String: Any])
            #expect(allowed["bucketName"] as? String == "ha-backups")
            #expect((allowed["bucketId"] as? String)?.count == 24)
            #expect(allowed["namePrefix"] is NSNull)
            #expect(allowed["capabilities"] as? [String] == B2Simulator.Account.bucketKeyCapabilities)

            // v2 has no minimumPartSize.
            let v2 = try await harness.authorizeReply("bucket-key-id", "bucket-key", version: "v2")
            #expect(v2.json["minimumPartSize"] == nil)
            #expect(v2.json["recommendedPartSize"] as? Int == 5000)
        }
    }

    @Test func v1ListingsSaySizeAndV1UploadURLsWork() async throws {
        try await withSimulator { harness in
            let flat = try await harness.authorizeReply(version: "v1")
            let session = Session(token: try #require(flat.string("authorizationToken")), apiURL: try #require(flat.string("apiUrl")),
                                  downloadURL: try #require(flat.string("downloadUrl")), accountID: try #require(flat.string("accountId")))
            let bucketID = try await harness.bucketID(session)
            let urlReply = try await harness.call(session, "b2_get_upload_url", ["bucketId": bucketID], version: "v1")
            let target = UploadURL(url: try #require(urlReply.json["uploadUrl"] as? String),
                                   token: try #require(urlReply.json["authorizationToken"] as? String))
            #expect(target.url.contains("/b2api/v1/b2_upload_file/"))
            let upload = try await harness.upload(to: target, encodedName: "a.tar", bytes(1234))
            #expect(upload.status == 200)
            #expect(upload.json["contentLength"] as? Int == 1234) // the upload answer said contentLength in v1 too

            for operation in ["b2_list_file_names", "b2_list_file_versions"] {
                let listed = try await harness.call(session, operation, ["bucketId": bucketID], version: "v1")
                #expect(listed.status == 200)
                let files = try #require(listed.json["files"] as? [[String: Any]])
                #expect(files.count == 1)
                #expect(files.first?["size"] as? Int == 1234)
                #expect(files.first?["contentLength"] == nil)
                #expect(files.first?["fileName"] as? String == "a.tar")
                // v2 and later say contentLength.
                let v2 = try await harness.call(session, operation, ["bucketId": bucketID], version: "v2")
                #expect((v2.json["files"] as? [[String: Any]])?.first?["contentLength"] as? Int == 1234)
            }

            let started = try await harness.call(session, "b2_start_large_file", ["bucketId": bucketID, "fileName": "big.tar", "contentType": "b2/x-auto"],
                                                 version: "v1")
            #expect(started.status == 200)
            #expect(started.string("fileId")?.isEmpty == false)
            #expect(started.string("fileName") == "big.tar")
            #expect(started.json["action"] == nil && started.json["contentLength"] == nil && started.json["contentSha1"] == nil)
        }
    }
}
