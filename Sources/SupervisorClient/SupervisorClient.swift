import Foundation
import HTTPClient
import Logging

/// A failed Supervisor or Core call. The Supervisor's own message is kept verbatim: it is what the user sees.
public enum SupervisorError: Error, Sendable, CustomStringConvertible {
    /// The Supervisor answered `{"result": "error", "message": …}`.
    case refused(operation: String, status: Int, message: String)
    /// 401/403 as plain text: the token is missing or wrong, or the add-on's role does not allow this.
    case unauthorized(operation: String, status: Int, text: String)
    /// The call did not complete.
    case transport(operation: String, HTTPClientError)
    case invalidResponse(operation: String, detail: String)
    /// A backup or restore job finished with errors.
    case jobFailed(job: String, messages: [String])
    case timedOut(operation: String)
    /// `/jobs/info` does not list the job: the Supervisor restarted since it started.
    case jobUnknown(uuid: String)
    /// The calling task was cancelled (shutdown) while waiting.
    case cancelled(operation: String)

    public var description: String {
        switch self {
        case .refused(_, _, let message): "the Supervisor refused: \(message)"
        case .unauthorized(let operation, let status, let text):
            "\(operation): the Supervisor denied access (\(status) \(text)); the add-on needs hassio_api with the backup role and homeassistant_api"
        case .transport(let operation, let error): "\(operation): cannot reach the Supervisor: \(error)"
        case .invalidResponse(let operation, let detail): "\(operation): unexpected answer from the Supervisor: \(detail)"
        case .jobFailed(let job, let messages): "\(job) failed: \(messages.joined(separator: "; "))"
        case .timedOut(let operation): "\(operation) did not finish in time"
        case .jobUnknown(let uuid): "the Supervisor no longer knows job \(uuid) (it restarted)"
        case .cancelled(let operation): "\(operation) was cancelled"
        }
    }
}

/// The Supervisor REST API (v1) and the Core API proxy, as the add-on's `SUPERVISOR_TOKEN` may call them.
/// - SeeAlso: https://developers.home-assistant.io/docs/api/supervisor/endpoints
public final class SupervisorClient: Sendable {
    public let baseURL: String
    private let token: String
    private let http: HTTPClient
    private let logger: Logger

    /// - Parameter baseURL: `SUPERVISOR_URL`, `http://supervisor` in the add-on.
    public init(baseURL: String, token: String, http: HTTPClient? = nil, logger: Logger) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.http = http ?? HTTPClient(logger: logger)
        self.logger = logger
    }

    // MARK: Supervisor

    public func info() async throws(SupervisorError) -> SupervisorInfo {
        try await data("GET", "/info", as: SupervisorInfo.self)
    }

    public func selfInfo() async throws(SupervisorError) -> SelfAddonInfo {
        try await data("GET", "/addons/self/info", as: SelfAddonInfo.self)
    }

    /// Slugs of the installed add-ons (`/supervisor/info`, which the backup role may read).
    public func installedAddons() async throws(SupervisorError) -> [String] {
        try await installedAddonDetails().map(\.slug)
    }

    /// The installed add-ons with their names.
    public func installedAddonDetails() async throws(SupervisorError) -> [InstalledAddon] {
        struct Details: Decodable { let addons: [InstalledAddon] }
        return try await data("GET", "/supervisor/info", as: Details.self).addons
    }

    public func backups() async throws(SupervisorError) -> [BackupSummary] {
        struct List: Decodable { let backups: [BackupSummary] }
        return try await data("GET", "/backups", as: List.self).backups
    }

    public func backupInfo(slug: String) async throws(SupervisorError) -> BackupDetails {
        try await data("GET", "/backups/\(Self.segment(slug))/info", as: BackupDetails.self)
    }

    /// Starts a backup in the background and returns the job's id (`background: true`).
    public func startBackup(_ backup: NewBackup) async throws(SupervisorError) -> String {
        struct Started: Decodable { let job_id: String }
        return try await data("POST", backup.isPartial ? "/backups/new/partial" : "/backups/new/full", body: backup, as: Started.self).job_id
    }

    /// Starts a restore in the background. A full restore stops every add-on, this one included.
    public func startRestore(slug: String, _ restore: RestoreRequest) async throws(SupervisorError) -> String {
        struct Started: Decodable { let job_id: String }
        let kind = restore.isPartial ? "partial" : "full"
        return try await data("POST", "/backups/\(Self.segment(slug))/restore/\(kind)", body: restore, as: Started.self).job_id
    }

    public func deleteBackup(slug: String) async throws(SupervisorError) {
        _ = try await call("DELETE", "/backups/\(Self.segment(slug))", body: nil as [String: String]?)
    }

    /// Every job the Supervisor tracks (`/jobs/info`: the backup role may not read `/jobs/{uuid}`).
    public func jobs() async throws(SupervisorError) -> [SupervisorJob] {
        struct Jobs: Decodable { let jobs: [SupervisorJob] }
        return try await data("GET", "/jobs/info", as: Jobs.self).jobs
    }

    /// Polls `/jobs/info` until the job is done; throws `jobFailed` with the Supervisor's messages.
    public func waitForJob(_ uuid: String, pollInterval: Duration = .seconds(1), timeout: Duration = .seconds(6 * 3600)) async throws(SupervisorError) -> SupervisorJob {
        let deadline = ContinuousClock.now + timeout
        while true {
            let all = try await jobs()
            guard let job = Self.find(uuid, in: all) else { throw SupervisorError.jobUnknown(uuid: uuid) }
            if job.isDone {
                let errors = job.allErrors
                if !errors.isEmpty { throw SupervisorError.jobFailed(job: job.name, messages: errors.map(\.message)) }
                return job
            }
            guard ContinuousClock.now < deadline else { throw SupervisorError.timedOut(operation: "job \(uuid)") }
            do { try await Task.sleep(for: pollInterval) } catch { throw SupervisorError.cancelled(operation: "waiting for job \(uuid)") }
        }
    }

    static func find(_ uuid: String, in jobs: [SupervisorJob]) -> SupervisorJob? {
        for job in jobs {
            if job.uuid == uuid { return job }
            if let child = find(uuid, in: job.child_jobs) { return child }
        }
        return nil
    }

    /// Streams a backup's tar to a file (for backups not in the local folder, e.g. on a network mount).
    public func downloadBackup(slug: String, to path: String) async throws(SupervisorError) -> Int64 {
        let operation = "download backup \(slug)"
        var request = HTTPClientRequest(url: baseURL + "/backups/\(Self.segment(slug))/download", headers: authorization, timeout: nil)
        request.responseFile = ResponseFile(path: path)
        let response = try await send(request, operation)
        try Self.check(response, operation)
        return response.bytesWritten
    }

    /// Hands a backup tar to the Supervisor as a streamed `multipart/form-data` body (never in memory).
    /// Returns the slug the Supervisor read from the tar's `backup.json`.
    public func uploadBackup(path: String, filename: String) async throws(SupervisorError) -> String {
        let operation = "upload backup \(filename)"
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
        let boundary = "b2backup-" + UUID().uuidString
        let safeName = filename.replacingOccurrences(of: "\"", with: "_")
        let prefix = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(safeName)\"\r\nContent-Type: application/x-tar\r\n\r\n".utf8)
        let suffix = Array("\r\n--\(boundary)--\r\n".utf8)
        let query = "?filename=" + (filename.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? filename)
        var request = HTTPClientRequest(method: "POST", url: baseURL + "/backups/new/upload" + query,
                                        headers: authorization + [("Content-Type", "multipart/form-data; boundary=\(boundary)")], timeout: nil)
        request.bodyFile = FileRange(path: path, length: size, prefix: prefix, suffix: suffix)
        struct Uploaded: Decodable { let slug: String }
        return try Self.decodeData(Uploaded.self, try await send(request, operation), operation).slug
    }

    // MARK: Core proxy

    /// Sets an entity state (`POST /core/api/states/<entity_id>`), creating it if needed.
    public func setState<Attributes: Encodable & Sendable>(_ entityID: String, state: String, attributes: Attributes) async throws(SupervisorError) {
        try await core("POST", "/core/api/states/\(entityID)", body: StateBody(state: state, attributes: attributes))
    }

    /// An entity's state and attributes, or nil when Core does not know the entity (404).
    public func entityState(_ entityID: String) async throws(SupervisorError) -> EntityState? {
        let operation = "GET /core/api/states/\(entityID)"
        let response = try await send(try request("GET", "/core/api/states/\(entityID)", body: nil as [String: String]?), operation)
        if response.status == 404 { return nil }
        try Self.checkCore(response, operation)
        do { return try JSONDecoder().decode(EntityState.self, from: Data(response.body)) } catch {
            throw SupervisorError.invalidResponse(operation: operation, detail: "\(error)")
        }
    }

    /// Whether Core has a state for the entity (`GET /core/api/states/<entity_id>`: 200 or 404).
    public func hasState(_ entityID: String) async throws(SupervisorError) -> Bool {
        let operation = "GET /core/api/states/\(entityID)"
        let response = try await send(try request("GET", "/core/api/states/\(entityID)", body: nil as [String: String]?), operation)
        if response.status == 404 { return false }
        try Self.checkCore(response, operation)
        return true
    }

    /// Calls a service, e.g. `persistent_notification.create` or `notify.mobile_app_phone`.
    public func callService(_ domain: String, _ service: String, data: some Encodable & Sendable) async throws(SupervisorError) {
        try await core("POST", "/core/api/services/\(domain)/\(service)", body: data)
    }

    public func fireEvent(_ type: String, data: some Encodable & Sendable) async throws(SupervisorError) {
        try await core("POST", "/core/api/events/\(type)", body: data)
    }

    private func core(_ method: String, _ path: String, body: some Encodable) async throws(SupervisorError) {
        let operation = "\(method) \(path)"
        try Self.checkCore(try await send(try request(method, path, body: body), operation), operation)
    }

    static func checkCore(_ response: HTTPClientResponse, _ operation: String) throws(SupervisorError) {
        guard (200..<300).contains(response.status) else {
            if response.status == 401 || response.status == 403 {
                throw SupervisorError.unauthorized(operation: operation, status: response.status, text: String(response.text.prefix(200)))
            }
            // Core answers plain JSON {"message": …} or text; keep it verbatim.
            let message = (try? JSONDecoder().decode([String: String].self, from: Data(response.body)))?["message"] ?? String(response.text.prefix(300))
            throw SupervisorError.refused(operation: operation, status: response.status, message: message.isEmpty ? "HTTP \(response.status)" : message)
        }
    }

    struct StateBody<Attributes: Encodable>: Encodable {
        let state: String
        let attributes: Attributes
    }

    // MARK: Plumbing

    private var authorization: [(String, String)] { [("Authorization", "Bearer \(token)")] }

    private func request(_ method: String, _ path: String, body: (some Encodable)?) throws(SupervisorError) -> HTTPClientRequest {
        var headers = authorization
        var payload: [UInt8]?
        if let body {
            do { payload = Array(try JSONEncoder().encode(body)) } catch {
                throw SupervisorError.invalidResponse(operation: path, detail: "cannot encode the request")
            }
            headers.append(("Content-Type", "application/json"))
        }
        return HTTPClientRequest(method: method, url: baseURL + path, headers: headers, body: payload, timeout: .seconds(300))
    }

    private func call(_ method: String, _ path: String, body: (some Encodable)?) async throws(SupervisorError) -> HTTPClientResponse {
        let operation = "\(method) \(path)"
        let response = try await send(try request(method, path, body: body), operation)
        try Self.check(response, operation)
        return response
    }

    private func data<T: Decodable>(_ method: String, _ path: String, body: (some Encodable)? = nil as [String: String]?, as type: T.Type) async throws(SupervisorError) -> T {
        let operation = "\(method) \(path)"
        return try Self.decodeData(T.self, try await call(method, path, body: body), operation)
    }

    private func send(_ request: HTTPClientRequest, _ operation: String) async throws(SupervisorError) -> HTTPClientResponse {
        do {
            return try await http.send(request)
        } catch {
            throw SupervisorError.transport(operation: operation, error)
        }
    }

    /// Maps the Supervisor's envelope and plain-text auth answers to errors.
    static func check(_ response: HTTPClientResponse, _ operation: String) throws(SupervisorError) {
        if (200..<300).contains(response.status) { return }
        if response.status == 401 || response.status == 403, !(response.header("Content-Type") ?? "").contains("json") {
            throw SupervisorError.unauthorized(operation: operation, status: response.status, text: String(response.text.prefix(200)))
        }
        struct Failure: Decodable { let result: String?; let message: String? }
        let message = (try? JSONDecoder().decode(Failure.self, from: Data(response.body)))?.message
        throw SupervisorError.refused(operation: operation, status: response.status, message: message ?? "HTTP \(response.status): \(response.text.prefix(300))")
    }

    static func decodeData<T: Decodable>(_ type: T.Type, _ response: HTTPClientResponse, _ operation: String) throws(SupervisorError) -> T {
        try check(response, operation)
        do {
            let envelope = try JSONDecoder().decode(Envelope<T>.self, from: Data(response.body))
            guard envelope.result == "ok" else { throw SupervisorError.invalidResponse(operation: operation, detail: "result \(envelope.result)") }
            return envelope.data
        } catch let error as SupervisorError {
            throw error
        } catch {
            throw SupervisorError.invalidResponse(operation: operation, detail: "\(error)")
        }
    }

    /// The Supervisor's success envelope: `{"result": "ok", "data": …}`.
    struct Envelope<Payload: Decodable>: Decodable {
        let result: String
        let data: Payload
    }

    /// A path segment from a slug; slugs are hex, but never let one change the path.
    static func segment(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? value
    }
}
