import Foundation
import HTTPClient
import HTTPServer
import Logging
@testable import WebAPI
import Testing

struct FixedHealth: HealthProbe {
    let result: [String: String]
    func checks() async -> [String: String] { result }
}

/// The web app served by a real server on port 0, called with libcurl.
@Suite(.timeLimit(.minutes(1)))
struct WebAppTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func withApp<T>(health: [String: String] = ["database": "ok"], ingressProxy: String = "172.30.32.2", _ body: (String, HTTPClient) async throws -> T) async throws -> T {
        let app = WebApp(version: "9.9.9", access: APIAccess(ingressProxy: ingressProxy, apiToken: "a-long-test-token-123"), health: FixedHealth(result: health),
                         setup: SetupStatus(bucket: nil, prefix: "homeassistant", missingOptions: ["b2_key_id", "b2_key", "b2_bucket"], apiTokenSet: true))
        let server = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0), router: app.router(), logger: logger)
        let running = Task { try await server.run() }
        defer { server.shutdown() }
        let result = try await body("http://127.0.0.1:\(server.port)", HTTPClient(logger: logger))
        server.shutdown()
        try await running.value
        return result
    }

    @Test func healthIsJSONWithVersionAndChecks() async throws {
        try await withApp { base, client in
            let response = try await client.send(.init(url: base + "/health"))
            #expect(response.status == 200)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
            #expect(json["status"] as? String == "ok")
            #expect(json["version"] as? String == "9.9.9")
            #expect((json["checks"] as? [String: String]) == ["database": "ok"])
        }
    }

    @Test func failingComponentMakesHealth503() async throws {
        try await withApp(health: ["database": "disk I/O error"]) { base, client in
            let response = try await client.send(.init(url: base + "/health"))
            #expect(response.status == 503)
            #expect(response.text.contains("disk I/O error"))
        }
    }

    @Test func pageAndAssetsAreServedWithETagGzipAnd304() async throws {
        try await withApp { base, client in
            let page = try await client.send(.init(url: base + "/"))
            #expect(page.status == 200)
            #expect(page.header("Content-Type") == "text/html; charset=utf-8")
            #expect(page.text.contains("<title>B2 Backup</title>"))
            // Relative URLs only: the page must work below the ingress prefix.
            #expect(!page.text.contains("href=\"/") && !page.text.contains("src=\"/"))
            let etag = try #require(page.header("ETag"))
            let cached = try await client.send(.init(url: base + "/", headers: [("If-None-Match", etag)]))
            #expect(cached.status == 304)
            #expect(cached.body.isEmpty)
            let gzipped = try await client.send(.init(url: base + "/assets/app.js", headers: [("Accept-Encoding", "gzip")]))
            #expect(gzipped.header("Content-Encoding") == "gzip")
            #expect(gzipped.body.starts(with: [0x1f, 0x8b]))
            let plain = try await client.send(.init(url: base + "/assets/app.js"))
            #expect(plain.header("Content-Encoding") == nil)
            #expect(plain.text.contains("fetch(\"health\""))
        }
    }

    @Test(arguments: ["/assets/../index.html", "/assets/%2e%2e/api/openapi.json", "/assets/..%2fapi/openapi.json", "/assets/a%5c..%5cindex.html", "/assets/nope.css"])
    func traversalAndUnknownAssetsAreRefused(path: String) async throws {
        try await withApp { base, client in
            let response = try await client.send(.init(url: base + path))
            #expect(response.status == 400 || response.status == 404)
            #expect(response.text.contains("\"error\""))
        }
    }

    @Test func embeddedAssetsMatchTheWebFolder() throws {
        // Fails while Sources/WebAPI/EmbeddedAssets.swift is stale: run scripts/embed-web-assets.
        let web = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/WebAPI/Web").standardizedFileURL
        let files = try #require(FileManager.default.enumerator(at: web, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL })
        var onDisk: [String: Data] = [:]
        for file in files where !file.hasDirectoryPath {
            onDisk[String(file.standardizedFileURL.path.dropFirst(web.path.count + 1))] = try Data(contentsOf: file)
        }
        #expect(Set(onDisk.keys) == Set(EmbeddedAssets.base64.keys))
        for (path, data) in onDisk { #expect(Data(base64Encoded: EmbeddedAssets.base64[path] ?? "") == data, "stale: \(path)") }
    }

    /// Every route the router serves is in the OpenAPI document, and every documented path is served.
    @Test func openAPIDocumentsEveryRoute() async throws {
        let app = WebApp(version: "9.9.9", access: APIAccess(ingressProxy: "172.30.32.2", apiToken: nil), health: FixedHealth(result: [:]),
                         setup: SetupStatus(bucket: nil, prefix: "", missingOptions: [], apiTokenSet: false))
        try await withApp { base, client in
            let response = try await client.send(.init(url: base + "/api/openapi.json"))
            #expect(response.status == 200)
            let document = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            // What the router serves, except the page and its assets (not API).
            var served: [String: Set<String>] = [:]
            for route in app.router().documentedPaths where route.path != "/" && !route.path.hasPrefix("/assets/") {
                served[route.path, default: []].insert(route.method.rawValue.lowercased())
            }
            #expect(Set(paths.keys) == Set(served.keys))
            for (path, methods) in served { #expect(Set(paths[path]?.keys.filter { $0 != "parameters" } ?? []) == methods, "\(path)") }
            let authorization = [("Authorization", "Bearer a-long-test-token-123")]
            for path in ["/health", "/api/openapi.json", "/api/status"] {
                let answer = try await client.send(.init(url: base + path, headers: authorization))
                #expect(answer.status == 200, "\(path)")
            }
            let info = try #require(document["info"] as? [String: Any])
            #expect(info["version"] as? String == WebAPIVersionCheck.configVersion())
        }
    }

    @Test func statusNeedsTheTokenOutsideIngressAndShowsNoSecret() async throws {
        try await withApp { base, client in
            let refused = try await client.send(.init(url: base + "/api/status"))
            #expect(refused.status == 401)
            #expect(refused.header("WWW-Authenticate") == "Bearer")
            let allowed = try await client.send(.init(url: base + "/api/status", headers: [("Authorization", "Bearer a-long-test-token-123")]))
            #expect(allowed.status == 200)
            #expect(allowed.text.contains("\"missing_options\":[\"b2_key_id\",\"b2_key\",\"b2_bucket\"]"))
            #expect(!allowed.text.contains("a-long-test-token"))
        }
        // From the ingress proxy's address no token is needed.
        try await withApp(ingressProxy: "127.0.0.1") { base, client in
            let response = try await client.send(.init(url: base + "/api/status"))
            #expect(response.status == 200)
        }
    }

    @Test(arguments: [
        ("172.30.32.2", nil as String?, true),
        ("172.30.32.1", nil, false),
        ("172.30.32.1", "Bearer a-long-test-token-123", true),
        ("172.30.32.1", "bearer a-long-test-token-123", true),
        ("172.30.32.1", "Bearer a-long-test-token-124", false),
        ("172.30.32.1", "Bearer a-long-test-token-12", false),
        ("172.30.32.1", "Basic YTpi", false),
    ])
    func apiAccess(peer: String, authorization: String?, allowed: Bool) {
        let access = APIAccess(ingressProxy: "172.30.32.2", apiToken: "a-long-test-token-123")
        let request = HTTPRequest(head: HTTPRequestHead(method: .get, target: "/api/x", headers: HTTPHeaders(authorization.map { [("Authorization", $0)] } ?? [])),
                                  peer: PeerAddress(host: peer, port: 1234), body: RequestBody())
        let result = Result { () throws(HTTPError) in try access.authorize(request) }
        #expect(((try? result.get()) != nil) == allowed)
        if case .failure(let error) = result { #expect(!error.message.contains("a-long-test-token")) }
    }

    @Test func withoutATokenOnlyIngressGetsIn() {
        let access = APIAccess(ingressProxy: "172.30.32.2", apiToken: "")
        let request = HTTPRequest(head: HTTPRequestHead(method: .get, target: "/api/x", headers: HTTPHeaders([("Authorization", "Bearer ")])),
                                  peer: PeerAddress(host: "10.0.0.9", port: 1), body: RequestBody())
        #expect(throws: HTTPError.self) { try access.authorize(request) }
    }
}

enum WebAPIVersionCheck {
    /// The add-on version from config.yaml, so the spec's version cannot drift from the release.
    static func configVersion() -> String? {
        let config = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config.yaml")
        guard let text = try? String(contentsOf: config, encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("version:") }
            .map { $0.dropFirst("version:".count).trimmingCharacters(in: CharacterSet(charactersIn: " \"'")) }
    }
}
