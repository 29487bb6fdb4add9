import Foundation
import HTTPClient
import Logging
import SupervisorClient
import SupervisorSimulator
import Testing

let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// The client against the Supervisor simulator: real sockets, real tar files.
func withSupervisor<T>(_ body: (SupervisorSimulator, SupervisorClient, URL) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("supervisor-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let backups = directory.appendingPathComponent("backup")
    try FileManager.default.createDirectory(at: backups, withIntermediateDirectories: true)
    var configuration = SupervisorSimulator.demoConfiguration(backupDirectory: backups)
    configuration.token = "test-supervisor-token"
    let simulator = try SupervisorSimulator(configuration: configuration, logger: quiet)
    simulator.start()
    let client = SupervisorClient(baseURL: simulator.url, token: "test-supervisor-token", logger: quiet)
    do {
        let result = try await body(simulator, client, directory)
        await simulator.shutdown()
        return result
    } catch {
        await simulator.shutdown()
        throw error
    }
}

@Suite(.timeLimit(.minutes(1)))
struct SupervisorClientTests {
    @Test func infoAndSelf() async throws {
        try await withSupervisor { _, client, _ in
            let info = try await client.info()
            let me = try await client.selfInfo()
            #expect(!info.timezone.isEmpty)
            #expect(!me.slug.isEmpty)
        }
    }

    @Test func fullBackupJobWritesTheNamedFile() async throws {
        try await withSupervisor { simulator, client, directory in
            let job = try await client.startBackup(NewBackup(name: "B2 test full", filename: "B2_test_full_2026-11-30_03.30_00000001.tar"))
            let done = try await client.waitForJob(job, pollInterval: .milliseconds(10))
            let slug = try #require(done.reference)
            let details = try await client.backupInfo(slug: slug)
            #expect(details.name == "B2 test full")
            #expect(details.type == "full")
            #expect(try await client.backups().contains { $0.slug == slug })
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("backup/B2_test_full_2026-11-30_03.30_00000001.tar").path))
            _ = simulator
        }
    }

    @Test func partialBackupContainsWhatWasAsked() async throws {
        try await withSupervisor { _, client, _ in
            let job = try await client.startBackup(NewBackup(name: "partial", homeassistant: true, addons: ["core_mosquitto"], folders: ["share"]))
            let slug = try #require(try await client.waitForJob(job, pollInterval: .milliseconds(10)).reference)
            let details = try await client.backupInfo(slug: slug)
            #expect(details.type == "partial")
            #expect(details.addons.map(\.slug) == ["core_mosquitto"])
            #expect(details.folders == ["share"])
        }
    }

    @Test func aFailedJobCarriesTheSupervisorsMessage() async throws {
        try await withSupervisor { simulator, client, _ in
            await simulator.faults.failNextBackup(message: "No space left on device")
            let job = try await client.startBackup(NewBackup(name: "doomed"))
            await #expect { try await client.waitForJob(job, pollInterval: .milliseconds(10)) } throws: { error in
                "\(error)".contains("No space left on device")
            }
        }
    }

    @Test func aBusySupervisorIsRefusedVerbatim() async throws {
        try await withSupervisor { simulator, client, _ in
            await simulator.faults.busy(times: 1)
            await #expect { try await client.startBackup(NewBackup(name: "busy")) } throws: { error in
                guard case .refused(_, 400, let message) = error as? SupervisorError else { return false }
                return message.contains("blocked from execution")
            }
        }
    }

    @Test func wrongTokenIsUnauthorized() async throws {
        try await withSupervisor { simulator, _, _ in
            let wrong = SupervisorClient(baseURL: simulator.url, token: "wrong", logger: quiet)
            await #expect { try await wrong.backups() } throws: { error in
                if case .unauthorized(_, 403, _) = error as? SupervisorError { return true }
                return false
            }
        }
    }

    @Test func downloadUploadRestoreDelete() async throws {
        try await withSupervisor { simulator, client, directory in
            let job = try await client.startBackup(NewBackup(name: "round trip"))
            let slug = try #require(try await client.waitForJob(job, pollInterval: .milliseconds(10)).reference)
            let copy = directory.appendingPathComponent("copy.tar").path
            let bytes = try await client.downloadBackup(slug: slug, to: copy)
            #expect(bytes > 0)
            try await client.deleteBackup(slug: slug)
            #expect(try await client.backups().isEmpty)
            let uploaded = try await client.uploadBackup(path: copy, filename: "restored_from_b2.tar")
            #expect(uploaded == slug) // the slug comes from backup.json inside the tar
            let restore = try await client.startRestore(slug: slug, RestoreRequest())
            _ = try await client.waitForJob(restore, pollInterval: .milliseconds(10))
            #expect(await simulator.restores().count == 1)
        }
    }

    @Test func droppedDownloadIsATransportError() async throws {
        try await withSupervisor { simulator, client, directory in
            let job = try await client.startBackup(NewBackup(name: "drop"))
            let slug = try #require(try await client.waitForJob(job, pollInterval: .milliseconds(10)).reference)
            await simulator.faults.dropDownload(afterBytes: 1000, times: 1)
            await #expect { try await client.downloadBackup(slug: slug, to: directory.appendingPathComponent("x.tar").path) } throws: { error in
                if case .transport = error as? SupervisorError { return true }
                return false
            }
        }
    }

    struct SensorAttributes: Encodable, Sendable {
        let last_success: String
        let backups_in_b2: Int
    }

    @Test func coreProxyCallsAreMadeAndRecorded() async throws {
        try await withSupervisor { simulator, client, _ in
            try await client.setState("sensor.b2_backup", state: "idle", attributes: SensorAttributes(last_success: "2026-11-30T03:31:00Z", backups_in_b2: 3))
            try await client.callService("persistent_notification", "create", data: ["title": "B2 Backup", "message": "Upload failed", "notification_id": "b2_backup_failure"])
            try await client.fireEvent("b2_backup_succeeded", data: ["slug": "abcd1234"])
            let calls = await simulator.coreCalls()
            #expect(calls.count == 3)
            await simulator.faults.coreUnavailable(times: 1)
            await #expect { try await client.fireEvent("b2_backup_failed", data: [String: String]()) } throws: { error in
                if case .refused(_, 502, _) = error as? SupervisorError { return true }
                return false
            }
        }
    }
}
