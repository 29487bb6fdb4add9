import Foundation
import SupervisorSimulator
import Testing

/// `/core/api/…`: the proxy's own access check and what the simulated Core answers.
@Suite(.timeLimit(.minutes(1)))
struct CoreProxyTests {
    @Test func statesAreCreatedThenUpdatedAndRecorded() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let body: JSONValue = ["state": "ok", "attributes": ["friendly_name": "B2 backup", "bytes": 1234, "last_upload": nil]]
            let created = try await harness.send("POST", "/core/api/states/sensor.b2_backup_last_run", json: body)
            #expect(created.status == 201)
            #expect(created.header("Location") == "/api/states/sensor.b2_backup_last_run")
            #expect(created.json?["entity_id"] == "sensor.b2_backup_last_run")
            #expect(created.json?["state"] == "ok")
            #expect(created.json?["attributes"]?["bytes"] == 1234)
            for key in ["last_changed", "last_reported", "last_updated", "context"] {
                #expect(created.json?[key] != nil, "missing \(key)")
            }
            let updated = try await harness.send("POST", "/core/api/states/sensor.b2_backup_last_run", json: ["state": 42])
            #expect(updated.status == 200)
            #expect(updated.json?["state"] == "42") // Core stores str(state)
            #expect(updated.json?["attributes"] == [:])

            let read = try await harness.send("GET", "/core/api/states/sensor.b2_backup_last_run")
            #expect(read.json?["state"] == "42")
            let states = await harness.supervisor.states()
            #expect(states["sensor.b2_backup_last_run"]?.state == "42")
            #expect(try await harness.send("GET", "/core/api/states/sensor.nothing").json == ["message": "Entity not found."])

            let calls = await harness.supervisor.coreCalls()
            #expect(calls.map(\.method) == ["POST", "POST", "GET", "GET"])
            #expect(calls.first?.path == "/core/api/states/sensor.b2_backup_last_run")
            #expect(calls.first?.body == body)
            #expect(calls.map(\.status) == [201, 200, 200, 404])
        }
    }

    @Test func coreRefusesBadStates() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let badID = try await harness.send("POST", "/core/api/states/Sensor.Bad", json: ["state": "x"])
            #expect(badID.status == 400)
            #expect(badID.json == ["message": "Invalid entity ID specified."])
            let noState = try await harness.send("POST", "/core/api/states/sensor.x", json: ["attributes": [:]])
            #expect(noState.json == ["message": "No state specified."])
            let long = try await harness.send("POST", "/core/api/states/sensor.x", json: ["state": .string(String(repeating: "x", count: 256))])
            #expect(long.json == ["message": "Invalid state specified."])
        }
    }

    @Test func notificationsAndNotifyServices() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let create = try await harness.send("POST", "/core/api/services/persistent_notification/create",
                                                json: ["title": "B2 Backup", "message": "Upload failed", "notification_id": "b2_backup_failure"])
            #expect(create.status == 200)
            #expect(create.json == [])
            #expect(await harness.supervisor.notifications()["b2_backup_failure"]?.message == "Upload failed")
            let dismiss = try await harness.send("POST", "/core/api/services/persistent_notification/dismiss", json: ["notification_id": "b2_backup_failure"])
            #expect(dismiss.status == 200)
            #expect(await harness.supervisor.notifications().isEmpty)

            #expect(try await harness.send("POST", "/core/api/services/notify/mobile_app_phone", json: ["message": "Done"]).status == 200)
            // A notify service that does not exist, or data its schema refuses: aiohttp's plain 400.
            let unknown = try await harness.send("POST", "/core/api/services/notify/mobile_app_gone", json: ["message": "Done"])
            #expect(unknown.status == 400)
            #expect(unknown.text == "400: Bad Request")
            #expect(try await harness.send("POST", "/core/api/services/persistent_notification/create", json: ["title": "no message"]).status == 400)
            let response = try await harness.send("POST", "/core/api/services/notify/persistent_notification?return_response", json: ["message": "x"])
            #expect(response.json == ["message": "Service does not support responses. Remove return_response from request."])
        }
    }

    @Test func eventsAreFired() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let fired = try await harness.send("POST", "/core/api/events/b2_backup_finished", json: ["slug": "abc", "bytes": 10])
            #expect(fired.status == 200)
            #expect(fired.json == ["message": "Event b2_backup_finished fired."])
            let notObject = try await harness.send("POST", "/core/api/events/x", json: [1, 2])
            #expect(notObject.json == ["message": "Event data should be a JSON object"])
            #expect(await harness.supervisor.coreCalls().first?.body == ["slug": "abc", "bytes": 10])
        }
    }

    @Test func theProxyReadsBearerOrXHaAccessOnly() async throws {
        try await withSupervisor { (harness: Harness) async throws in
            let path = "/core/api/states"
            #expect(try await harness.send("GET", path, headers: [("Authorization", "Bearer test-token")]).status == 200)
            #expect(try await harness.send("GET", path, headers: [("X-Ha-Access", "test-token")]).status == 200)
            // X-Supervisor-Token is not read by the proxy; no or a wrong token is 401 there.
            for headers in [[("X-Supervisor-Token", "test-token")], [], [("Authorization", "Bearer wrong")]] {
                let refused = try await harness.send("GET", path, headers: headers)
                #expect(refused.status == 401)
                #expect(refused.text == "401: Unauthorized")
            }
            // hassio paths are blocked for everyone.
            let blocked = try await harness.send("GET", "/core/api/hassio/backups")
            #expect(blocked.status == 403)
            #expect(blocked.text == "403: Forbidden")
            #expect(await harness.supervisor.coreCalls().count == 2)
        }
    }

    @Test func withoutHomeassistantAPITheProxyRefuses() async throws {
        try await withSupervisor(.make(homeassistantAPI: false)) { (harness: Harness) async throws in
            let refused = try await harness.send("POST", "/core/api/events/x", json: [:])
            #expect(refused.status == 401) // `_check_access` raises HTTPUnauthorized for an add-on without the permission
            #expect(await harness.supervisor.coreCalls().isEmpty)
        }
    }
}
