import Foundation
import Logging
import Synchronization

/// The pipeline as the status API and the sensor show it.
public struct PipelineStatus: Sendable {
    /// `idle`, `creating`, `uploading`, `verifying`, or `failed` when the last run failed and nothing runs.
    public var state: String
    public var runningJob: Job?
    public var lastSuccess: Job?
    /// The last failed run, when it is newer than the last success.
    public var lastFailure: Job?
    /// Which critical components the last successful backup holds.
    public var coverage: Coverage?
    /// Why the scheduled backup is waiting ("Hallway motion is on"), while it waits.
    public var postponed: String?
    public var nextRun: Date?
    public var nextTrigger: String?
    public var scheduleEnabled: Bool
    /// Backups and bytes in B2 under our prefix, as last counted.
    public var remote: RemoteSummary?
    /// No backup succeeded within `stale_after_hours`.
    public var stale: Bool
    /// Each destination (B2, and the second one when configured).
    public var destinations: [DestinationStatus] = []
}

/// Puts the engine, the scheduler and the Home Assistant reporter together and runs them.
public final class Pipeline: Sendable {
    public let engine: BackupEngine
    public let scheduler: Scheduler
    public let reporter: HomeAssistantReporter?
    /// The catalog and the retention policies; nil without B2 (tests of the engine alone).
    public let retention: RetentionService?
    /// Live events for the page.
    public let events = EventHub()
    /// Other prefixes of the bucket, for listing and restoring their backups.
    public let bucket: (any BucketCatalogs)?
    /// `critical_addons`: slugs added to, or (`-slug`) removed from, the default critical components.
    let criticalOverrides: [String]
    /// `postpone_while` and its timing; nil when no condition is set.
    let quietTime: QuietTime?
    let entities: (any EntityReader)?
    private let criticalInstalled = Mutex<[AddonIdentity]>([])
    private let postponedReason = Mutex<String?>(nil)
    /// Scheduled restorability checks (`verify_days`); nil interval turns them off.
    let checker: (any RestorabilityChecker)?
    let checkInterval: TimeInterval?
    let store: any JobStore
    let remote: any RemoteStore
    let clock: any WallClock
    let scheduleEnabled: Bool
    let staleAfter: TimeInterval
    /// When this install first ran (from the state database): staleness counts from here until a first success.
    let installedAt: Date
    let logger: Logger
    private let remoteSummary = Mutex<RemoteSummary?>(nil)
    /// B2's bucket, for the destinations' status.
    let primaryBucket: String
    /// `restore_source`: `auto`, `b2` or `s3`.
    let restorePreference: String
    let destinationSummaries = Mutex<[String: RemoteSummary]>([:])
    /// Each destination's newest verified backup as its catalog records it (see `rememberNewestVerified`).
    let newestVerifiedInCatalogs = Mutex<[String: DestinationStatus.Verified]>([:])
    /// Secondary destinations whose last count failed, with the error and when.
    let unreachableDestinations = Mutex<[String: (error: JobError, at: Date)]>([:])
    /// Each destination's runs, gathered when runs end (`refreshRunHistories`).
    let runHistories = Mutex<[String: RunHistory]>([:])
    var remoteSummaryValue: RemoteSummary? { remoteSummary.withLock { $0 } }

    /// - Parameter installedAt: when the add-on first ran on this install.
    public init(engine: BackupEngine, scheduler: Scheduler, reporter: HomeAssistantReporter?, retention: RetentionService? = nil,
                checker: (any RestorabilityChecker)? = nil, checkInterval: TimeInterval? = nil, bucket: (any BucketCatalogs)? = nil,
                criticalOverrides: [String] = [], quietTime: QuietTime? = nil, entities: (any EntityReader)? = nil, store: any JobStore,
                remote: any RemoteStore, clock: any WallClock, scheduleEnabled: Bool, staleAfter: TimeInterval, installedAt: Date,
                primaryBucket: String = "", restorePreference: String = "auto", logger: Logger) async {
        self.primaryBucket = primaryBucket
        self.restorePreference = restorePreference
        self.engine = engine
        self.scheduler = scheduler
        self.reporter = reporter
        self.retention = retention
        self.checker = checker
        self.checkInterval = checkInterval
        self.bucket = bucket
        self.criticalOverrides = criticalOverrides
        self.quietTime = quietTime
        self.entities = entities
        self.store = store
        self.remote = remote
        self.clock = clock
        self.scheduleEnabled = scheduleEnabled
        self.staleAfter = staleAfter
        self.installedAt = installedAt
        self.logger = logger
        await reporter?.connect { [weak self] in await self?.status() ?? PipelineStatus(state: "idle", scheduleEnabled: false, stale: false) }
        await engine.observe(with: PipelineObserver(pipeline: self))
        let events = events
        await scheduler.onPlan { [reporter] _, _ in
            await reporter?.scheduleChanged()
            await events.publish(.status)
        }
    }

    public func status() async -> PipelineStatus {
        let running = await engine.runningJob
        let lastSuccess = try? await store.lastJob(kind: .backup, state: .done)
        var lastFailure = try? await store.lastJob(kind: .backup, state: .failed)
        if let failure = lastFailure, let success = lastSuccess, success.startedAt > failure.startedAt { lastFailure = nil } // a later success clears it
        let reference = lastSuccess?.finishedAt ?? installedAt
        let critical = criticalInstalled.withLock { $0 }
        let coverage = lastSuccess.flatMap { job in
            job.local?.facts.map { CriticalComponents.coverage(of: $0, slug: job.slug ?? "", name: job.plan.name, critical: critical) }
        }
        return PipelineStatus(
            state: running?.state.rawValue ?? (lastFailure != nil ? "failed" : "idle"),
            runningJob: running, lastSuccess: lastSuccess, lastFailure: lastFailure, coverage: coverage, postponed: postponedReason.withLock { $0 },
            nextRun: await scheduler.nextRun, nextTrigger: await scheduler.nextTrigger?.rawValue, scheduleEnabled: scheduleEnabled,
            remote: remoteSummary.withLock { $0 },
            stale: clock.now().timeIntervalSince(reference) > staleAfter,
            destinations: await destinationStatuses())
    }

    /// Recounts what B2 holds (after each run and at start); failures keep the last count.
    public func refreshRemoteSummary() async {
        do {
            let summary = try await remote.summary()
            remoteSummary.withLock { $0 = summary }
            unreachableDestinations.withLock { $0[DestinationID.b2] = nil }
        } catch {
            logger.warning("cannot count the backups in B2", metadata: ["error": "\(error)"])
            unreachableDestinations.withLock { $0[DestinationID.b2] = (JobError(code: error.code, message: "Backblaze B2: \(error.message)"), clock.now()) }
        }
        await refreshSecondarySummaries()
        await refreshRunHistories()
    }

    /// Continues an interrupted job, then runs the schedule and the reporter until cancelled.
    public func run() async {
        await refreshRemoteSummary()
        await refreshCriticalAddons()
        let resumed = await engine.resumeUnfinished()
        await withTaskGroup(of: Void.self) { group in
            if let reporter { group.addTask { await reporter.run() } }
            if let resumed { group.addTask { _ = await self.engine.wait(for: resumed.id) } }
            if let retention { group.addTask { await self.runRetentionDaily(retention) } }
            group.addTask {
                await self.scheduler.run { trigger, _ in
                    await self.engine.waitForIdle() // a resumed job finishes before a scheduled one starts
                    let notes = await self.waitForQuietHouse()
                    do throws(EngineRefusal) {
                        let job = try await self.engine.run(trigger: JobTrigger(trigger), notes: notes)
                        return job.state == .done ? .succeeded : .failed
                    } catch {
                        if case .jobRunning = error { return .skipped }
                        self.logger.warning("scheduled backup not started", metadata: ["error": "\(error)"])
                        return .failed
                    }
                }
            }
            await group.waitForAll()
        }
    }

    /// The installed critical add-ons, read from the Supervisor (at start and after each backup).
    public func refreshCriticalAddons() async {
        guard let installed = try? await engine.source.installedAddonIdentities() else { return }
        let critical = CriticalComponents.critical(installed: installed, overrides: criticalOverrides)
        criticalInstalled.withLock { $0 = critical }
    }

    /// Holds a scheduled backup while a `postpone_while` condition holds, re-checking every `recheck`, for
    /// at most `maxPostpone`; then the backup runs anyway. Returns the notes for the job (why it waited or
    /// why it ran anyway).
    func waitForQuietHouse() async -> [String] {
        guard let quietTime, let entities, !quietTime.conditions.isEmpty, quietTime.maxPostpone > 0 else { return [] }
        let started = clock.now()
        var waited: String?
        while let reason = await quietTime.blocking(entities) {
            let elapsed = clock.now().timeIntervalSince(started)
            if elapsed >= quietTime.maxPostpone {
                setPostponed(nil)
                await events.publish(.status)
                logger.info("backup ran after the longest postponement", metadata: ["postponed.reason": "\(reason)"])
                return ["ran after waiting \(Int(elapsed / 60)) minutes although \(reason) (postpone_max_minutes)"]
            }
            if waited == nil { logger.info("scheduled backup postponed", metadata: ["postponed.reason": "\(reason)"]) }
            waited = reason
            setPostponed(reason)
            await events.publish(.status)
            await reporter?.publish()
            do { try await clock.sleep(until: clock.now().addingTimeInterval(min(quietTime.recheck, quietTime.maxPostpone - elapsed))) } catch {
                setPostponed(nil)
                return []
            }
        }
        setPostponed(nil)
        guard let waited else { return [] }
        return ["waited \(Int(clock.now().timeIntervalSince(started) / 60)) minutes for a quiet house (\(waited))"]
    }

    private func setPostponed(_ reason: String?) { postponedReason.withLock { $0 = reason } }

    /// After a successful backup: warns when it left out a critical component, else clears the warning.
    func checkCoverage(_ job: Job) async {
        guard job.kind == .backup, job.state == .done, let facts = job.local?.facts else { return }
        await refreshCriticalAddons()
        let coverage = CriticalComponents.coverage(of: facts, slug: job.slug ?? "", name: job.plan.name, critical: criticalInstalled.withLock { $0 })
        await reporter?.coverageChecked(coverage)
    }

    /// Retention at start and then every 24 hours (besides after each backup): it fires even when the add-on
    /// restarts every day. It waits for a running backup and skips while a run is unfinished.
    func runRetentionDaily(_ retention: RetentionService) async {
        while !Task.isCancelled {
            await engine.waitForIdle()
            let report = await retention.apply()
            if report.skipped == nil, !(report.deletedFromB2.isEmpty && report.deletedLocally.isEmpty && report.cancelledUploads == 0) {
                await refreshRemoteSummary()
                await reporter?.publish()
            }
            if let checker { await checkRestorabilityIfDue(retention, checker: checker) }
            await maintainSecondaries()
            do { try await clock.sleep(until: clock.now().addingTimeInterval(Self.retentionInterval)) } catch { return }
        }
    }

    public static let retentionInterval: TimeInterval = 86_400

    /// One scheduled restorability check when `verify_days` have passed since the last one.
    func checkRestorabilityIfDue(_ retention: RetentionService, checker: any RestorabilityChecker) async {
        guard let checkInterval else { return }
        if let last = await retention.lastScheduledCheck(), clock.now().timeIntervalSince(last) < checkInterval - 3600 { return }
        _ = await checkRestorability(slug: nil, scheduled: true, retention: retention, checker: checker)
    }

    /// Checks a stored backup now (`slug`, or the one checked longest ago) in one destination (B2 unless
    /// `destination` names the second one) and tells Home Assistant when it fails.
    @discardableResult
    public func checkRestorability(slug: String?, destination: String = DestinationID.b2) async -> RestorabilityCheck? {
        if let secondary = secondaries.first(where: { $0.id == destination }), let checker = secondary.checker {
            return await checkRestorability(slug: slug, scheduled: false, retention: secondary.retention, checker: checker)
        }
        guard destination == DestinationID.b2, let retention, let checker else { return nil }
        return await checkRestorability(slug: slug, scheduled: false, retention: retention, checker: checker)
    }

    private func checkRestorability(slug: String?, scheduled: Bool, retention: RetentionService, checker: any RestorabilityChecker) async -> RestorabilityCheck? {
        await engine.waitForIdle()
        guard let (entry, check) = await retention.checkRestorability(slug: slug, scheduled: scheduled, checker: checker,
                                                                      password: engine.settings.password) else { return nil }
        if !check.ok { await reporter?.restorabilityFailed(entry, check) }
        return check
    }

    /// Counters for `GET /metrics`, from the run history.
    public struct Metrics: Sendable {
        public var runs: [String: Int] = [:]
        public var bytesUploaded: Int64 = 0
        public var lastSuccess: Job?
        public var lastRun: Job?
    }

    public func metrics() async -> Metrics {
        var metrics = Metrics()
        let history = (try? await store.recentJobs(limit: 100_000)) ?? []
        for job in history where job.kind == .backup && job.isFinished {
            metrics.runs[job.state == .done ? "success" : "failed", default: 0] += 1
            if job.state == .done { metrics.bytesUploaded += job.remote?.size ?? 0 }
        }
        metrics.lastRun = history.first { $0.kind == .backup && $0.isFinished }
        metrics.lastSuccess = history.first { $0.kind == .backup && $0.state == .done }
        return metrics
    }

    /// The newest runs first; the running one with live byte counts.
    public func history(limit: Int) async throws -> [Job] {
        let running = await engine.runningJob
        return try await store.recentJobs(limit: limit).map { $0.id == running?.id ? running! : $0 }
    }

    public func startManual(_ request: BackupRequest) async throws(EngineRefusal) -> Job {
        try await engine.start(request, trigger: .manual)
    }

    /// Pulls a backup from B2 into Home Assistant, and restores it unless `pullOnly`. The backup is looked
    /// up in the catalog (B2) and in Home Assistant's list; already in Home Assistant, nothing is downloaded.
    public func startRestore(slug: String, _ request: RestoreOptions, pullOnly: Bool, prefix: String? = nil) async throws(EngineRefusal) -> Job {
        do { try request.validate() } catch { throw .invalidRequest(error) }
        var sources: [RemoteCopyLocation] = []
        var name: String?
        var lookupErrors: [PortError] = []
        if let prefix, let bucket {
            do {
                if let entry = try await bucket.catalog(prefix: prefix).load().snapshot.entry(slug: slug) {
                    sources = [RemoteCopyLocation(destination: DestinationID.b2, entry: entry)]
                    name = entry.name
                }
            } catch {
                throw .invalidRequest(JobError(code: error.code, message: "cannot read the catalog in B2: \(error.message)"))
            }
        } else {
            (sources, name, lookupErrors) = await restoreSources(slug: slug, preference: request.source ?? restorePreference)
        }
        var local: HomeAssistantBackup?
        do { local = try await engine.source.homeAssistantBackups().first { $0.slug == slug } } catch {
            throw .invalidRequest(JobError(code: error.code, message: error.message))
        }
        if sources.isEmpty, local == nil, let error = lookupErrors.first {
            throw .invalidRequest(JobError(code: error.code, message: lookupErrors.map(\.message).joined(separator: "; ")))
        }
        guard !sources.isEmpty || local != nil else { throw .notFound(slug: slug) }
        let spec = RestoreSpec(slug: slug, partial: request.type == "partial", homeassistant: request.homeassistant, addons: request.addons,
                               folders: request.folders, sources: sources)
        return try await engine.startRestore(spec, name: name ?? local?.name ?? slug, restore: !pullOnly, password: request.password)
    }
}

/// Sits between the engine and the reporter: recounts B2 when a job ends, before Home Assistant hears of it,
/// so the sensor's `backups_in_b2` is current in the same update. Holds the pipeline weakly (the engine holds this).
struct PipelineObserver: JobObserver {
    weak var pipeline: Pipeline?

    func jobStarted(_ job: Job) async {
        await pipeline?.events.publish(.job(job))
        await pipeline?.events.publish(.status)
        await pipeline?.reporter?.jobStarted(job)
    }

    func jobProgressed(_ job: Job) async {
        await pipeline?.events.publish(.job(job))
        await pipeline?.reporter?.jobProgressed(job)
    }

    func jobFinished(_ job: Job) async {
        guard let pipeline else { return }
        await pipeline.refreshRemoteSummary()
        await pipeline.checkCoverage(job)
        await pipeline.events.publish(.job(job))
        await pipeline.events.publish(.status)
        await pipeline.reporter?.jobFinished(job)
    }
}

extension JobTrigger {
    init(_ trigger: Scheduler.Trigger) {
        switch trigger {
        case .schedule: self = .schedule
        case .catchUp: self = .catchUp
        case .retry: self = .retry
        }
    }
}
