import Core
import Foundation
import HTTPServer

/// A check of the setup, for the page's "setup check" (credentials, bucket, prefix, Object Lock, lifecycle
/// rules, unfinished uploads, the Supervisor). The app implements it; each line says how to fix a failure.
public protocol SetupChecking: Sendable {
    func run() async -> [SetupCheckResult]
}

public struct SetupCheckResult: Sendable, Encodable, Hashable {
    public let id: String
    public let ok: Bool
    public let title: String
    public let detail: String
    /// What to do when `ok` is false (empty when it is true).
    public let fix: String

    public init(id: String, ok: Bool, title: String, detail: String, fix: String = "") {
        self.id = id
        self.ok = ok
        self.title = title
        self.detail = detail
        self.fix = fix
    }
}

/// `GET /api/events` (Server-Sent Events), `GET /metrics` (Prometheus), `GET /api/setup-check`,
/// `POST /api/backups/{slug}/verify`.
struct LiveRoutes: Sendable {
    let pipeline: Pipeline?
    let access: APIAccess
    let setupCheck: (any SetupChecking)?
    /// The status document, as `GET /api/status` writes it.
    let status: @Sendable () async throws -> [UInt8]
    /// Seconds between keep-alive comments on an idle event stream.
    let keepAliveInterval: Duration

    func register(_ router: inout Router) {
        router.get("/api/events") { request in
            try access.authorize(request)
            guard let pipeline else { throw HTTPError(.serviceUnavailable, code: "not_configured", message: "backups are not set up yet") }
            let (id, events) = await pipeline.events.subscribe()
            var headers = HTTPHeaders([("Content-Type", "text/event-stream"), ("Cache-Control", "no-store")])
            headers.add("X-Accel-Buffering", "no")
            return HTTPResponse(.ok, headers: headers, body: .stream(length: nil) { writer in
                let pinger = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: keepAliveInterval)
                        await pipeline.events.ping(id)
                    }
                }
                defer { pinger.cancel() }
                try await writer.write(Self.frame("status", try await status()))
                for await event in events {
                    switch event {
                    case .status: try await writer.write(Self.frame("status", try await status()))
                    case .job(let job): try await writer.write(Self.frame("job", try JSONCoding.encoder.encode(JobBody(job)).map { $0 }))
                    case .keepAlive: try await writer.write(Array(": keep-alive\n\n".utf8))
                    }
                }
            })
        }
        router.get("/metrics") { request in
            try access.authorize(request)
            return .text(await Self.metrics(pipeline), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/api/setup-check") { request in
            try access.authorize(request)
            guard let setupCheck else { throw HTTPError(.serviceUnavailable, code: "not_configured", message: "set the B2 options first") }
            struct Body: Encodable { let checks: [SetupCheckResult] }
            return try .json(Body(checks: await setupCheck.run()))
        }
        router.post("/api/backups/:slug/verify", bodyLimit: 1024) { request in
            try access.authorize(request)
            guard let pipeline, let retention = pipeline.retention else {
                throw HTTPError(.serviceUnavailable, code: "not_configured", message: "backups are not set up yet")
            }
            let slug = request.pathParameters["slug"] ?? ""
            // `?destination=s3` checks the second destination's copy; B2's by default.
            let destination = request.query("destination") ?? DestinationID.b2
            let service: RetentionService
            if destination == DestinationID.b2 {
                service = retention
            } else if let secondary = pipeline.secondaries.first(where: { $0.id == destination }) {
                service = secondary.retention
            } else {
                throw HTTPError(.notFound, code: "not_found", message: "no destination '\(destination)' is configured")
            }
            let known: Bool
            do throws(PortError) { known = try await service.snapshot().entry(slug: slug) != nil } catch {
                throw HTTPError(HTTPStatus(502, "Bad Gateway"), code: error.code, message: error.message)
            }
            guard known else { throw HTTPError(.notFound, code: "not_found", message: "no backup with slug '\(slug)' in \(destination == DestinationID.b2 ? "B2" : "S3")") }
            // Long: the whole backup may be read back. The result lands in the catalog (GET /api/backups,
            // last_check) and, when it fails, in the failure notification and `b2_backup_verify_failed`.
            Task { await pipeline.checkRestorability(slug: slug, destination: destination) }
            struct Body: Encodable { let slug: String; let status: String }
            return try .json(Body(slug: slug, status: "started"), status: .accepted)
        }
    }

    /// One SSE frame: `event:` and a single-line JSON `data:`.
    static func frame(_ event: String, _ json: [UInt8]) -> [UInt8] {
        Array("event: \(event)\ndata: ".utf8) + json + Array("\n\n".utf8)
    }

    /// Prometheus text exposition format 0.0.4.
    static func metrics(_ pipeline: Pipeline?) async -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for sample in samples { lines.append(name + sample.labels + " " + sample.value) }
        }
        metric("b2_backup_up", "gauge", "1 when the add-on is running; the pipeline is set up when b2_backup_configured is 1.", [("", "1")])
        metric("b2_backup_configured", "gauge", "1 when the B2 options are set and backups can run.", [("", pipeline == nil ? "0" : "1")])
        guard let pipeline else { return lines.joined(separator: "\n") + "\n" }
        let status = await pipeline.status()
        let metrics = await pipeline.metrics()
        func seconds(_ date: Date?) -> String { date.map { String(Int64($0.timeIntervalSince1970)) } ?? "0" }
        metric("b2_backup_last_success_timestamp_seconds", "gauge", "When the last backup reached B2 and was verified (0: never).",
               [("", seconds(metrics.lastSuccess?.finishedAt))])
        metric("b2_backup_last_run_duration_seconds", "gauge", "How long the last finished backup run took.",
               [("", String(format: "%.3f", metrics.lastRun?.duration ?? 0))])
        metric("b2_backup_last_run_success", "gauge", "1 when the last finished backup run succeeded.", [("", metrics.lastRun?.state == .done ? "1" : "0")])
        metric("b2_backup_runs_total", "counter", "Finished backup runs by result.",
               [("{result=\"success\"}", String(metrics.runs["success"] ?? 0)), ("{result=\"failed\"}", String(metrics.runs["failed"] ?? 0))])
        metric("b2_backup_uploaded_bytes_total", "counter", "Bytes of backups uploaded to B2 by successful runs.", [("", String(metrics.bytesUploaded))])
        metric("b2_backup_b2_backups", "gauge", "Backups stored under the prefix in B2.", [("", String(status.remote?.backups ?? 0))])
        metric("b2_backup_b2_bytes", "gauge", "Bytes stored under the prefix in B2.", [("", String(status.remote?.bytes ?? 0))])
        metric("b2_backup_stale", "gauge", "1 when no backup succeeded within stale_after_hours.", [("", status.stale ? "1" : "0")])
        metric("b2_backup_running", "gauge", "1 while a job runs.", [("", status.runningJob == nil ? "0" : "1")])
        metric("b2_backup_next_run_timestamp_seconds", "gauge", "When the next scheduled backup runs (0: none).", [("", seconds(status.nextRun))])
        // Per destination (B2 and the optional S3-compatible one), labelled by its id.
        func perDestination(_ value: (DestinationStatus) -> String) -> [(labels: String, value: String)] {
            status.destinations.map { ("{destination=\"\($0.id)\"}", value($0)) }
        }
        metric("b2_backup_destination_ok", "gauge", "1 when the destination's copy of the last run was verified; 0 when failing or not yet known.",
               perDestination { $0.state == "ok" ? "1" : "0" })
        metric("b2_backup_destination_backups", "gauge", "Backups stored in the destination under its prefix.", perDestination { String($0.summary?.backups ?? 0) })
        metric("b2_backup_destination_bytes", "gauge", "Bytes stored in the destination under its prefix.", perDestination { String($0.summary?.bytes ?? 0) })
        metric("b2_backup_destination_last_verified_timestamp_seconds", "gauge", "When the destination last received a verified copy (0: never).",
               perDestination { seconds($0.lastVerified?.at) })
        return lines.joined(separator: "\n") + "\n"
    }
}
