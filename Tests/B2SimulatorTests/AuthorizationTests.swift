import B2Simulator
import Foundation
import HTTPClient
import Testing

/// `b2_authorize_account` shapes, key restrictions and the error envelope.
@Suite(.timeLimit(.minutes(1)))
struct AuthorizationTests {
    @Test func v3GroupsTheStorageAPIAndNamesTheRestrictedBucket() async throws {
        try await withSimulator { harness in
            let reply = try await harness.authorizeReply("bucket-key-id", "bucket-key", version: "v3")
            #expect(reply.status == 200)
            #expect(reply.string("accountId") == "5a9e1c0b7f3d")
            #expect(reply.string("authorizationToken")?.isEmpty == false)
            #expect(reply.json["allowed"] == nil)
            #expect(reply.json["applicationKeyExpirationTimestamp"] is NSNull)
            let storage = try #require((reply.json["apiInfo"] as? [String: Any])?["storageApi"] as? [String: Any])
            #expect(storage["apiUrl"] as? String == harness.simulator.realmURL)
            #expect(storage["downloadUrl"] as? String == harness.simulator.downloadURL)
            #expect(storage["downloadUrl"] as? String != storage["apiUrl"] as? String)
            #expect(storage["s3ApiUrl"] is String)
            #expect(storage["recommendedPartSize"] as? Int == 5000)
            #expect(storage["absoluteMinimumPartSize"] as? Int == 1000)
            #expect(storage["bucketName"] as? String == "ha-backups")
            #expect((storage["bucketId"] as? String)?.count == 24)
            #expect(storage["namePrefix"] is NSNull)
            #expect(storage["infoType"] as? String == "storageApi")
            #expect(storage["capabilities"] as? [String] == B2Simulator.Account.bucketKeyCapabilities)
            #expect(storage["allowed"] == nil)
        }
    }

    @Test func v4ListsAllowedBucketsOrNull() async throws {
        try await withSimulator { harness in
            let restricted = try await harness.authorizeReply("bucket-key-id", "bucket-key", version: "v4")
            let storage = try #require((restricted.json["apiInfo"] as? [String: Any])?["storageApi"] as? [String: Any])
            #expect(storage["bucketId"] == nil && storage["bucketName"] == nil)
            #expect(storage["infoType"] as? String == "storageApi")
            let allowed = try #require(storage["allowed"] as? [String: Any])
            let buckets = try #require(allowed["buckets"] as? [[String: Any]])
            #expect(buckets.count == 1)
            #expect(buckets.first?["name"] as? String == "ha-backups")
            #expect((buckets.first?["id"] as? String)?.count == 24)
            #expect(allowed["namePrefix"] is NSNull)
            #expect(allowed["capabilities"] as? [String] == B2Simulator.Account.bucketKeyCapabilities)

            let master = try await harness.authorizeReply(version: "v4")
            let masterAllowed = try #require(((master.json["apiInfo"] as? [String: Any])?["storageApi"] as? [String: Any])?["allowed"] as? [String: Any])
            #expect(masterAllowed["buckets"] is NSNull)

            let prefixed = try await harness.authorizeReply("prefix-key-id", "prefix-key", version: "v4")
            let prefixAllowed = try #require(((prefixed.json["apiInfo"] as? [String: Any])?["storageApi"] as? [String: Any])?["allowed"] as? [String: Any])
            #expect(prefixAllowed["namePrefix"] as? String == "homeassistant/")
        }
    }

    @Test func v2IsFlatWithAllowed() async throws {
        try await withSimulator { harness in
            let reply = try await harness.authorizeReply("bucket-key-id", "bucket-key", version: "v2")
            #expect(reply.status == 200)
            #expect(reply.string("apiUrl") == harness.simulator.apiURL)
            #expect(reply.string("downloadUrl") == harness.simulator.downloadURL)
            #expect((reply.json["allowed"] as? [String: Any])?["bucketName"] as? String == "ha-backups")
        }
    }

    @Test(arguments: [("master-key-id", "wrong"), ("no-such-key", "master-key"), ("", "")])
    func badCredentialsAre401Unauthorized(keyID: String, key: String) async throws {
        try await withSimulator { harness in
            let reply = try await harness.authorizeReply(keyID, key)
            #expect(reply.status == 401)
            #expect(reply.code == "unauthorized")
            #expect(reply.json["status"] as? Int == 401)
            #expect(reply.message?.isEmpty == false)
            #expect(reply.header("Content-Type")?.hasPrefix("application/json") == true)
        }
    }

    @Test func missingBasicHeaderIs401AndAuthorizeIsGETOnly() async throws {
        try await withSimulator { harness in
            let missing = try await harness.send("GET", "\(harness.simulator.realmURL)/b2api/v4/b2_authorize_account")
            #expect(missing.status == 401)
            #expect(missing.code == "unauthorized")
            let post = try await harness.send("POST", "\(harness.simulator.realmURL)/b2api/v4/b2_authorize_account", body: Array("{}".utf8))
            #expect(post.status == 405)
            #expect(post.code == "method_not_allowed")
        }
    }

    @Test func callsWithoutOrWithABadTokenAre401BadAuthToken() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let forged = Session(token: "4_forged_acct", apiURL: session.apiURL, downloadURL: session.downloadURL, accountID: session.accountID)
            let bad = try await harness.call(forged, "b2_list_buckets", ["accountId": session.accountID])
            #expect(bad.status == 401)
            #expect(bad.code == "bad_auth_token")
            let none = try await harness.send("POST", "\(session.apiURL)/b2api/v4/b2_list_buckets", body: Array("{}".utf8))
            #expect(none.status == 401)
            #expect(none.code == "bad_auth_token")
        }
    }

    @Test func restrictedKeyMustNameItsBucketInListBuckets() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize("bucket-key-id", "bucket-key")
            let unnamed = try await harness.call(session, "b2_list_buckets", ["accountId": session.accountID])
            #expect(unnamed.status == 401)
            #expect(unnamed.code == "unauthorized")
            let other = try await harness.call(session, "b2_list_buckets", ["accountId": session.accountID, "bucketName": "other-bucket"])
            #expect(other.status == 401)
            #expect(other.code == "unauthorized")

            let named = try await harness.ok(session, "b2_list_buckets", ["accountId": session.accountID, "bucketName": "ha-backups"])
            let buckets = try #require(named["buckets"] as? [[String: Any]])
            #expect(buckets.count == 1)
            let bucket = try #require(buckets.first)
            #expect(bucket["bucketName"] as? String == "ha-backups")
            #expect(bucket["bucketType"] as? String == "allPrivate")
            #expect(bucket["accountId"] as? String == session.accountID)
            #expect(bucket["lifecycleRules"] as? [Any] != nil)
            #expect(bucket["revision"] is Int)
            let byID = try await harness.ok(session, "b2_list_buckets", ["accountId": session.accountID, "bucketId": try #require(bucket["bucketId"] as? String)])
            #expect((byID["buckets"] as? [[String: Any]])?.count == 1)

            // A key of the account may list every bucket; a foreign account ID is refused.
            let master = try await harness.authorize()
            let all = try await harness.ok(master, "b2_list_buckets", ["accountId": master.accountID])
            #expect((all["buckets"] as? [[String: Any]])?.compactMap { $0["bucketName"] as? String } == ["ha-backups", "other-bucket"])
            let foreign = try await harness.call(master, "b2_list_buckets", ["accountId": "000000000000"])
            #expect(foreign.status == 401)
            let missing = try await harness.call(master, "b2_list_buckets", [:])
            #expect(missing.status == 400)
            #expect(missing.code == "bad_request")
        }
    }

    @Test func restrictedKeyCannotTouchAnotherBucketOrNamesOutsideItsPrefix() async throws {
        try await withSimulator { harness in
            let master = try await harness.authorize()
            let otherID = try await harness.bucketID(master, "other-bucket")
            let bucketID = try await harness.bucketID(master)
            let restricted = try await harness.authorize("bucket-key-id", "bucket-key")
            let refused = try await harness.call(restricted, "b2_get_upload_url", ["bucketId": otherID])
            #expect(refused.status == 401)
            #expect(refused.code == "unauthorized")
            let unknown = try await harness.call(master, "b2_get_upload_url", ["bucketId": "0123456789abcdef01234567"])
            #expect(unknown.status == 400)
            #expect(unknown.code == "bad_bucket_id")

            let prefixed = try await harness.authorize("prefix-key-id", "prefix-key")
            let target = try await harness.uploadURL(prefixed, bucketID: bucketID)
            let outside = try await harness.upload(to: target, encodedName: "elsewhere/a.tar", [1, 2, 3])
            #expect(outside.status == 401)
            #expect(outside.code == "unauthorized")
            let inside = try await harness.upload(to: target, encodedName: "homeassistant/a.tar", [1, 2, 3])
            #expect(inside.status == 200)
            let listAll = try await harness.call(prefixed, "b2_list_file_names", ["bucketId": bucketID])
            #expect(listAll.status == 401)
            let listPrefix = try await harness.call(prefixed, "b2_list_file_names", ["bucketId": bucketID, "prefix": "homeassistant/"])
            #expect(listPrefix.status == 200)
        }
    }

    @Test func unknownPathsAndWrongMethodsGetB2Envelopes() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let unknown = try await harness.send("POST", "\(session.apiURL)/b2api/v4/b2_no_such_call", headers: [("Authorization", session.token)], body: Array("{}".utf8))
            #expect(unknown.status == 404)
            #expect(unknown.code == "not_found")
            let wrongMethod = try await harness.send("PUT", "\(session.apiURL)/b2api/v4/b2_list_buckets", headers: [("Authorization", session.token)], body: Array("{}".utf8))
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.code == "method_not_allowed")
            let badJSON = try await harness.send("POST", "\(session.apiURL)/b2api/v4/b2_list_buckets", headers: [("Authorization", session.token)], body: Array("{nope".utf8))
            #expect(badJSON.status == 400)
            #expect(badJSON.code == "bad_json")
            // GET with query parameters, as B2 accepts for its calls.
            let viaGet = try await harness.send("GET", "\(session.apiURL)/b2api/v4/b2_list_buckets?accountId=\(session.accountID)&bucketName=ha-backups",
                                                headers: [("Authorization", session.token)])
            #expect(viaGet.status == 200)
            #expect((viaGet.json["buckets"] as? [[String: Any]])?.count == 1)
        }
    }

    @Test func demoConfigurationHasOneBucketKey() async throws {
        let storage = FileManager.default.temporaryDirectory.appendingPathComponent("b2sim-demo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: storage) }
        try await withSimulator(B2Simulator.demoConfiguration(storage: storage)) { harness in
            let reply = try await harness.authorizeReply("sim-key-id", "sim-application-key", version: "v3")
            let storageAPI = try #require((reply.json["apiInfo"] as? [String: Any])?["storageApi"] as? [String: Any])
            #expect(storageAPI["bucketName"] as? String == "ha-backups")
            #expect(storageAPI["recommendedPartSize"] as? Int == 100_000_000)
            #expect(storageAPI["absoluteMinimumPartSize"] as? Int == 5_000_000)
        }
    }

    @Test func shutdownRemovesTheStoredContents() async throws {
        let configuration = B2Simulator.Configuration.make()
        defer { try? FileManager.default.removeItem(at: configuration.storageDirectory) }
        let simulator = try B2Simulator(configuration: configuration, logger: Harness.logger)
        simulator.start()
        let harness = Harness(simulator: simulator, client: .init(logger: Harness.logger))
        let session = try await harness.authorize()
        _ = try await harness.uploadOK(session, bucketID: try await harness.bucketID(session), name: "x.bin", bytes(100))
        #expect(try FileManager.default.contentsOfDirectory(atPath: configuration.storageDirectory.path).count == 1)
        await simulator.shutdown()
        #expect(try FileManager.default.contentsOfDirectory(atPath: configuration.storageDirectory.path).isEmpty)
    }
}
