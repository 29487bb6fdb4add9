import Core
import Foundation
import HTTPServer

/// An optional that encodes as `null`: synthesized `Encodable` leaves nil optionals out, and API clients
/// (and the OpenAPI document) expect every field to be there.
struct Nullable<Wrapped: Encodable>: Encodable {
    let value: Wrapped?
    init(_ value: Wrapped?) { self.value = value }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
}

/// A job as the REST API shows it (`GET /api/jobs/{id}`, OpenAPI `Job`).
struct JobBody: Encodable {
    struct Backup: Encodable { let slug: Nullable<String>; let name: String }
    struct Failure: Encodable { let code: String; let message: String; let step: Nullable<String> }
    struct Remote: Encodable { let name: String; let file_id: String; let size: Int64; let sha1: String; let parts: Int }
    struct Copy: Encodable {
        struct Problem: Encodable { let code: String; let message: String }
        let id: String
        let state: String
        let file_name: Nullable<String>
        let size: Nullable<Int64>
        let verified_at: Nullable<String>
        let error: Nullable<Problem>
    }

    let id: String
    let kind: String
    let trigger: String
    let state: String
    let step: String
    let bytes_done: Int64
    let bytes_total: Int64
    let started_at: String
    let finished_at: Nullable<String>
    let duration_seconds: Nullable<Double>
    let backup: Backup
    let remote: Nullable<Remote>
    let error: Nullable<Failure>
    let warnings: [String]
    /// Each destination's copy (backups only; B2 first).
    let destinations: [Copy]

    init(_ job: Job) {
        id = job.id
        kind = job.kind.rawValue
        trigger = job.trigger.rawValue
        state = job.state.rawValue
        step = job.step.rawValue
        bytes_done = job.bytesDone
        bytes_total = job.bytesTotal
        started_at = ISO8601.string(job.startedAt)
        finished_at = Nullable(job.finishedAt.map(ISO8601.string))
        duration_seconds = Nullable(job.duration)
        backup = Backup(slug: Nullable(job.slug), name: job.plan.name)
        remote = Nullable(job.remote.map { Remote(name: $0.name, file_id: $0.fileID, size: $0.size, sha1: $0.sha1, parts: $0.parts) })
        error = Nullable(job.error.map { Failure(code: $0.code, message: $0.message, step: Nullable($0.step?.rawValue)) })
        warnings = job.warnings
        let ids = [DestinationID.b2] + (job.copies ?? []).map(\.destination).filter { $0 != DestinationID.b2 }
        destinations = job.destinationResults(destinations: ids).map { copy in
            Copy(id: copy.destination, state: copy.state, file_name: Nullable(copy.remote?.name), size: Nullable(copy.remote?.size),
                 verified_at: Nullable(copy.verifiedAt.map(ISO8601.string)),
                 error: Nullable(copy.error.map { Copy.Problem(code: $0.code, message: $0.message) }))
        }
    }
}

/// The pipeline part of `GET /api/status`.
struct PipelineStatusBody: Encodable {
    struct LastRun: Encodable { let job_id: String; let name: String; let at: Nullable<String> }
    struct LastError: Encodable { let job_id: String; let code: String; let message: String; let step: Nullable<String>; let at: Nullable<String> }
    struct Remote: Encodable { let backups: Int; let bytes: Int64 }

    let state: String
    let running_job: Nullable<JobBody>
    let last_success: Nullable<LastRun>
    let last_error: Nullable<LastError>
    let next_run: Nullable<String>
    let next_run_trigger: Nullable<String>
    let schedule_enabled: Bool
    let stale: Bool
    let b2: Nullable<Remote>
    let coverage: Nullable<CoverageBody>
    let postponed: Nullable<String>
    let destinations: [Destination]

    struct Destination: Encodable {
        struct Verified: Encodable { let slug: String; let name: String; let at: String }
        struct Problem: Encodable { let code: String; let message: String; let at: Nullable<String> }
        let id: String
        let name: String
        let bucket: String
        let required: Bool
        let state: String
        let backups: Nullable<Int>
        let bytes: Nullable<Int64>
        let last_verified: Nullable<Verified>
        let last_error: Nullable<Problem>

        init(_ status: DestinationStatus) {
            id = status.id
            name = status.title
            bucket = status.bucket
            required = status.required
            state = status.state
            backups = Nullable(status.summary?.backups)
            bytes = Nullable(status.summary?.bytes)
            last_verified = Nullable(status.lastVerified.map { Verified(slug: $0.slug, name: $0.name, at: ISO8601.string($0.at)) })
            last_error = Nullable(status.lastError.map { Problem(code: $0.code, message: $0.message, at: Nullable(status.lastErrorAt.map(ISO8601.string))) })
        }
    }

    struct CoverageBody: Encodable {
        struct Component: Encodable { let slug: String; let name: String; let included: Bool }
        let backup: String
        let name: String
        let components: [Component]
        let notes: [String]
    }

    init(_ status: PipelineStatus) {
        state = status.state
        running_job = Nullable(status.runningJob.map(JobBody.init))
        last_success = Nullable(status.lastSuccess.map { LastRun(job_id: $0.id, name: $0.plan.name, at: Nullable($0.finishedAt.map(ISO8601.string))) })
        last_error = Nullable(status.lastFailure.flatMap { job in
            job.error.map { LastError(job_id: job.id, code: $0.code, message: $0.message, step: Nullable($0.step?.rawValue),
                                      at: Nullable(job.finishedAt.map(ISO8601.string))) }
        })
        next_run = Nullable(status.nextRun.map(ISO8601.string))
        next_run_trigger = Nullable(status.nextTrigger)
        schedule_enabled = status.scheduleEnabled
        stale = status.stale
        b2 = Nullable(status.remote.map { Remote(backups: $0.backups, bytes: $0.bytes) })
        coverage = Nullable(status.coverage.map { coverage in
            CoverageBody(backup: coverage.backup, name: coverage.backupName,
                         components: coverage.components.map { .init(slug: $0.slug, name: $0.name, included: $0.included) }, notes: coverage.notes)
        })
        postponed = Nullable(status.postponed)
        destinations = status.destinations.map(Destination.init)
    }
}

/// `POST /api/backups`, `GET /api/jobs`, `GET /api/jobs/{id}`.
struct PipelineRoutes: Sendable {
    let pipeline: Pipeline?
    let access: APIAccess
    /// Options still missing before backups can run (shown when `pipeline` is nil).
    let missingOptions: [String]

    /// A manual run's body is a handful of fields.
    static let requestBodyLimit = 16 * 1024

    func register(_ router: inout Router) {
        router.post("/api/backups", bodyLimit: Self.requestBodyLimit) { request in
            try access.authorize(request)
            let pipeline = try available()
            let bytes = try await request.body.collect()
            let body = try Self.backupRequest(bytes)
            let job: Job
            do throws(EngineRefusal) {
                job = try await pipeline.startManual(body)
            } catch {
                throw Self.httpError(error)
            }
            var response = try HTTPResponse.json(StartedBody(job_id: job.id, job: JobBody(job)), status: .accepted)
            response.headers.add("Location", "/api/jobs/\(job.id)")
            return response
        }
        for (action, pullOnly) in [("restore", false), ("pull", true)] {
            router.post("/api/backups/:slug/\(action)", bodyLimit: Self.requestBodyLimit) { request in
                try access.authorize(request)
                let pipeline = try available()
                let options = try Self.restoreOptions(try await request.body.collect(), pullOnly: pullOnly)
                let job: Job
                do throws(EngineRefusal) {
                    job = try await pipeline.startRestore(slug: request.pathParameters["slug"] ?? "", options, pullOnly: pullOnly,
                                                          prefix: request.query("prefix").flatMap { $0.isEmpty ? nil : $0 })
                } catch {
                    throw Self.httpError(error)
                }
                var response = try HTTPResponse.json(StartedBody(job_id: job.id, job: JobBody(job)), status: .accepted)
                response.headers.add("Location", "/api/jobs/\(job.id)")
                return response
            }
        }
        router.get("/api/jobs") { request in
            try access.authorize(request)
            let pipeline = try available()
            let limit: Int
            if let text = request.query("limit") {
                guard let value = Int(text), (1...500).contains(value) else {
                    throw HTTPError(.badRequest, code: "invalid_request", message: "'limit' is a whole number from 1 to 500")
                }
                limit = value
            } else {
                limit = 50
            }
            let jobs = try await pipeline.history(limit: limit)
            return try .json(JobList(jobs: jobs.map(JobBody.init)))
        }
        router.get("/api/jobs/:id") { request in
            try access.authorize(request)
            let pipeline = try available()
            let id = request.pathParameters["id"] ?? ""
            guard let job = try await pipeline.engine.job(id: id) else {
                throw HTTPError(.notFound, code: "job_not_found", message: "no job with id '\(id)'")
            }
            return try .json(JobBody(job))
        }
    }

    static let requestFields: Set<String> = ["name", "type", "exclude_addons", "exclude_folders", "exclude_database"]

    /// The run's overrides; unknown fields are refused, so a typo does not silently back up the wrong things.
    static func backupRequest(_ bytes: [UInt8]) throws(HTTPError) -> BackupRequest {
        try strictDecode(bytes, fields: requestFields, empty: BackupRequest(),
                         shape: "'type' is full or partial, 'exclude_addons' and 'exclude_folders' are lists of strings, 'exclude_database' is true or false")
    }

    static let restoreFields: Set<String> = ["type", "password", "homeassistant", "addons", "folders", "source"]

    /// A restore's body (empty for a pull or a full restore); unknown fields are refused.
    static func restoreOptions(_ bytes: [UInt8], pullOnly: Bool) throws(HTTPError) -> RestoreOptions {
        if pullOnly {
            // A pull only chooses where to download from.
            return try strictDecode(bytes, fields: ["source"], empty: RestoreOptions(), shape: "'source' is auto, b2 or s3")
        }
        return try strictDecode(bytes, fields: restoreFields, empty: RestoreOptions(),
                                shape: "'type' is full or partial, 'password' a string, 'homeassistant' true or false, 'addons' and 'folders' lists of strings, 'source' auto, b2 or s3")
    }

    static func isBlank(_ bytes: [UInt8]) -> Bool { bytes.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 } }

    /// A JSON object body with only `fields`, none of them null (a typo or a null must not silently fall
    /// back to the options); a blank body is `empty`.
    static func strictDecode<T: Decodable>(_ bytes: [UInt8], fields: Set<String>, empty: T, shape: String) throws(HTTPError) -> T {
        if isBlank(bytes) { return empty }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw HTTPError(.badRequest, code: "invalid_json", message: "the body must be a JSON object")
        }
        if let unknown = object.keys.sorted().first(where: { !fields.contains($0) }) {
            throw HTTPError(.badRequest, code: "invalid_request", message: "unknown field '\(unknown)'; the fields are \(fields.sorted().joined(separator: ", "))")
        }
        if let null = object.keys.sorted().first(where: { object[$0] is NSNull }) {
            throw HTTPError(.badRequest, code: "invalid_request", message: "'\(null)' is null; leave it out instead")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw HTTPError(.badRequest, code: "invalid_request", message: "the body is not valid: \(shape)")
        }
    }

    struct StartedBody: Encodable { let job_id: String; let job: JobBody }
    struct JobList: Encodable { let jobs: [JobBody] }

    private func available() throws(HTTPError) -> Pipeline {
        guard let pipeline else {
            throw HTTPError(.serviceUnavailable, code: "not_configured",
                            message: "backups cannot run until these options are set: \(missingOptions.joined(separator: ", "))")
        }
        return pipeline
    }

    static func httpError(_ refusal: EngineRefusal) -> any Error {
        switch refusal {
        case .jobRunning(let id): JobRunningError(jobID: id)
        case .invalidRequest(let error): HTTPError(.badRequest, code: error.code, message: error.message)
        case .notConfigured(let missing):
            HTTPError(.serviceUnavailable, code: "not_configured", message: "backups cannot run until these options are set: \(missing.joined(separator: ", "))")
        case .notFound(let slug): HTTPError(.notFound, code: "not_found", message: "no backup with slug '\(slug)' in B2 or in Home Assistant")
        }
    }
}

/// 409 with the running job's id: `{"error": {"code": "job_running", "message", "job_id"}}`.
struct JobRunningError: HTTPResponseError {
    let jobID: String
    var response: HTTPResponse {
        struct Body: Encodable {
            struct Detail: Encodable { let code: String; let message: String; let job_id: String }
            let error: Detail
        }
        let body = Body(error: .init(code: "job_running", message: "a backup job is already running; wait for it to finish", job_id: jobID))
        return (try? HTTPResponse.json(body, status: .conflict)) ?? HTTPResponse(.conflict)
    }
}
