import B2Simulator
import Foundation
import Glibc
import HTTPClient
import SupervisorSimulator
import Testing
import TestSupport
@testable import App

/// The real `b2-backup serve` against both simulators: killed with SIGKILL in the middle of an upload, then
/// started again, it finishes the same backup — one Home Assistant backup, one B2 object, the same bytes.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ServeKillTests {
    func start(_ harness: PipelineHarness, options: [String: Any]) async throws -> (Process, Int) {
        let data = harness.directory.appendingPathComponent("data")
        try JSONSerialization.data(withJSONObject: options).write(to: data.appendingPathComponent("options.json"))
        let process = Process()
        process.executableURL = ServeProcessTests.binary
        process.arguments = ["serve", "--data-dir", data.path, "--backup-dir", harness.backupDirectory.path, "--port", "0", "--ingress-proxy", "127.0.0.1"]
        process.environment = ["SUPERVISOR_URL": harness.supervisor.url, "SUPERVISOR_TOKEN": harness.supervisor.configuration.token,
                               "B2_API_URL": harness.b2.realmURL, "PATH": "/usr/bin:/bin"]
        let output = Pipe()
        process.standardError = output
        process.standardOutput = output
        try process.run()
        return (process, try await ServeProcessTests().listeningPort(output))
    }

    /// Polls the job the way an automation would, until `done` says so.
    func job(_ id: String, port: Int, until done: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let client = HTTPClient(logger: quiet)
        while true {
            let response = try await client.send(.init(url: "http://127.0.0.1:\(port)/api/jobs/\(id)"))
            let job = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
            if done(job) { return job }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func aBackupKilledMidUploadIsFinishedAfterTheRestart() async throws {
        guard FileManager.default.isExecutableFile(atPath: ServeProcessTests.binary.path) else {
            Issue.record("build the executable first (swift build): \(ServeProcessTests.binary.path)")
            return
        }
        try await withHarness(supervisor: { $0.backupPayloadBytes = 4 << 20 }) { harness in
            var options: [String: Any] = [
                "b2_key_id": PipelineHarness.keyID, "b2_key": PipelineHarness.applicationKey, "b2_bucket": PipelineHarness.bucket,
                "b2_prefix": "homeassistant", "upload_limit_kbps": 4000, "upload_concurrency": 2, "schedule_enabled": false,
            ]
            let (first, port) = try await start(harness, options: options)
            let started = try await HTTPClient(logger: quiet).send(.init(method: "POST", url: "http://127.0.0.1:\(port)/api/backups"))
            #expect(started.status == 202)
            let id = try #require(try JSONSerialization.jsonObject(with: Data(started.body)) as? [String: Any])["job_id"] as? String ?? ""
            let uploading = try await job(id, port: port) { ($0["state"] as? String) == "uploading" && ($0["bytes_done"] as? Int ?? 0) > 300_000 }
            kill(first.processIdentifier, SIGKILL)
            await first.exited()
            #expect(first.terminationReason == .uncaughtSignal)
            let total = uploading["bytes_total"] as? Int ?? 0
            #expect((uploading["bytes_done"] as? Int ?? 0) < total)
            #expect(await harness.objects().isEmpty)

            options["upload_limit_kbps"] = 0
            let (second, secondPort) = try await start(harness, options: options)
            let finished = try await job(id, port: secondPort) { ["done", "failed"].contains($0["state"] as? String ?? "") }
            second.terminate()
            #expect(await second.exited() == 0)
            #expect(finished["state"] as? String == "done", "\(finished["error"] ?? "")")
            #expect(await harness.supervisor.backups().count == 1)
            #expect(await harness.supervisor.requestCount("/backups/new/full") == 1)
            let objects = await harness.objects()
            #expect(objects.count == 1)
            let backup = try #require(await harness.supervisor.backups().first)
            #expect(try await harness.download(objects[0].fileName) == Data(contentsOf: backup.file))
        }
    }
}
