import Foundation
import HTTPServer

/// The Supervisor's routes. Every Supervisor path passes the security middleware first
/// (`api/middleware/security.py token_validation`), matched or not, as aiohttp runs middlewares
/// around its 404; Core proxy paths skip it and check access themselves.
enum Routes {
    static func router(_ context: Context) -> Router {
        var table = RouteTable(context: context)
        // Supervisor (SUP `api/__init__.py`)
        table.add(.get, "/info") { _ in await InfoRoutes.info(context: context) }
        table.add(.get, "/supervisor/info") { _ in await InfoRoutes.supervisorInfo(context: context) }
        table.add(.get, "/core/info") { _ in InfoRoutes.coreInfo(context: context) }
        table.add(.get, "/homeassistant/info") { _ in InfoRoutes.coreInfo(context: context) }
        table.add(.get, "/addons/self/info") { _ in InfoRoutes.selfInfo(context: context) }
        table.add(.get, "/jobs/info") { _ in await InfoRoutes.jobs(context: context) }
        table.add(.get, "/jobs/:uuid") { request in try await InfoRoutes.job(request, context: context) }
        BackupRoutes.register(&table)
        // Core proxy (SUP `api/proxy.py`); `/homeassistant/api/…` is the legacy alias.
        for prefix in ["/core/api", "/homeassistant/api"] {
            for method in [HTTPMethod.get, .post, .delete] {
                table.add(method, "\(prefix)/*path") { request in try await CoreProxy.handle(request, context: context) }
            }
        }
        return table.finish()
    }
}

/// Registers routes behind the security middleware and answers what matches none the way aiohttp does.
struct RouteTable {
    let context: Context
    private var router = Router()
    private var patterns: [(method: HTTPMethod, segments: [String])] = []

    init(context: Context) { self.context = context }

    mutating func add(_ method: HTTPMethod, _ pattern: String, bodyLimit: Int? = nil,
                      _ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        let context = context
        patterns.append((method, pattern.split(separator: "/").map(String.init)))
        router.add(method, pattern, bodyLimit: bodyLimit) { request in
            await context.state.count(request.path)
            try Security.check(request, context.configuration)
            return try await handler(request)
        }
    }

    /// Adds the catch-all: the middleware still runs, then `404: Not Found`, or `405: Method Not Allowed`
    /// for a known path with another method.
    consuming func finish() -> Router {
        let context = context
        let known = patterns
        for method in [HTTPMethod.get, .post, .put, .delete, .patch] {
            router.add(method, "/*rest") { request in
                await context.state.count(request.path)
                try Security.check(request, context.configuration)
                let parts = request.path.split(separator: "/").map(String.init)
                if known.contains(where: { Self.matches($0.segments, parts) }) { throw PlainError.methodNotAllowed }
                throw PlainError.notFound
            }
        }
        return router
    }

    private static func matches(_ pattern: [String], _ parts: [String]) -> Bool {
        for (index, segment) in pattern.enumerated() {
            if segment.hasPrefix("*") { return true }
            guard index < parts.count else { return false }
            if !segment.hasPrefix(":"), segment != parts[index] { return false }
        }
        return pattern.count == parts.count
    }
}

/// `SecurityMiddleware.token_validation` for a request from an add-on with the configured token and role.
///
/// The patterns are the Supervisor's, verbatim. `Regex` is not `Sendable` (it compiles lazily), so each
/// is built where it is used: computed properties, not shared statics.
enum Security {
    /// Always refused (`BLACKLIST`).
    static var blacklist: Regex<AnyRegexOutput> { try! Regex(#"^(?:|/homeassistant/api/hassio/.*|/core/api/hassio/.*)$"#) }
    /// Passed to handlers that check access themselves (`NO_SECURITY_CHECK`, the parts that exist here).
    static var noSecurityCheck: Regex<AnyRegexOutput> { try! Regex(#"^(?:|/homeassistant/api/.*|/homeassistant/websocket|/core/api/.*|/core/websocket|/supervisor/ping)$"#) }
    /// Allowed to every add-on with a valid token, even without `hassio_api` (`ADDONS_API_BYPASS`).
    static var addonsBypass: Regex<AnyRegexOutput> { try! Regex(#"^(?:|/addons/self/(?!security|update)[^/]+|/addons/self/options/config|/info|/services.*|/discovery.*|/auth)$"#) }
    /// `ADDONS_ROLE_ACCESS`, add-on slugs matched as `RE_SLUG` (`[-_.A-Za-z0-9]+`).
    static func roleAccess(_ role: String) -> Regex<AnyRegexOutput>? {
        rolePatterns[role].map { try! Regex($0) }
    }

    private static let rolePatterns: [String: String] = [
        "default": #"^(?:|/.+/info)$"#,
        "homeassistant": #"^(?:|/.+/info|/core/.+|/homeassistant/.+)$"#,
        "backup": #"^(?:|/.+/info|/backups.*)$"#,
        "manager": #"^(?:|/.+/info|/addons(?:/[-_.A-Za-z0-9]+/(?!security).+|/reload)?|/audio/.+|/auth/cache|/available_updates|/backups.*|/cli/.+|/core/.+|/dns/.+|/docker/.+|/jobs/.+|/hardware/.+|/hassos/.+|/homeassistant/.+|/host/.+|/mounts.*|/multicast/.+|/network/.+|/observer/.+|/os/(?!datadisk/wipe).+|/refresh_updates|/resolution/.+|/security/.+|/snapshots.*|/store.*|/supervisor/.+)$"#,
        "admin": #".*"#,
    ]

    static func isProxyPath(_ path: String) -> Bool { (try? noSecurityCheck.wholeMatch(in: path)) != nil }

    /// The add-on token as `extract_supervisor_token` finds it: `X-Supervisor-Token`, then legacy
    /// `X-Hassio-Key`, then the last space-separated word of `Authorization`.
    static func token(_ headers: HTTPHeaders) -> String? {
        if let token = headers["X-Supervisor-Token"], !token.isEmpty { return token }
        if let token = headers["X-Hassio-Key"], !token.isEmpty { return token }
        if let authorization = headers["Authorization"] {
            let token = String(authorization.split(separator: " ", omittingEmptySubsequences: false).last ?? "")
            return token.isEmpty ? nil : token
        }
        return nil
    }

    /// Throws the middleware's plain-text answers: 403 for blacklisted paths, 401 without a token, 403 for
    /// an unknown token or a path the add-on's role does not cover. Core proxy paths pass (the proxy
    /// checks the token itself).
    static func check(_ request: HTTPRequest, _ configuration: SupervisorSimulator.Configuration) throws(PlainError) {
        let path = request.path
        if (try? blacklist.wholeMatch(in: path)) != nil { throw .forbidden }
        if isProxyPath(path) { return }
        guard let token = token(request.headers) else { throw .unauthorized }
        guard token == configuration.token else { throw .forbidden }
        if (try? addonsBypass.wholeMatch(in: path)) != nil { return }
        guard configuration.hassioAPI, let pattern = roleAccess(configuration.role), (try? pattern.wholeMatch(in: path)) != nil else {
            throw .forbidden
        }
    }
}

/// `/info`, `/supervisor/info`, `/core/info`, `/addons/self/info` and the jobs API.
enum InfoRoutes {
    static let machine = "generic-x86-64"
    static let arch = "amd64"

    /// `api/root.py info`.
    static func info(context: Context) async -> HTTPResponse {
        let configuration = context.configuration
        let phase = await context.state.phase.rawValue
        return Envelope.ok([
            "supervisor": .string(configuration.supervisorVersion), "homeassistant": .string(configuration.homeassistantVersion),
            "hassos": "16.2", "docker": "28.3.3", "hostname": "homeassistant", "operating_system": "Home Assistant OS 16.2",
            "features": .strings(["reboot", "shutdown", "services", "network", "hostname", "timedate", "os_agent", "haos", "resolved", "journal", "disk", "mount"]),
            "machine": .string(machine), "machine_id": "9f2c1b7e5d4a4c3b8a6e0f1d2c3b4a59", "arch": .string(arch),
            "state": .string(phase), "supported_arch": .strings(["amd64", "i386"]), "supported": true, "channel": "stable",
            "logging": "info", "timezone": .string(configuration.timezone),
        ])
    }

    static func supervisorInfo(context: Context) async -> HTTPResponse {
        let configuration = context.configuration
        let addons = await context.state.installedAddons.map { addon -> JSONValue in
            ["name": .string(addon.name), "slug": .string(addon.slug), "version": .string(addon.version), "version_latest": .string(addon.version),
             "update_available": false, "state": "started", "repository": .string(addon.slug.split(separator: "_").first.map(String.init) ?? "local"),
             "icon": true]
        }
        return Envelope.ok([
            "version": .string(configuration.supervisorVersion), "version_latest": .string(configuration.supervisorVersion),
            "update_available": false, "channel": "stable", "arch": .string(arch), "supported": true, "healthy": true,
            "ip_address": "172.30.32.2", "timezone": .string(configuration.timezone), "logging": "info", "debug": false, "debug_block": false,
            "diagnostics": nil, "auto_update": true, "country": nil, "detect_blocking_io": false, "addons": .array(addons),
            "addons_repositories": .strings(configuration.repositories),
        ])
    }

    /// `api/homeassistant.py info`.
    static func coreInfo(context: Context) -> HTTPResponse {
        let version = context.configuration.homeassistantVersion
        return Envelope.ok([
            "version": .string(version), "version_latest": .string(version), "update_available": false, "machine": .string(machine),
            "ip_address": "172.30.32.1", "arch": .string(arch), "image": "ghcr.io/home-assistant/generic-x86-64-homeassistant",
            "boot": true, "port": 8123, "ssl": false, "watchdog": true, "audio_input": nil, "audio_output": nil,
            "backups_exclude_database": false, "duplicate_log_file": false,
        ])
    }

    /// `api/apps.py info` for the calling add-on.
    static func selfInfo(context: Context) -> HTTPResponse {
        let configuration = context.configuration
        let addon = configuration.selfAddon
        let repository = addon.slug.split(separator: "_").first.map(String.init) ?? "local"
        return Envelope.ok([
            "name": .string(addon.name), "slug": .string(addon.slug), "hostname": .string(addon.slug.replacingOccurrences(of: "_", with: "-")),
            "dns": .strings(["\(addon.slug.replacingOccurrences(of: "_", with: "-")).local.hass.io"]),
            "description": "Back up Home Assistant to Backblaze B2", "advanced": false, "stage": "stable", "repository": .string(repository),
            "version": .string(addon.version), "version_latest": .string(addon.version), "update_available": false, "protected": true,
            "rating": 6, "boot_config": "auto", "boot": "auto", "options": .object(configuration.selfOptions), "arch": .strings(["aarch64", "amd64"]),
            "machine": .strings([]), "homeassistant": nil, "url": nil, "detached": false, "available": true, "build": false,
            "network": [:], "host_network": false, "host_pid": false, "host_ipc": false, "host_uts": false, "host_dbus": false,
            "privileged": .strings([]), "full_access": false, "apparmor": "default", "icon": true, "logo": true, "changelog": true,
            "documentation": true, "stdin": false, "hassio_api": .bool(configuration.hassioAPI), "hassio_role": .string(configuration.role),
            "auth_api": false, "homeassistant_api": .bool(configuration.homeassistantAPI), "gpio": false, "usb": false, "uart": false,
            "kernel_modules": false, "devicetree": false, "udev": false, "docker_api": false, "video": false, "audio": false,
            "startup": "application", "services": .strings([]), "discovery": .strings([]), "translations": [:], "ingress": true, "signed": false,
            "state": "started", "webui": nil, "ingress_entry": .string("/api/hassio_ingress/\(String(configuration.token.prefix(12)))"),
            "ingress_url": .string("/api/hassio_ingress/\(String(configuration.token.prefix(12)))/"), "ingress_port": 8099,
            "ingress_panel": false, "audio_input": nil, "audio_output": nil, "auto_update": false, "ip_address": "172.30.33.5",
            "watchdog": false, "devices": .strings([]), "system_managed": false, "system_managed_config_entry": nil,
        ])
    }

    /// `api/jobs.py info`: every job kept (backup and restore jobs are never cleaned up), children nested.
    static func jobs(context: Context) async -> HTTPResponse {
        let jobs = await context.state.allJobs()
        return Envelope.ok(["ignore_conditions": .strings([]), "jobs": .array(jobs.map { json($0) })])
    }

    /// `GET /jobs/{uuid}` (the `manager` role and above; `backup` is refused by the middleware).
    static func job(_ request: HTTPRequest, context: Context) async throws -> HTTPResponse {
        guard let uuid = request.pathParameters["uuid"], let job = await context.state.job(uuid) else {
            throw APIError("Job does not exist", status: 404)
        }
        guard case .object(let object) = json(job) else { return Envelope.ok() }
        return Envelope.ok(object)
    }

    /// `SupervisorJob.as_dict()` plus `child_jobs`.
    static func json(_ job: SupervisorState.Job, parent: String? = nil) -> JSONValue {
        [
            "name": .string(job.name), "reference": .optional(job.reference), "uuid": .string(job.uuid), "progress": .int(job.progress),
            "stage": .optional(job.stage), "done": job.done.map(JSONValue.bool) ?? .null, "parent_id": .optional(parent),
            "errors": .array(job.errors.map { ["type": .string($0.type), "message": .string($0.message), "stage": .optional($0.stage),
                                               "error_key": nil, "extra_fields": nil] }),
            "created": .string(job.created), "extra": nil, "child_jobs": .array(job.children.map { json($0, parent: job.uuid) }),
        ]
    }
}
