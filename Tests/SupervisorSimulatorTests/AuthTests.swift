import Foundation
import SupervisorSimulator
import Testing

/// The security middleware: tokens, roles, plain-text refusals; and the info endpoints every add-on reads.
@Suite(.timeLimit(.minutes(1)))
struct AuthTests {
    @Test func missingTokenIs401AndWrongTokenIs403InPlainText() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let missing = try await harness.send("GET", "/backups", headers: [])
            #expect(missing.status == 401)
            #expect(missing.text == "401: Unauthorized")
            #expect(missing.header("Content-Type")?.hasPrefix("text/plain") == true)
            let empty = try await harness.send("GET", "/backups", headers: [("X-Supervisor-Token", "")])
            #expect(empty.status == 401)
            let wrong = try await harness.send("GET", "/backups", headers: [("Authorization", "Bearer nope")])
            #expect(wrong.status == 403)
            #expect(wrong.text == "403: Forbidden")
            // Unknown paths are checked before the 404.
            #expect(try await harness.send("GET", "/no/such/path", headers: []).status == 401)
            #expect(await harness.supervisor.requestCount("/backups") == 3)
        }
    }

    @Test(arguments: ["X-Supervisor-Token", "X-Hassio-Key", "Authorization"])
    func everyTokenHeaderIsAccepted(header: String) async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let value = header == "Authorization" ? "Bearer test-token" : "test-token"
            let reply = try await harness.send("GET", "/backups", headers: [(header, value)])
            #expect(reply.status == 200)
            #expect(reply.json == ["result": "ok", "data": ["backups": []]])
        }
    }

    @Test func theBackupRoleReachesBackupsAndInfoOnly() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let jobID = try #require(try await harness.ok("POST", "/backups/new/full", ["background": true])["job_id"]?.stringValue)
            await harness.supervisor.waitForIdle()
            #expect(try await harness.get("/jobs/info").status == 200)
            // `/jobs/{uuid}` needs the manager role.
            let job = try await harness.get("/jobs/\(jobID)")
            #expect(job.status == 403)
            #expect(job.text == "403: Forbidden")
            for path in ["/mounts", "/store", "/addons", "/host/reboot", "/core/restart", "/nothing"] {
                #expect(try await harness.get(path).status == 403, "\(path)")
            }
            for path in ["/info", "/addons/self/info", "/core/info", "/supervisor/info", "/backups/info"] {
                #expect(try await harness.get(path).status == 200, "\(path)")
            }
            // Inside the role's paths an unknown route is aiohttp's 404, a wrong method its 405.
            let unknown = try await harness.get("/backups/abc/def/ghi")
            #expect(unknown.status == 404)
            #expect(unknown.text == "404: Not Found")
            let method = try await harness.send("PUT", "/backups", body: [])
            #expect(method.status == 405)
            #expect(method.text == "405: Method Not Allowed")
        }
    }

    @Test func theManagerRoleMayReadOneJob() async throws {
        try await withSupervisor(.make(role: "manager")) { (harness: Harness) async throws in
            let jobID = try #require(try await harness.ok("POST", "/backups/new/full", ["background": true])["job_id"]?.stringValue)
            await harness.supervisor.waitForIdle()
            let job = try await harness.ok("GET", "/jobs/\(jobID)")
            #expect(job["uuid"] == .string(jobID))
            #expect(job["done"] == true)
            #expect(try await harness.get("/jobs/0000").status == 404)
        }
    }

    @Test func withoutHassioAPIOnlyTheBypassPathsWork() async throws {
        try await withSupervisor(.make(hassioAPI: false)) { (harness: Harness) async throws in
            #expect(try await harness.get("/backups").status == 403)
            #expect(try await harness.get("/jobs/info").status == 403)
            #expect(try await harness.get("/info").status == 200)
            #expect(try await harness.get("/addons/self/info").status == 200)
        }
    }

    @Test func infoEndpointsDescribeTheInstallation() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let info = try await harness.ok("GET", "/info")
            #expect(info["timezone"] == "Europe/Amsterdam")
            #expect(info["homeassistant"] == "2026.11.2")
            #expect(info["supervisor"] == "2026.08.0")
            #expect(info["state"] == "running")
            for key in ["hassos", "docker", "hostname", "operating_system", "features", "machine", "arch", "supported_arch", "supported", "channel", "logging"] {
                #expect(info[key] != nil, "missing \(key)")
            }
            let me = try await harness.ok("GET", "/addons/self/info")
            #expect(me["slug"] == "local_b2_backup")
            #expect(me["hassio_role"] == "backup")
            #expect(me["homeassistant_api"] == true)
            #expect(me["ingress_port"] == 8099)
            #expect(me["state"] == "started")
            let core = try await harness.ok("GET", "/core/info")
            #expect(core["version"] == "2026.11.2")
            let jobs = try await harness.ok("GET", "/jobs/info")
            #expect(jobs == ["ignore_conditions": [], "jobs": []])
        }
    }

    @Test func demoConfigurationHasTheDemoTokenAndAddons() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("demo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = SupervisorSimulator.demoConfiguration(backupDirectory: directory)
        #expect(configuration.token == "demo-supervisor-token")
        #expect(configuration.role == "backup")
        let slugs = configuration.installedAddons.map(\.slug)
        #expect(slugs.contains("core_mosquitto"))
        #expect(slugs.contains { $0.hasSuffix("_zigbee2mqtt") })
        try await withSupervisor(configuration) { (harness: Harness) async throws in
            #expect(try await harness.get("/backups").status == 200)
        }
    }
}
