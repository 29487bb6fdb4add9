import Core
import Foundation
import SupervisorClient
import SupervisorSimulator
import Testing
@testable import App

/// Critical components' coverage and quiet-time postponing, against both simulators. The simulated home has
/// Mosquitto and Zigbee2MQTT installed.
@Suite(.timeLimit(.minutes(2)))
struct HomeAwareTests {
    /// 2026-11-30 03:30 in Amsterdam, the first scheduled slot after the harness starts.
    let slot = Date(timeIntervalSince1970: 1_795_942_800 + 17 * 3600 + 30 * 60)

    func core(_ harness: PipelineHarness) -> SupervisorClient {
        SupervisorClient(baseURL: harness.supervisor.url, token: harness.supervisor.configuration.token, logger: quiet)
    }

    @Test func aFullBackupCoversTheCriticalComponents() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            _ = await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id)
            let coverage = try #require(await pipeline.status().coverage)
            #expect(Set(coverage.components.map(\.name)) == ["Mosquitto broker", "Zigbee2MQTT"])
            #expect(coverage.missing.isEmpty)
            #expect(await harness.events("b2_backup_coverage_warning").isEmpty)
            let sensor = await harness.supervisor.states()["sensor.b2_backup"]
            #expect(sensor?.attributes["coverage"]?.stringValue?.contains("Zigbee2MQTT ✔") == true)
        }
    }

    @Test func leavingZigbee2MQTTOutWarnsByNameUntilABackupHasItAgain() async throws {
        try await withHarness { harness in
            let pipeline = try await harness.pipeline()
            let request = BackupRequest(excludeAddons: ["45df7312_zigbee2mqtt"])
            let job = try #require(await pipeline.engine.wait(for: try await pipeline.startManual(request).id))
            #expect(job.state == .done)
            let warning = try #require(await harness.events("b2_backup_coverage_warning").first)
            #expect(warning["missing"]?.stringValue == "Zigbee2MQTT")
            let notification = try #require(await harness.supervisor.notifications()["b2_backup_coverage"])
            #expect(notification.message.contains("Zigbee2MQTT"))
            #expect(await pipeline.status().coverage?.missing.map(\.slug) == ["45df7312_zigbee2mqtt"])

            harness.clock.advance(by: 60)
            _ = await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest()).id)
            #expect(await harness.supervisor.notifications()["b2_backup_coverage"] == nil)
            #expect(await pipeline.status().coverage?.missing.isEmpty == true)
        }
    }

    @Test func criticalAddonsAddAndRemove() async throws {
        try await withHarness(options: { $0.criticalAddons = ["-core_mosquitto"] }) { harness in
            let pipeline = try await harness.pipeline()
            _ = await pipeline.engine.wait(for: try await pipeline.startManual(BackupRequest(excludeAddons: ["core_mosquitto"])).id)
            #expect(await pipeline.status().coverage?.components.map(\.slug) == ["45df7312_zigbee2mqtt"])
            #expect(await harness.events("b2_backup_coverage_warning").isEmpty)
        }
    }

    /// Runs the pipeline's loops while `body` runs (reporter, scheduler and retention sleep on the clock).
    func running(_ pipeline: Pipeline, _ body: () async throws -> Void) async throws {
        let loops = Task { await pipeline.run() }
        defer { loops.cancel() }
        try await body()
        loops.cancel()
        _ = await loops.value
    }

    func jobs(_ harness: PipelineHarness) async throws -> [Job] {
        try await StoredJobStore(store: harness.store()).recentJobs(limit: 10).filter { $0.kind == .backup }
    }

    @Test func aScheduledBackupWaitsForAQuietHouse() async throws {
        try await withHarness(options: {
            $0.postponeWhile = [PostponeCondition(entity: "binary_sensor.hallway_motion", state: "on")]
            $0.postponeRecheckMinutes = 5
            $0.postponeMaxMinutes = 120
        }) { harness in
            try await core(harness).setState("binary_sensor.hallway_motion", state: "on", attributes: ["friendly_name": "Hallway motion"])
            let pipeline = try await harness.pipeline()
            try await running(pipeline) {
                await harness.clock.waitForSleepers(3)
                harness.clock.advance(to: slot)
                await harness.clock.waitForSleepers(3)
                #expect(await pipeline.status().postponed == "Hallway motion is on")
                #expect(try await jobs(harness).isEmpty)
                harness.clock.advance(by: 5 * 60)
                await harness.clock.waitForSleepers(3)
                #expect(try await jobs(harness).isEmpty) // still moving
                try await core(harness).setState("binary_sensor.hallway_motion", state: "off", attributes: ["friendly_name": "Hallway motion"])
                harness.clock.advance(by: 5 * 60)
                await harness.clock.waitForSleepers(3)
                let ran = try await jobs(harness)
                #expect(ran.map(\.state) == [.done])
                #expect(ran.first?.warnings.first?.hasPrefix("waited 10 minutes for a quiet house (Hallway motion is on)") == true)
                #expect(await pipeline.status().postponed == nil)
            }
        }
    }

    @Test func afterTheLongestPostponementTheBackupRunsAnywayAndSaysWhy() async throws {
        try await withHarness(options: {
            $0.postponeWhile = [PostponeCondition(entity: "sensor.processor_temperature", above: 80)]
            $0.postponeRecheckMinutes = 30
            $0.postponeMaxMinutes = 60
        }) { harness in
            try await core(harness).setState("sensor.processor_temperature", state: "85", attributes: ["friendly_name": "Processor temperature"])
            let pipeline = try await harness.pipeline()
            try await running(pipeline) {
                await harness.clock.waitForSleepers(3)
                harness.clock.advance(to: slot)
                for _ in 0..<2 {
                    await harness.clock.waitForSleepers(3)
                    #expect(try await jobs(harness).isEmpty)
                    harness.clock.advance(by: 30 * 60)
                }
                await harness.clock.waitForSleepers(3)
                let ran = try await jobs(harness)
                #expect(ran.count == 1)
                #expect(ran.first?.warnings.first == "ran after waiting 60 minutes although Processor temperature is 85 (above 80) (postpone_max_minutes)")
            }
        }
    }

    @Test(arguments: ["unavailable", "unknown", "not a number"])
    func anUnreadableEntityNeverHoldsABackupBack(state: String) async throws {
        try await withHarness(options: {
            $0.postponeWhile = [PostponeCondition(entity: "sensor.processor_temperature", above: 80),
                                PostponeCondition(entity: "binary_sensor.never_existed", state: "on")]
        }) { harness in
            try await core(harness).setState("sensor.processor_temperature", state: state, attributes: ["friendly_name": "Processor temperature"])
            let pipeline = try await harness.pipeline()
            try await running(pipeline) {
                await harness.clock.waitForSleepers(3)
                harness.clock.advance(to: slot)
                await harness.clock.waitForSleepers(3)
                let ran = try await jobs(harness)
                #expect(ran.map(\.state) == [.done])
                #expect(ran.first?.warnings.isEmpty == true)
            }
        }
    }
}
