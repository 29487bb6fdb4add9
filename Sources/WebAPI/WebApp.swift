import Core
import Foundation
import HTTPServer
import Logging

/// One component's health, reported by the app (database, later B2 and the Supervisor).
public protocol HealthProbe: Sendable {
    /// Component name → `ok` or a plain-words description of the problem.
    func checks() async -> [String: String]
}

/// Who may call `/api`: Home Assistant ingress (requests from the Supervisor's address) or a caller
/// presenting the `api_token` option as a bearer token.
public struct APIAccess: Sendable {
    /// The Supervisor's address on the hassio network; ingress requests come from it.
    public let ingressProxy: String
    /// The `api_token` option; nil means non-ingress callers are refused.
    let apiToken: String?

    public init(ingressProxy: String, apiToken: String?) {
        self.ingressProxy = ingressProxy
        self.apiToken = apiToken.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Throws the 401/403 a caller must see; returns when the request may proceed.
    public func authorize(_ request: HTTPRequest) throws(HTTPError) {
        if request.peer.host == ingressProxy { return }
        guard let apiToken else {
            throw HTTPError(.forbidden, code: "api_token_not_set",
                            message: "this API is only open to Home Assistant ingress; set the api_token option to call it from elsewhere")
        }
        guard let header = request.headers["Authorization"], header.lowercased().hasPrefix("bearer ") else {
            throw HTTPError(.unauthorized, message: "send 'Authorization: Bearer <api_token>'", headers: HTTPHeaders([("WWW-Authenticate", "Bearer")]))
        }
        let presented = header.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
        guard Self.constantTimeEquals(Array(presented.utf8), Array(apiToken.utf8)) else {
            throw HTTPError(.unauthorized, message: "the bearer token does not match the api_token option", headers: HTTPHeaders([("WWW-Authenticate", "Bearer error=\"invalid_token\"")]))
        }
    }

    /// Compares without an early exit, so timing does not reveal how much of the token matched.
    static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        var difference = UInt8(lhs.count == rhs.count ? 0 : 1)
        for index in 0..<max(lhs.count, rhs.count) {
            difference |= (index < lhs.count ? lhs[index] : 0) ^ (index < rhs.count ? rhs[index] : 0)
        }
        return difference == 0
    }
}

/// What the page's setup section shows: what is configured and what is still missing.
/// Never holds a secret: only which options are set.
public struct SetupStatus: Sendable, Encodable, Equatable {
    public let bucket: String?
    public let prefix: String
    /// Option keys that must be set before backups can run.
    public let missing_options: [String]
    public let api_token_set: Bool

    public init(bucket: String?, prefix: String, missingOptions: [String], apiTokenSet: Bool) {
        self.bucket = bucket
        self.prefix = prefix
        self.missing_options = missingOptions
        self.api_token_set = apiTokenSet
    }
}

/// The routes of the add-on: health, the ingress page, and the REST API with its OpenAPI document.
public struct WebApp: Sendable {
    public let version: String
    public let access: APIAccess
    let health: any HealthProbe
    let setup: SetupStatus
    let assets: StaticAssets
    /// The backup pipeline; nil until the options it needs are set.
    let pipeline: Pipeline?
    let setupCheck: (any SetupChecking)?
    let keepAliveInterval: Duration
    let started = ContinuousClock.now

    public init(version: String, access: APIAccess, health: any HealthProbe, setup: SetupStatus, pipeline: Pipeline? = nil,
                setupCheck: (any SetupChecking)? = nil, keepAliveInterval: Duration = .seconds(15)) {
        self.setupCheck = setupCheck
        self.keepAliveInterval = keepAliveInterval
        self.version = version
        self.access = access
        self.health = health
        self.setup = setup
        self.pipeline = pipeline
        self.assets = StaticAssets(files: EmbeddedAssets.base64.mapValues { Array(Data(base64Encoded: $0)!) })
    }

    struct HealthBody: Encodable {
        let status: String
        let version: String
        let uptime_seconds: Int64
        let checks: [String: String]
    }

    public func router() -> Router {
        var router = Router()
        router.get("/health") { _ in try await healthResponse() }
        router.get("/") { request in assets.response(for: "index.html", request: request) }
        router.get("/assets/*path") { request in assets.response(for: "assets/" + (request.pathParameters["path"] ?? ""), request: request) }
        router.get("/api/openapi.json") { request in assets.response(for: "api/openapi.json", request: request) }
        router.get("/api/status") { request in
            try access.authorize(request)
            return try .json(StatusBody(version: version, setup: setup, pipeline: await pipeline?.status()))
        }
        LiveRoutes(pipeline: pipeline, access: access, setupCheck: setupCheck, status: { [version, setup, pipeline] in
            Array(try JSONCoding.encoder.encode(StatusBody(version: version, setup: setup, pipeline: await pipeline?.status())))
        }, keepAliveInterval: keepAliveInterval).register(&router)
        PipelineRoutes(pipeline: pipeline, access: access, missingOptions: setup.missing_options).register(&router)
        CatalogRoutes(pipeline: pipeline, access: access, missingOptions: setup.missing_options).register(&router)
        return router
    }

    /// `GET /api/status`: setup, and the pipeline's state (idle until the options are set).
    struct StatusBody: Encodable {
        let version: String
        let setup: SetupStatus
        let pipeline: PipelineStatusBody?

        init(version: String, setup: SetupStatus, pipeline: PipelineStatus?) {
            self.version = version
            self.setup = setup
            self.pipeline = pipeline.map(PipelineStatusBody.init)
        }

        enum CodingKeys: String, CodingKey { case version, setup, state, running_job, last_success, last_error, next_run, next_run_trigger, schedule_enabled, stale, b2 }

        /// The pipeline's fields sit at the top level next to `version` and `setup`; null when not configured.
        func encode(to encoder: any Encoder) throws {
            try pipeline?.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(version, forKey: .version)
            try container.encode(setup, forKey: .setup)
            if pipeline == nil {
                try container.encode("not_configured", forKey: .state)
                try container.encodeNil(forKey: .running_job)
                try container.encodeNil(forKey: .last_success)
                try container.encodeNil(forKey: .last_error)
                try container.encodeNil(forKey: .next_run)
                try container.encodeNil(forKey: .b2)
            }
        }
    }

    func healthResponse() async throws -> HTTPResponse {
        let checks = await health.checks()
        let healthy = checks.values.allSatisfy { $0 == "ok" }
        let body = HealthBody(status: healthy ? "ok" : "failing", version: version,
                              uptime_seconds: (ContinuousClock.now - started).components.seconds, checks: checks)
        var response = try HTTPResponse.json(body, status: healthy ? .ok : .serviceUnavailable)
        response.headers.add("Cache-Control", "no-store")
        return response
    }
}
