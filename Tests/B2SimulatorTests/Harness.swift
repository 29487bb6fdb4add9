import B2Simulator
import Foundation
import Glibc
import Hashing
import HTTPClient
import Logging
import Testing

extension B2Simulator.Configuration {
    /// A master key, a key restricted to `ha-backups`, two buckets and small part sizes so large-file
    /// rules can be exercised with a few KB.
    static func make(minimumPartSize: Int = 1000, recommendedPartSize: Int = 5000, testModeFailureInterval: Int = 3) -> Self {
        Self(accounts: [
            .init(keyID: "master-key-id", applicationKey: "master-key"),
            .init(keyID: "bucket-key-id", applicationKey: "bucket-key", restrictedToBucket: "ha-backups",
                  capabilities: B2Simulator.Account.bucketKeyCapabilities),
            .init(keyID: "prefix-key-id", applicationKey: "prefix-key", restrictedToBucket: "ha-backups",
                  capabilities: B2Simulator.Account.bucketKeyCapabilities, namePrefix: "homeassistant/"),
        ], buckets: ["ha-backups", "other-bucket"], recommendedPartSize: recommendedPartSize, absoluteMinimumPartSize: minimumPartSize,
             storageDirectory: FileManager.default.temporaryDirectory.appendingPathComponent("b2sim-tests-\(UUID().uuidString)"),
             testModeFailureInterval: testModeFailureInterval)
    }
}

/// A B2 response: status, headers and the JSON body as Foundation objects.
struct Reply: Sendable {
    let response: HTTPClientResponse
    var status: Int { response.status }
    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]) ?? [:] }
    var code: String? { json["code"] as? String }
    var message: String? { json["message"] as? String }
    func string(_ key: String) -> String? { json[key] as? String }
    func header(_ name: String) -> String? { response.header(name) }
    var body: [UInt8] { response.body }
}

/// What `b2_authorize_account` answered.
struct Session: Sendable {
    let token: String
    let apiURL: String
    let downloadURL: String
    let accountID: String
}

struct UploadURL: Sendable {
    let url: String
    let token: String
}

func sha1(_ bytes: [UInt8]) -> String { StreamingDigest.sha1Hex(bytes) }

func bytes(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

/// A running simulator and a libcurl client, with helpers that speak B2's wire format.
struct Harness {
    let simulator: B2Simulator
    let client: HTTPClient

    static let logger = Logger(label: "b2-simulator-test", factory: { _ in SwiftLogNoOpLogHandler() })

    func authorizeReply(_ keyID: String = "master-key-id", _ key: String = "master-key", version: String = "v4") async throws -> Reply {
        let basic = Data("\(keyID):\(key)".utf8).base64EncodedString()
        return Reply(response: try await client.send(.init(url: "\(simulator.realmURL)/b2api/\(version)/b2_authorize_account",
                                                           headers: [("Authorization", "Basic \(basic)")])))
    }

    func authorize(_ keyID: String = "master-key-id", _ key: String = "master-key") async throws -> Session {
        let reply = try await authorizeReply(keyID, key)
        try #require(reply.status == 200, "authorize failed: \(reply.response.text)")
        let storage = try #require((reply.json["apiInfo"] as? [String: Any])?["storageApi"] as? [String: Any])
        return Session(token: try #require(reply.string("authorizationToken")), apiURL: try #require(storage["apiUrl"] as? String),
                       downloadURL: try #require(storage["downloadUrl"] as? String), accountID: try #require(reply.string("accountId")))
    }

    /// A JSON call: POST with a JSON body and the account token.
    func call(_ session: Session, _ operation: String, _ parameters: [String: Any], version: String = "v4",
              headers: [(String, String)] = []) async throws -> Reply {
        let body = try JSONSerialization.data(withJSONObject: parameters)
        return Reply(response: try await client.send(.init(method: "POST", url: "\(session.apiURL)/b2api/\(version)/\(operation)",
                                                           headers: [("Authorization", session.token), ("Content-Type", "application/json")] + headers,
                                                           body: Array(body))))
    }

    /// A call that must succeed; returns its JSON.
    func ok(_ session: Session, _ operation: String, _ parameters: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
        let reply = try await call(session, operation, parameters)
        try #require(reply.status == 200, "\(operation) failed: \(reply.response.text)", sourceLocation: sourceLocation)
        return reply.json
    }

    func send(_ method: String = "GET", _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws -> Reply {
        Reply(response: try await client.send(.init(method: method, url: url, headers: headers, body: body)))
    }

    func bucketID(_ session: Session, _ name: String = "ha-backups") async throws -> String {
        let json = try await ok(session, "b2_list_buckets", ["accountId": session.accountID, "bucketName": name])
        let buckets = try #require(json["buckets"] as? [[String: Any]])
        return try #require(buckets.first?["bucketId"] as? String)
    }

    func uploadURL(_ session: Session, bucketID: String) async throws -> UploadURL {
        let json = try await ok(session, "b2_get_upload_url", ["bucketId": bucketID])
        return UploadURL(url: try #require(json["uploadUrl"] as? String), token: try #require(json["authorizationToken"] as? String))
    }

    func partURL(_ session: Session, fileID: String) async throws -> UploadURL {
        let json = try await ok(session, "b2_get_upload_part_url", ["fileId": fileID])
        return UploadURL(url: try #require(json["uploadUrl"] as? String), token: try #require(json["authorizationToken"] as? String))
    }

    /// `b2_upload_file` to a given upload URL. `encodedName` is sent as is.
    func upload(to target: UploadURL, encodedName: String, _ data: [UInt8], sha1 sha1Header: String? = nil,
                contentType: String = "application/octet-stream", headers: [(String, String)] = []) async throws -> Reply {
        try await send("POST", target.url, headers: [("Authorization", target.token), ("X-Bz-File-Name", encodedName),
                                                     ("Content-Type", contentType), ("X-Bz-Content-Sha1", sha1Header ?? sha1(data))] + headers,
                       body: data)
    }

    /// Gets a fresh upload URL and uploads; the upload must succeed. Returns the file object.
    func uploadOK(_ session: Session, bucketID: String, name: String, _ data: [UInt8], headers: [(String, String)] = [],
                  sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
        let target = try await uploadURL(session, bucketID: bucketID)
        let reply = try await upload(to: target, encodedName: name, data, headers: headers)
        try #require(reply.status == 200, "upload failed: \(reply.response.text)", sourceLocation: sourceLocation)
        return reply.json
    }

    func uploadPart(to target: UploadURL, number: Int, _ data: [UInt8], sha1 sha1Header: String? = nil) async throws -> Reply {
        try await send("POST", target.url, headers: [("Authorization", target.token), ("X-Bz-Part-Number", String(number)),
                                                     ("X-Bz-Content-Sha1", sha1Header ?? sha1(data))], body: data)
    }

    func downloadByName(_ session: Session, bucket: String = "ha-backups", encodedName: String, headers: [(String, String)] = [],
                        method: String = "GET") async throws -> Reply {
        try await send(method, "\(session.downloadURL)/file/\(bucket)/\(encodedName)", headers: [("Authorization", session.token)] + headers)
    }

    func downloadByID(_ session: Session, fileID: String, headers: [(String, String)] = []) async throws -> Reply {
        try await send("GET", "\(session.downloadURL)/b2api/v4/b2_download_file_by_id?fileId=\(fileID)", headers: [("Authorization", session.token)] + headers)
    }
}

/// Starts a simulator on port 0, runs `body`, then shuts it down and removes its storage folder.
func withSimulator<T>(_ configuration: B2Simulator.Configuration = .make(), _ body: (Harness) async throws -> T) async throws -> T {
    let simulator = try B2Simulator(configuration: configuration, logger: Harness.logger)
    simulator.start()
    let harness = Harness(simulator: simulator, client: HTTPClient(logger: Harness.logger))
    do {
        let result = try await body(harness)
        await simulator.shutdown()
        try? FileManager.default.removeItem(at: configuration.storageDirectory)
        return result
    } catch {
        await simulator.shutdown()
        try? FileManager.default.removeItem(at: configuration.storageDirectory)
        throw error
    }
}

