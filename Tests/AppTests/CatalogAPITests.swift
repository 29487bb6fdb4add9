import Core
import Foundation
import HTTPClient
import SupervisorSimulator
import Testing
@testable import App

/// The catalog and retention endpoints on a real socket, against both simulators.
@Suite(.timeLimit(.minutes(2)))
struct CatalogAPITests {
    let bearer = [("Authorization", "Bearer \(PipelineHarness.apiToken)")]

    func json(_ response: HTTPClientResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    @Test func listPinPreviewAndDeleteOverREST() async throws {
        try await withHarness(options: { $0.keepLast = 1; $0.keepDaily = 0; $0.keepWeekly = 0; $0.keepMonthly = 0; $0.localKeepLast = 0 }) { harness in
            let pipeline = try await harness.pipeline()
            let first = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id))
            let firstSlug = try #require(first.slug)
            let localOnly = try await harness.supervisor.addExistingBackup(name: "Made by Home Assistant", date: PipelineHarness.start.addingTimeInterval(-86_400))
            try await withWebApp(harness, pipeline: pipeline) { base, client in
                let listed = try json(try await client.send(.init(url: base + "/api/backups", headers: bearer)))
                let backups = try #require(listed["backups"] as? [[String: Any]])
                #expect(backups.map { $0["slug"] as? String } == [firstSlug, localOnly])
                let newest = backups[0]
                #expect(newest["locations"] as? [String] == ["b2", "local"])
                #expect(newest["pinned"] as? Bool == false)
                #expect(newest["verified_at"] is String)
                #expect((newest["b2"] as? [String: Any])?["made_by_addon"] as? Bool == true)
                #expect((newest["would_delete"] as? [String: Any])?["b2"] as? Bool == false)
                #expect(backups[1]["locations"] as? [String] == ["local"])
                #expect(backups[1]["b2"] is NSNull)

                let pinned = try await client.send(.init(method: "POST", url: base + "/api/backups/\(firstSlug)/pin", headers: bearer))
                #expect(pinned.status == 200)
                let preview = try json(try await client.send(.init(url: base + "/api/retention/preview", headers: bearer)))
                let b2 = try #require(preview["b2"] as? [[String: Any]])
                #expect(b2.first?["keep"] as? Bool == true)
                #expect((b2.first?["reasons"] as? [String])?.contains("pinned") == true)
                #expect(preview["local"] is [[String: Any]])

                let refused = try await client.send(.init(method: "DELETE", url: base + "/api/backups/\(firstSlug)?location=b2", headers: bearer))
                #expect(refused.status == 409)
                #expect((try json(refused)["error"] as? [String: Any])?["code"] as? String == "pinned")
                let noCopy = try await client.send(.init(method: "DELETE", url: base + "/api/backups/\(localOnly)?location=local", headers: bearer))
                #expect(noCopy.status == 409)
                #expect((try json(noCopy)["error"] as? [String: Any])?["code"] as? String == "no_verified_copy")
                let badLocation = try await client.send(.init(method: "DELETE", url: base + "/api/backups/\(firstSlug)?location=moon", headers: bearer))
                #expect(badLocation.status == 400)
                let missing = try await client.send(.init(method: "DELETE", url: base + "/api/backups/nope", headers: bearer))
                #expect(missing.status == 404)

                let forced = try await client.send(.init(method: "DELETE", url: base + "/api/backups/\(localOnly)?location=local&force=true", headers: bearer))
                #expect(forced.status == 200)
                #expect(await !harness.supervisor.backups().contains { $0.slug == localOnly })
                let unpinned = try await client.send(.init(method: "POST", url: base + "/api/backups/\(firstSlug)/unpin", headers: bearer))
                #expect(unpinned.status == 200)
                let anonymous = try await client.send(.init(url: base + "/api/backups"))
                #expect(anonymous.status == 401)
            }
        }
    }
}
