import Core
import Foundation
import HTTPClient
import SupervisorSimulator
import Testing
@testable import App

/// `POST /api/backups`, `GET /api/jobs/{id}`, `GET /api/jobs`, `GET /api/status` on a real socket, against both simulators.
@Suite(.timeLimit(.minutes(2)))
struct PipelineAPITests {
    let bearer = [("Authorization", "Bearer \(PipelineHarness.apiToken)")]

    func json(_ response: HTTPClientResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    /// The keys the OpenAPI document says a schema always has.
    func requiredKeys(_ schema: String) throws -> Set<String> {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/WebAPI/Web/api/openapi.json")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        return Set(try #require((schemas[schema] as? [String: Any])?["required"] as? [String]))
    }

    @Test func aBackupStartedOverRESTCanBeFollowedToDone() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            try await withWebApp(harness, pipeline: pipeline) { base, client in
                let started = try await client.send(.init(method: "POST", url: base + "/api/backups", headers: bearer + [("Content-Type", "application/json")],
                                                          body: Array(#"{"name": "Before the upgrade", "exclude_folders": ["media"]}"#.utf8)))
                #expect(started.status == 202)
                let id = try #require(try json(started)["job_id"] as? String)
                #expect(started.header("Location") == "/api/jobs/\(id)")

                _ = await pipeline.engine.wait(for: id)
                let response = try await client.send(.init(url: base + "/api/jobs/\(id)", headers: bearer))
                #expect(response.status == 200)
                let job = try json(response)
                #expect(Set(job.keys).isSuperset(of: try requiredKeys("Job")))
                #expect(job["state"] as? String == "done")
                #expect(job["step"] as? String == "done")
                #expect(job["error"] is NSNull)
                #expect((job["backup"] as? [String: Any])?["name"] as? String == "Before the upgrade")
                let slug = await harness.supervisor.backups().first?.slug
                #expect((job["backup"] as? [String: Any])?["slug"] as? String == slug)
                let total = try #require(job["bytes_total"] as? Int)
                #expect(total > 0 && job["bytes_done"] as? Int == total)
                #expect(await harness.supervisor.backups().first?.content.folders.contains("media") == false)

                let history = try json(try await client.send(.init(url: base + "/api/jobs?limit=5", headers: bearer)))
                #expect((history["jobs"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])

                let status = try json(try await client.send(.init(url: base + "/api/status", headers: bearer)))
                #expect(Set(status.keys).isSuperset(of: try requiredKeys("Status")))
                #expect(status["state"] as? String == "idle")
                #expect((status["last_success"] as? [String: Any])?["job_id"] as? String == id)
                #expect(status["last_error"] is NSNull)
                #expect((status["b2"] as? [String: Any])?["backups"] as? Int == 1)
            }
        }
    }

    @Test func aSecondRequestWhileOneRunsIs409WithTheRunningJob() async throws {
        try await withHarness(supervisor: { $0.jobDuration = .milliseconds(500) }) { harness in
            let pipeline = try await harness.pipeline()
            try await withWebApp(harness, pipeline: pipeline) { base, client in
                let first = try json(try await client.send(.init(method: "POST", url: base + "/api/backups", headers: bearer)))
                let second = try await client.send(.init(method: "POST", url: base + "/api/backups", headers: bearer))
                #expect(second.status == 409)
                let error = try #require(try json(second)["error"] as? [String: Any])
                #expect(error["code"] as? String == "job_running")
                #expect(error["job_id"] as? String == first["job_id"] as? String)
                #expect((error["message"] as? String)?.isEmpty == false)
                let running = try json(try await client.send(.init(url: base + "/api/status", headers: bearer)))
                #expect((running["running_job"] as? [String: Any])?["id"] as? String == first["job_id"] as? String)
                _ = await pipeline.engine.wait(for: first["job_id"] as? String ?? "")
                #expect(await harness.supervisor.backups().count == 1)
            }
        }
    }

    @Test(arguments: [
        (#"{"type": "weekly"}"#, "invalid_request"),
        (#"{"exclude_folders": ["homeassistant"]}"#, "invalid_request"),
        (#"{"exclude_addon": ["core_mosquitto"]}"#, "invalid_request"), // a typo is refused, not ignored
        (#"{"exclude_database": "yes"}"#, "invalid_request"),
        (#"{"name": ""}"#, "invalid_request"),
        (#"{"exclude_database": null}"#, "invalid_request"),
        (#"["full"]"#, "invalid_json"),
        (#"{"name": "#, "invalid_json"),
    ])
    func invalidBodiesAre400AndStartNothing(body: String, code: String) async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            try await withWebApp(harness, pipeline: pipeline) { base, client in
                let response = try await client.send(.init(method: "POST", url: base + "/api/backups", headers: bearer, body: Array(body.utf8)))
                #expect(response.status == 400)
                #expect((try json(response)["error"] as? [String: Any])?["code"] as? String == code)
                #expect(await pipeline.engine.runningJob == nil)
                #expect(await harness.supervisor.requestCount("/backups/new/full") == 0)
            }
        }
    }

    @Test func callersOutsideIngressNeedTheToken() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            try await withWebApp(harness, pipeline: pipeline) { base, client in
                for (method, path) in [("POST", "/api/backups"), ("GET", "/api/jobs/x"), ("GET", "/api/jobs"), ("GET", "/api/status")] {
                    let anonymous = try await client.send(.init(method: method, url: base + path))
                    #expect(anonymous.status == 401, "\(path)")
                    let wrong = try await client.send(.init(method: method, url: base + path, headers: [("Authorization", "Bearer not-the-token-but-long-enough")]))
                    #expect(wrong.status == 401, "\(path)")
                }
                let health = try await client.send(.init(url: base + "/health"))
                #expect(health.status == 200)
                let unknown = try await client.send(.init(url: base + "/api/jobs/nope", headers: bearer))
                #expect(unknown.status == 404)
                #expect(await harness.supervisor.requestCount("/backups/new/full") == 0)
            }
            // From the ingress proxy's address no token is needed.
            try await withWebApp(harness, pipeline: pipeline, ingressProxy: "127.0.0.1") { base, client in
                let response = try await client.send(.init(method: "POST", url: base + "/api/backups"))
                #expect(response.status == 202)
                _ = await pipeline.engine.wait(for: try json(response)["job_id"] as? String ?? "")
            }
        }
    }

    @Test func withoutCredentialsBackupsAre503NotConfigured() async throws {
        try await withHarness { harness in
            try await withWebApp(harness, pipeline: nil) { base, client in
                let response = try await client.send(.init(method: "POST", url: base + "/api/backups", headers: bearer))
                #expect(response.status == 503)
                #expect((try json(response)["error"] as? [String: Any])?["code"] as? String == "not_configured")
                let status = try json(try await client.send(.init(url: base + "/api/status", headers: bearer)))
                #expect(status["state"] as? String == "not_configured")
            }
        }
    }
}

/// `sensor.b2_backup`, `binary_sensor.b2_backup_stale` and the stale alert, driven by the manual clock.
@Suite(.timeLimit(.minutes(2)))
struct HomeAssistantSurfaceTests {
    @Test func theSensorIsPublishedAgainAfterHomeAssistantRestarts() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            _ = await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id)
            let reporter = try #require(pipeline.reporter)
            await reporter.check()
            let before = await harness.supervisor.coreCalls().filter { $0.path == "/core/api/states/sensor.b2_backup" && $0.method == "POST" }.count
            await reporter.check() // nothing changed: nothing posted
            #expect(await harness.supervisor.coreCalls().filter { $0.path == "/core/api/states/sensor.b2_backup" && $0.method == "POST" }.count == before)

            await harness.supervisor.restartCore()
            #expect(await harness.supervisor.states()["sensor.b2_backup"] == nil)
            await reporter.check()
            let sensor = try #require(await harness.supervisor.states()["sensor.b2_backup"])
            #expect(sensor.state == "idle")
            #expect(sensor.attributes["last_success"]?.stringValue != nil)
            #expect(sensor.attributes["backups_in_b2"]?.intValue == 1)
            #expect(await harness.supervisor.states()["binary_sensor.b2_backup_stale"]?.state == "off")
        }
    }

    @Test func whileCoreIsDownTheSensorIsPostedOnceItIsBack() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            let reporter = try #require(pipeline.reporter)
            await harness.supervisor.faults.coreUnavailable(times: 2)
            await reporter.check() // 502: remembered
            #expect(await harness.supervisor.states()["sensor.b2_backup"] == nil)
            await reporter.check()
            await reporter.check()
            #expect(await harness.supervisor.states()["sensor.b2_backup"]?.state == "idle")
        }
    }

    @Test func noSuccessForStaleAfterHoursRaisesTheStaleAlertOnce() async throws {
        try await withHarness(options: { $0.staleAfterHours = 48 }) { harness in
            let pipeline = try await harness.pipeline()
            let reporter = try #require(pipeline.reporter)
            await reporter.check()
            #expect(await harness.supervisor.states()["binary_sensor.b2_backup_stale"]?.state == "off")

            harness.clock.advance(by: 47 * 3600)
            await reporter.check()
            #expect(await harness.events("b2_backup_stale").isEmpty)

            harness.clock.advance(by: 2 * 3600)
            await reporter.check()
            await reporter.check()
            #expect(await harness.supervisor.states()["binary_sensor.b2_backup_stale"]?.state == "on")
            #expect(await harness.events("b2_backup_stale").count == 1)
            #expect(await harness.supervisor.notifications()["b2_backup_stale"] != nil)
            #expect(await pipeline.status().stale)

            // A success clears it.
            _ = await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id)
            await reporter.check()
            #expect(await harness.supervisor.states()["binary_sensor.b2_backup_stale"]?.state == "off")
            #expect(await harness.supervisor.notifications()["b2_backup_stale"] == nil)
            #expect(await !pipeline.status().stale)
        }
    }
}
