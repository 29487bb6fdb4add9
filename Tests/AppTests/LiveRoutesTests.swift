import Core
import Foundation
import HTTPClient
import SupervisorSimulator
import Synchronization
import Testing
import TestSupport
@testable import App

/// The event stream, the metrics and the setup check, against both simulators.
@Suite(.timeLimit(.minutes(2)))
struct LiveRoutesTests {
    let bearer = [("Authorization", "Bearer \(PipelineHarness.apiToken)")]

    @Test func theEventStreamCarriesStatusAndTheJobToItsEnd() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            try await withWebApp(harness, pipeline: pipeline) { base, client in
                let raw = try RawClient(port: harness.webPort.withLock { $0 })
                try await raw.send("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(PipelineHarness.apiToken)\r\n\r\n")
                var text = ""
                func readUntil(_ marker: String) async throws {
                    while !text.contains(marker) {
                        text += String(decoding: try await raw.receive(), as: UTF8.self)
                    }
                }
                try await readUntil("event: status\ndata: {")
                #expect(text.contains("text/event-stream"))
                let started = try await client.send(.init(method: "POST", url: base + "/api/backups", headers: bearer))
                #expect(started.status == 202)
                try await readUntil("\"state\":\"done\"")
                #expect(text.contains("event: job\ndata: {"))
                #expect(text.contains("\"state\":\"creating\""))
                try await readUntil(": keep-alive")
            }
        }
    }

    @Test func metricsSayWhatHappened() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            _ = await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id)
            try await withWebApp(harness, pipeline: pipeline) { base, client in
                let anonymous = try await client.send(.init(url: base + "/metrics"))
                #expect(anonymous.status == 401)
                let response = try await client.send(.init(url: base + "/metrics", headers: bearer))
                #expect(response.status == 200)
                #expect(response.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
                let text = response.text
                #expect(text.contains("# TYPE b2_backup_runs_total counter"))
                #expect(text.contains("b2_backup_runs_total{result=\"success\"} 1"))
                #expect(text.contains("b2_backup_b2_backups 1"))
                #expect(text.contains("b2_backup_last_run_success 1"))
                #expect(!text.contains("b2_backup_last_success_timestamp_seconds 0\n"))
                // Every sample line is `name{labels} value`.
                for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                    #expect(line.split(separator: " ").count == 2, "\(line)")
                }
            }
        }
    }

    @Test func theSetupCheckSaysWhatWorksAndHowToFixWhatDoesNot() async throws {
        try await withHarness(options: { $0.immutableDays = 7; $0.b2Deletion = "hide" }) { harness in
            let assembled = try #require(try await PipelineAssembly.assemble(settings: harness.settings(), store: harness.store(), logger: quiet))
            try await withWebApp(harness, pipeline: assembled.pipeline, setupCheck: assembled.setupCheck) { base, client in
                let response = try await client.send(.init(url: base + "/api/setup-check", headers: bearer))
                #expect(response.status == 200)
                let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
                let checks = try #require(body["checks"] as? [[String: Any]])
                var byID: [String: [String: Any]] = [:]
                for check in checks { byID[check["id"] as? String ?? ""] = check }
                #expect(Set(byID.keys) == ["key", "bucket", "prefix", "object_lock", "lifecycle", "unfinished", "supervisor"])
                #expect(byID["bucket"]?["ok"] as? Bool == true)
                #expect(byID["supervisor"]?["ok"] as? Bool == true)
                // The test key lacks the retention capabilities, the bucket has no Object Lock, and hide mode has no rule.
                #expect(byID["key"]?["ok"] as? Bool == false)
                #expect((byID["key"]?["detail"] as? String)?.contains("writeFileRetentions") == true)
                #expect(byID["object_lock"]?["ok"] as? Bool == false)
                #expect(byID["lifecycle"]?["ok"] as? Bool == false)
                #expect(checks.allSatisfy { ($0["ok"] as? Bool) == true || !(($0["fix"] as? String) ?? "").isEmpty })
            }
        }
    }

    @Test func verifyOnRequestRecordsTheCheck() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let slug = try #require(job.slug)
            let retention = try #require(pipeline.retention)
            let before = try #require(try await retention.snapshot().entry(slug: slug)?.lastCheck?.at)
            harness.clock.advance(by: 3600)
            try await withWebApp(harness, pipeline: pipeline) { base, client in
                let missing = try await client.send(.init(method: "POST", url: base + "/api/backups/nope/verify", headers: bearer))
                #expect(missing.status == 404)
                let started = try await client.send(.init(method: "POST", url: base + "/api/backups/\(slug)/verify", headers: bearer))
                #expect(started.status == 202)
            }
            // The check runs in the background; the catalog shows its result once it is done.
            while try await retention.snapshot().entry(slug: slug)?.lastCheck?.at == before { await Task.yield() }
            #expect(try await retention.snapshot().entry(slug: slug)?.lastCheck?.verdict == "restorable")
        }
    }
}

@Suite struct EventHubTests {
    @Test func closingEndsOpenAndLaterStreams() async {
        let hub = EventHub()
        let (_, events) = await hub.subscribe()
        await hub.publish(.status)
        await hub.close()
        var received = 0
        for await _ in events { received += 1 }
        #expect(received == 1)
        let (_, later) = await hub.subscribe()
        for await _ in later { Issue.record("a stream opened after close delivered an event") }
        #expect(await hub.subscriberCount == 0)
    }
}
