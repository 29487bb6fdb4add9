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

/// A plain TCP client for what libcurl will not do on request: hold a body back until `100 Continue`,
/// send a chunked upload. Blocking calls run on their own threads, never on the cooperative pool.
final class RawConnection: @unchecked Sendable {
    enum Failure: Error { case connect(Int32), closed, timeout, malformed(String) }

    struct Response {
        let status: Int
        let headers: [(String, String)]
        let body: [UInt8]
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }
    }

    private let fd: Int32
    private var pending: [UInt8] = []

    /// Connects to the host and port of `url` (`http://127.0.0.1:PORT/...`).
    init(url: String) throws {
        let port = URLComponents(string: url)?.port ?? 80
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { let code = errno; close(fd); throw Failure.connect(code) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    private func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) async throws {
        try await blocking { [self] in
            var offset = 0
            while offset < bytes.count {
                let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else { throw Failure.closed }
                offset += sent
            }
        }
    }

    private func readSome() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        if count == 0 { throw Failure.closed }
        if count < 0 { throw errno == EAGAIN ? Failure.timeout : Failure.closed }
        pending += chunk[0..<count]
    }

    private func readLine() throws -> String {
        while true {
            if let newline = pending.firstIndex(of: 0x0A) {
                var line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            try readSome()
        }
    }

    /// Reads one response (an interim `100 Continue` too); the body by Content-Length.
    func readResponse() async throws -> Response {
        try await blocking { [self] in
            let statusLine = try readLine()
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let status = Int(parts[1]) else { throw Failure.malformed(statusLine) }
            var headers: [(String, String)] = []
            while true {
                let line = try readLine()
                if line.isEmpty { break }
                let pair = line.split(separator: ":", maxSplits: 1)
                headers.append((String(pair[0]), pair.count > 1 ? pair[1].trimmingCharacters(in: .whitespaces) : ""))
            }
            var body: [UInt8] = []
            if let length = headers.first(where: { $0.0.lowercased() == "content-length" }).flatMap({ Int($0.1) }) {
                while pending.count < length { try readSome() }
                body = Array(pending[0..<length])
                pending.removeSubrange(0..<length)
            }
            return Response(status: status, headers: headers, body: body)
        }
    }
}
