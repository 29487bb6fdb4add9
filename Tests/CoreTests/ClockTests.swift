import Foundation
import Testing
@testable import Core

@Suite struct ManualClockTests {
    @Test func sleeperWakesWhenTimePassesItsDeadline() async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 0))
        let task = Task { try await clock.sleep(until: Date(timeIntervalSince1970: 60)); return clock.now() }
        await clock.waitForSleepers(1)
        clock.advance(by: 59)
        #expect(clock.sleeperDeadlines.count == 1)
        clock.advance(by: 1)
        #expect(try await task.value == Date(timeIntervalSince1970: 60))
    }

    @Test func cancelledSleeperThrows() async {
        let clock = ManualClock(Date(timeIntervalSince1970: 0))
        let task = Task { try await clock.sleep(until: Date(timeIntervalSince1970: 60)) }
        await clock.waitForSleepers(1)
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(clock.sleeperDeadlines.isEmpty)
    }
}
