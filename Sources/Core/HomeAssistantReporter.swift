import Foundation
import Logging

/// A JSON value for entity attributes and event data.
public enum StateValue: Sendable, Hashable, Encodable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    case string(String), int(Int64), double(Double), bool(Bool), null

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    static func date(_ date: Date?) -> StateValue { date.map { .string(ISO8601.string($0)) } ?? .null }
    static func text(_ text: String?) -> StateValue { text.map { .string($0) } ?? .null }
}

/// Home Assistant Core as the engine sees it (through the Supervisor's Core proxy).
public protocol HomeAssistant: Sendable {
    func fireEvent(_ type: String, data: [String: StateValue]) async throws(PortError)
    func setState(_ entityID: String, state: String, attributes: [String: StateValue]) async throws(PortError)
    /// Whether Core currently has the entity; bare states vanish when Home Assistant restarts.
    func hasState(_ entityID: String) async throws(PortError) -> Bool
    func callService(_ domain: String, _ service: String, data: [String: StateValue]) async throws(PortError)
}

/// What the reporter says and when.
public struct ReporterSettings: Sendable, Hashable {
    /// `notify.<name>` to also tell a phone, or nil.
    public var notifyService: String?
    public var notifyOnSuccess: Bool
    public var staleAfter: TimeInterval
    /// How often the reporter checks that its entities still exist and whether backups went stale.
    public var checkInterval: TimeInterval

    public init(notifyService: String? = nil, notifyOnSuccess: Bool = false, staleAfter: TimeInterval = 48 * 3600, checkInterval: TimeInterval = 60) {
        self.notifyService = notifyService
        self.notifyOnSuccess = notifyOnSuccess
        self.staleAfter = staleAfter
        self.checkInterval = checkInterval
    }
}

/// Publishes the pipeline to Home Assistant: events, `sensor.b2_backup`, `binary_sensor.b2_backup_stale`,
/// a persistent notification on failure (dismissed after the next success) and optional phone notifications.
/// Entities are posted as bare states, which Home Assistant forgets on restart; the reporter notices the
/// missing sensor on its next check and posts both again.
public actor HomeAssistantReporter: JobObserver {
    public static let sensor = "sensor.b2_backup"
    public static let staleSensor = "binary_sensor.b2_backup_stale"
    public static let failureNotification = "b2_backup_failure"
    public static let restoreNotification = "b2_backup_restore"
    public static let destinationNotification = "b2_backup_destination"
    public static let coverageNotification = "b2_backup_coverage"
    public static let staleNotification = "b2_backup_stale"

    let homeAssistant: any HomeAssistant
    let settings: ReporterSettings
    let clock: any WallClock
    let logger: Logger
    private var statusSource: (@Sendable () async -> PipelineStatus)?
    private var lastPublished: [String: (state: String, attributes: [String: StateValue])] = [:]
    private var staleAnnounced: Bool?
    /// Publishing failed (Core down or restarting): everything is posted again at the next check.
    private var needsRepublish = true
    /// The failed run the failure notification is about, and the next attempt it names; nil once a run succeeds.
    private var openFailure: (job: Job, nextRun: Date?)?

    public init(homeAssistant: any HomeAssistant, settings: ReporterSettings, clock: any WallClock, logger: Logger) {
        self.homeAssistant = homeAssistant
        self.settings = settings
        self.clock = clock
        self.logger = logger
    }

    public func connect(_ source: @escaping @Sendable () async -> PipelineStatus) {
        statusSource = source
    }

    // MARK: JobObserver

    public func jobStarted(_ job: Job) async {
        guard job.kind == .backup else {
            await fire("b2_backup_restore_started", ["job_id": .string(job.id), "slug": .text(job.slug), "name": .string(job.plan.name),
                                                      "type": .string(Self.restoreType(job))])
            await publish()
            return
        }
        await fire("b2_backup_started", [
            "job_id": .string(job.id), "trigger": .string(job.trigger.rawValue), "name": .string(job.plan.name), "type": .string(job.plan.type.rawValue),
        ])
        await publish()
    }

    /// Progress reaches Home Assistant at most every `progressInterval` (the page gets it every second).
    public func jobProgressed(_ job: Job) async {
        let now = clock.now()
        guard now.timeIntervalSince(lastProgressPublish) >= Self.progressInterval else { return }
        lastProgressPublish = now
        await publish()
    }

    static let progressInterval: TimeInterval = 10
    private var lastProgressPublish = Date.distantPast

    public func jobFinished(_ job: Job) async {
        guard job.kind == .backup else {
            await restoreFinished(job)
            await publish()
            return
        }
        if let error = job.error {
            await fire("b2_backup_failed", [
                "job_id": .string(job.id), "trigger": .string(job.trigger.rawValue), "name": .string(job.plan.name),
                "step": .text(error.step?.rawValue), "code": .string(error.code), "message": .string(error.message),
            ])
            let nextRun = await statusSource?().nextRun
            await showFailure(job, nextRun: nextRun)
            if let service = settings.notifyService {
                await notify(service, title: "B2 Backup failed", message: Self.failureMessage(job, error: error, nextRun: nextRun))
            }
        } else {
            await fire("b2_backup_succeeded", [
                "job_id": .string(job.id), "trigger": .string(job.trigger.rawValue), "slug": .text(job.slug), "name": .string(job.plan.name),
                "size_bytes": .int(job.remote?.size ?? job.bytesTotal), "duration_seconds": .int(Int64(job.duration ?? 0)),
                "remote_name": .text(job.remote?.name), "sha1": .text(job.remote?.sha1),
                "verified_in": .string(Self.verifiedIn(job).joined(separator: ",")),
            ])
            openFailure = nil
            await call("persistent_notification", "dismiss", ["notification_id": .string(Self.failureNotification)])
            await destinationsChecked(job)
            if settings.notifyOnSuccess, let service = settings.notifyService {
                let places = Self.verifiedPlaces(job)
                await notify(service, title: "B2 Backup done", message: "'\(job.plan.name)' is safe in \(places) (\(Self.size(job.remote?.size ?? job.bytesTotal))).")
            }
        }
        await publish()
    }

    /// "Backblaze B2 and S3": where a successful run's copies were verified.
    static func verifiedPlaces(_ job: Job) -> String {
        verifiedIn(job).map { $0 == DestinationID.b2 ? "Backblaze B2" : $0.uppercased() }.joined(separator: " and ")
    }

    /// The destinations with a verified copy; B2 for runs saved before destinations were recorded.
    static func verifiedIn(_ job: Job) -> [String] {
        job.verifiedDestinations.isEmpty ? [DestinationID.b2] : job.verifiedDestinations
    }

    /// A run that succeeded with one destination failing (`require_all_destinations: false`) must still be
    /// heard of: an event per failed destination and a notification, taken back once a run reaches them all.
    func destinationsChecked(_ job: Job) async {
        let failed = (job.copies ?? []).filter { $0.error != nil }
        guard !failed.isEmpty else {
            if destinationWarned {
                await call("persistent_notification", "dismiss", ["notification_id": .string(Self.destinationNotification)])
                destinationWarned = false
            }
            return
        }
        for copy in failed {
            await fire("b2_backup_destination_failed", [
                "job_id": .string(job.id), "slug": .text(job.slug), "name": .string(job.plan.name), "destination": .string(copy.destination),
                "code": .string(copy.error?.code ?? ""), "message": .string(copy.error?.message ?? ""),
            ])
        }
        let message = "'\(job.plan.name)' is safe in \(Self.verifiedPlaces(job)), but not everywhere: "
            + failed.compactMap { $0.error?.message }.joined(separator: "; ")
            + ". The run counted as a success because require_all_destinations is off."
        await call("persistent_notification", "create", [
            "notification_id": .string(Self.destinationNotification), "title": "B2 Backup: a destination has no copy", "message": .string(message),
        ])
        if let service = settings.notifyService { await notify(service, title: "B2 Backup: a destination has no copy", message: message) }
        destinationWarned = true
    }

    /// True at start, so a notification left from before a restart is taken back by the first complete run.
    private var destinationWarned = true

    /// Warns when a backup left a critical component out (event, notification naming the add-ons by
    /// name), and takes the notification back once a backup holds them all.
    public func coverageChecked(_ coverage: Coverage) async {
        let missing = coverage.missing
        guard !missing.isEmpty else {
            if coverageWarned {
                await call("persistent_notification", "dismiss", ["notification_id": .string(Self.coverageNotification)])
                coverageWarned = false
            }
            return
        }
        let names = missing.map(\.name).joined(separator: ", ")
        await fire("b2_backup_coverage_warning", [
            "backup": .string(coverage.backup), "name": .string(coverage.backupName), "missing": .string(names),
            "missing_slugs": .string(missing.map(\.slug).joined(separator: ",")),
        ])
        let message = "The backup '\(coverage.backupName)' does not contain \(names). After a disk failure \(missing.count == 1 ? "it" : "they") "
            + "would have to be set up again (for Zigbee2MQTT: every device re-paired). Check backup_type, exclude_addons and the backup name's request."
        await call("persistent_notification", "create", [
            "notification_id": .string(Self.coverageNotification), "title": "B2 Backup: a critical component is missing", "message": .string(message),
        ])
        if let service = settings.notifyService { await notify(service, title: "B2 Backup: a critical component is missing", message: message) }
        coverageWarned = true
    }

    private var coverageWarned = true

    /// A stored backup failed its restorability check: an event, the failure notification, the phone.
    public func restorabilityFailed(_ entry: CatalogEntry, _ check: RestorabilityCheck) async {
        await fire("b2_backup_verify_failed", [
            "slug": .string(entry.slug), "name": .string(entry.name), "verdict": .string(check.verdict), "mode": .string(check.mode),
            "problems": .string(check.problems.joined(separator: "; ")),
        ])
        let message = "The backup '\(entry.name)' in B2 \(check.verdict == "flagged" ? "is not what it claims" : "cannot be restored"): "
            + check.problems.joined(separator: "; ") + ". It no longer counts as a good backup; make a new one."
        await call("persistent_notification", "create", [
            "notification_id": .string(Self.failureNotification), "title": "B2 Backup: a backup cannot be restored", "message": .string(message),
        ])
        if let service = settings.notifyService { await notify(service, title: "B2 Backup: a backup cannot be restored", message: message) }
    }

    /// `b2_backup_restore_finished` and a notification, for pulls and restores (also when the outcome is
    /// learned after a full restore restarted the add-on).
    private func restoreFinished(_ job: Job) async {
        let type = Self.restoreType(job)
        let what = job.kind == .pull ? "Bringing '\(job.plan.name)' back from B2" : "The \(type) restore of '\(job.plan.name)'"
        let message = job.error.map { "\(what) failed while \($0.step?.activity ?? "running"): \($0.message)." }
            ?? (job.kind == .pull ? "'\(job.plan.name)' is back in Home Assistant (Settings → System → Backups)." : "\(what) finished.")
        await fire("b2_backup_restore_finished", [
            "job_id": .string(job.id), "slug": .text(job.slug), "name": .string(job.plan.name), "type": .string(type),
            "result": .string(job.error == nil ? "success" : "failed"), "code": .text(job.error?.code), "message": .string(message),
        ])
        await call("persistent_notification", "create", [
            "notification_id": .string(Self.restoreNotification),
            "title": .string(job.error == nil ? "B2 Backup: restore finished" : "B2 Backup: restore failed"), "message": .string(message),
        ])
        if let service = settings.notifyService, job.error != nil || settings.notifyOnSuccess {
            await notify(service, title: job.error == nil ? "Restore finished" : "Restore failed", message: message)
        }
    }

    static func restoreType(_ job: Job) -> String {
        job.kind == .pull ? "pull" : (job.restore?.partial == true ? "partial" : "full")
    }

    /// The scheduler decided its next run: the sensor's `next_run` changes, and an open failure notification
    /// is updated with the time of the next attempt.
    public func scheduleChanged() async {
        if let failure = openFailure, let nextRun = await statusSource?().nextRun, failure.nextRun != nextRun {
            await showFailure(failure.job, nextRun: nextRun)
        }
        await publish()
    }

    /// Creates (or replaces: same id) the failure notification.
    private func showFailure(_ job: Job, nextRun: Date?) async {
        guard let error = job.error else { return }
        openFailure = (job, nextRun)
        await call("persistent_notification", "create", [
            "notification_id": .string(Self.failureNotification), "title": "B2 Backup failed",
            "message": .string(Self.failureMessage(job, error: error, nextRun: nextRun)),
        ])
    }

    // MARK: Checks

    /// Posts the entities at start, then every `checkInterval` re-posts them if Home Assistant lost them
    /// and checks for stale backups. Returns when cancelled.
    public func run() async {
        await publish(force: true)
        while !Task.isCancelled {
            do { try await clock.sleep(until: clock.now().addingTimeInterval(settings.checkInterval)) } catch { return }
            await check()
        }
    }

    /// One round of checks (the loop's body; tests call it directly).
    public func check() async {
        do {
            if !needsRepublish, try await !homeAssistant.hasState(Self.sensor) {
                logger.info("Home Assistant lost the backup sensor (it restarted); publishing it again")
                needsRepublish = true
            }
        } catch {
            logger.debug("cannot reach Home Assistant", metadata: ["error": "\(error)"])
            needsRepublish = true
            return
        }
        await publish(force: needsRepublish)
    }

    /// Posts the two entities when their content changed (or always with `force`), and announces staleness.
    func publish(force: Bool = false) async {
        guard let status = await statusSource?() else { return }
        let stale = status.stale
        if staleAnnounced != stale {
            if stale {
                let since = status.lastSuccess?.finishedAt
                await fire("b2_backup_stale", ["last_success": .date(since), "stale_after_hours": .int(Int64(settings.staleAfter / 3600))])
                let message = since.map { "No backup has reached Backblaze B2 since \(ISO8601.string($0))." } ?? "No backup has reached Backblaze B2 yet."
                await call("persistent_notification", "create", [
                    "notification_id": .string(Self.staleNotification), "title": "B2 Backup is stale",
                    "message": .string(message + " Open the B2 Backup page to see why."),
                ])
                if let service = settings.notifyService { await notify(service, title: "B2 Backup is stale", message: message) }
            } else if staleAnnounced == true {
                await call("persistent_notification", "dismiss", ["notification_id": .string(Self.staleNotification)])
            }
            staleAnnounced = stale
        }
        var ok = await post(Self.sensor, state: status.state, attributes: Self.sensorAttributes(status), force: force)
        ok = await post(Self.staleSensor, state: stale ? "on" : "off", attributes: [
            "friendly_name": "B2 Backup stale", "device_class": "problem", "last_success": .date(status.lastSuccess?.finishedAt),
            "stale_after_hours": .int(Int64(settings.staleAfter / 3600)),
        ], force: force) && ok
        needsRepublish = !ok
    }

    static func sensorAttributes(_ status: PipelineStatus) -> [String: StateValue] {
        let running = status.runningJob
        let progress: StateValue = running.map { $0.bytesTotal > 0 ? .int(Int64(100 * $0.bytesDone / $0.bytesTotal)) : .int(0) } ?? .null
        // Each destination besides B2 (whose totals have their own attributes): its state, usage and last verified copy.
        var destinations: [String: StateValue] = [:]
        for destination in status.destinations where destination.id != DestinationID.b2 {
            destinations["\(destination.id)_state"] = .string(destination.state)
            destinations["backups_in_\(destination.id)"] = destination.summary.map { .int(Int64($0.backups)) } ?? .null
            destinations["bytes_in_\(destination.id)"] = destination.summary.map { .int($0.bytes) } ?? .null
            destinations["last_verified_in_\(destination.id)"] = .date(destination.lastVerified?.at)
        }
        let attributes: [String: StateValue] = [
            "friendly_name": "B2 Backup", "icon": "mdi:cloud-upload",
            "last_success": .date(status.lastSuccess?.finishedAt), "last_backup": .text(status.lastSuccess?.plan.name),
            "next_run": .date(status.nextRun),
            "last_error": .text(status.lastFailure?.error?.message), "last_error_at": .date(status.lastFailure?.finishedAt),
            "job_id": .text(running?.id), "progress": progress,
            "bytes_done": running.map { .int($0.bytesDone) } ?? .null, "bytes_total": running.map { .int($0.bytesTotal) } ?? .null,
            "backups_in_b2": status.remote.map { .int(Int64($0.backups)) } ?? .null,
            "postponed": .text(status.postponed),
            "coverage": .text(status.coverage.map { coverage in
                coverage.components.map { "\($0.name) \($0.included ? "✔" : "✘")" }.joined(separator: ", ")
            }),
            "bytes_in_b2": status.remote.map { .int($0.bytes) } ?? .null,
        ]
        return attributes.merging(destinations) { fixed, _ in fixed }
    }

    private func post(_ entity: String, state: String, attributes: [String: StateValue], force: Bool) async -> Bool {
        if !force, let last = lastPublished[entity], last.state == state, last.attributes == attributes { return true }
        // Recorded before the call: publishes interleave (the actor is reentrant) and must not post the same twice.
        lastPublished[entity] = (state, attributes)
        do {
            try await homeAssistant.setState(entity, state: state, attributes: attributes)
            return true
        } catch {
            logger.warning("cannot update a Home Assistant entity", metadata: ["entity": "\(entity)", "error": "\(error)"])
            lastPublished[entity] = nil
            return false
        }
    }

    private func fire(_ event: String, _ data: [String: StateValue]) async {
        do { try await homeAssistant.fireEvent(event, data: data) } catch {
            logger.warning("cannot fire a Home Assistant event", metadata: ["event": "\(event)", "error": "\(error)"])
        }
    }

    private func call(_ domain: String, _ service: String, _ data: [String: StateValue]) async {
        do { try await homeAssistant.callService(domain, service, data: data) } catch {
            logger.warning("cannot call a Home Assistant service", metadata: ["service": "\(domain).\(service)", "error": "\(error)"])
        }
    }

    private func notify(_ service: String, title: String, message: String) async {
        let parts = service.split(separator: ".", maxSplits: 1)
        guard parts.count == 2 else { return }
        await call(String(parts[0]), String(parts[1]), ["title": .string(title), "message": .string(message)])
    }

    /// "The backup 'B2 2026-11-30 full' failed while uploading to Backblaze B2: <reason>. Next attempt: …"
    static func failureMessage(_ job: Job, error: JobError, nextRun: Date?) -> String {
        var text = "The backup '\(job.plan.name)' failed while \(error.step?.activity ?? "running"): \(error.message)."
        if let nextRun { text += " Next attempt: \(ISO8601.string(nextRun))." }
        text += " This message goes away after the next successful backup."
        return text
    }

    static func size(_ bytes: Int64) -> String {
        bytes >= 1 << 30 ? String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) : String(format: "%.1f MiB", Double(bytes) / Double(1 << 20))
    }
}

/// ISO 8601 in UTC with seconds, as the API and Home Assistant attributes carry dates.
public enum ISO8601 {
    public static func string(_ date: Date) -> String {
        date.formatted(.iso8601) // 2026-11-30T03:30:00Z
    }
}
