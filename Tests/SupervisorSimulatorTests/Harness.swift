import BackupArchive
import Compression
import Foundation
import Hashing
import HTTPClient
import Logging
import SupervisorSimulator
import Testing

extension SupervisorSimulator.Configuration {
    /// A fresh backup folder, small payloads and short jobs.
    static func make(token: String = "test-token", role: String = "backup", hassioAPI: Bool = true, homeassistantAPI: Bool = true,
                     payloadBytes: Int = 8 * 1024, jobDuration: Duration = .milliseconds(20)) -> Self {
        Self(token: token, role: role, hassioAPI: hassioAPI, homeassistantAPI: homeassistantAPI,
             backupDirectory: FileManager.default.temporaryDirectory.appendingPathComponent("supervisor-sim-tests-\(UUID().uuidString)"),
             backupPayloadBytes: payloadBytes, jobDuration: jobDuration)
    }
}

/// A response with its body parsed as JSON when it is JSON.
struct Reply: Sendable {
    let response: HTTPClientResponse
    var status: Int { response.status }
    var text: String { response.text }
    var body: [UInt8] { response.body }
    var json: JSONValue? { try? JSONValue.parse(response.body) }
    var result: String? { json?["result"]?.stringValue }
    var data: JSONValue? { json?["data"] }
    var message: String? { json?["message"]?.stringValue }
    func header(_ name: String) -> String? { response.header(name) }
}

/// A running simulator and a libcurl client that speaks to it as the add-on would.
struct Harness {
    let supervisor: SupervisorSimulator
    let client: HTTPClient

    static let logger = Logger(label: "supervisor-simulator-test", factory: { _ in SwiftLogNoOpLogHandler() })

    var configuration: SupervisorSimulator.Configuration { supervisor.configuration }
    var auth: [(String, String)] { [("Authorization", "Bearer \(configuration.token)")] }

    func send(_ method: String = "GET", _ path: String, json: JSONValue? = nil, headers: [(String, String)]? = nil,
              body: [UInt8]? = nil) async throws -> Reply {
        var all = headers ?? auth
        var payload = body
        if let json {
            payload = json.encoded()
            all.append(("Content-Type", "application/json"))
        }
        return Reply(response: try await client.send(HTTPClientRequest(method: method, url: supervisor.url + path, headers: all, body: payload)))
    }

    func get(_ path: String) async throws -> Reply { try await send("GET", path) }
    func post(_ path: String, _ json: JSONValue? = nil) async throws -> Reply { try await send("POST", path, json: json) }

    /// A call that must answer `{"result":"ok"}`; returns `data`.
    @discardableResult
    func ok(_ method: String = "GET", _ path: String, _ json: JSONValue? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSONValue {
        let reply = try await send(method, path, json: json)
        try #require(reply.status == 200 && reply.result == "ok", "\(method) \(path): \(reply.status) \(reply.text)", sourceLocation: sourceLocation)
        return try #require(reply.data, sourceLocation: sourceLocation)
    }

    /// A job as `GET /jobs/info` lists it.
    func job(_ uuid: String) async throws -> JSONValue? {
        let jobs = try await ok("GET", "/jobs/info")["jobs"]?.arrayValue ?? []
        return jobs.first { $0["uuid"]?.stringValue == uuid }
    }

    /// Polls `GET /jobs/info` the way the add-on does until the job is done (bounded: 10 s).
    func waitForJob(_ uuid: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSONValue {
        for _ in 0..<1000 {
            if let job = try await job(uuid), job["done"] == .bool(true) { return job }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("job \(uuid) did not finish", sourceLocation: sourceLocation)
        throw CancellationError()
    }

    /// Starts a backup with `background: false`; returns its slug.
    func backup(full: Bool = true, _ body: JSONObject = [:], sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        var body = body
        if body["name"] == nil { body["name"] = "Test backup" }
        let data = try await ok("POST", full ? "/backups/new/full" : "/backups/new/partial", .object(body), sourceLocation: sourceLocation)
        return try #require(data["slug"]?.stringValue, sourceLocation: sourceLocation)
    }

    func file(_ name: String) -> URL { configuration.backupDirectory.appendingPathComponent(name) }
}

/// Starts a simulator on port 0, runs `body`, then shuts it down and removes its backup folder.
func withSupervisor<T>(_ configuration: SupervisorSimulator.Configuration = .make(), _ body: (Harness) async throws -> T) async throws -> T {
    let supervisor = try SupervisorSimulator(configuration: configuration, logger: Harness.logger)
    supervisor.start()
    let harness = Harness(supervisor: supervisor, client: HTTPClient(logger: Harness.logger))
    do {
        let result = try await body(harness)
        await supervisor.shutdown()
        try? FileManager.default.removeItem(at: configuration.backupDirectory)
        return result
    } catch {
        await supervisor.shutdown()
        try? FileManager.default.removeItem(at: configuration.backupDirectory)
        throw error
    }
}

/// Every member of a tar with its data (for small archives in tests).
func members(_ reader: TarReader) throws -> [(entry: TarEntry, data: [UInt8])] { try reader.readAll(dataLimit: 64 << 20) }

func members(of url: URL) throws -> [(entry: TarEntry, data: [UInt8])] { try members(TarReader(url: url)) }

/// The shared fixtures (`../shared/fixtures/backups` from the package root), when this checkout has them.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures/backups")
    static var available: Bool { FileManager.default.fileExists(atPath: directory.appendingPathComponent("full-plain.tar").path) }
    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
}

/// A `multipart/form-data` body with one file part, as a browser builds it.
func multipart(_ data: [UInt8], field: String = "file", fileName: String = "backup.tar", boundary: String = "----b2sim\(UUID().uuidString)") -> (body: [UInt8], contentType: String) {
    let head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"\(fileName)\"\r\nContent-Type: application/x-tar\r\n\r\n"
    let tail = "\r\n--\(boundary)--\r\n"
    return (Array(head.utf8) + data + Array(tail.utf8), "multipart/form-data; boundary=\(boundary)")
}

func sha1(_ bytes: [UInt8]) -> String { StreamingDigest.sha1Hex(bytes) }
