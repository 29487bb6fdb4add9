import Foundation
import Logging
import Synchronization

/// Why the engine would not start a job.
public enum EngineRefusal: Error, Sendable, Hashable {
    /// Another job runs; one job at a time.
    case jobRunning(id: String)
    case invalidRequest(JobError)
    case notConfigured(missing: [String])
    /// No backup with this slug in B2 or in Home Assistant.
    case notFound(slug: String)
}

/// Runs backup jobs one at a time: create → locate → upload → verify → record → retention → notify.
/// Every step is saved before it runs, so after a restart (even kill -9) `resumeUnfinished` continues
/// the job from its step and nothing is done twice: a created backup is not created again, a half
/// upload resumes from the parts B2 already has.
public actor BackupEngine {
    let source: any BackupSource
    let remote: any RemoteStore
    /// Pull and restore jobs download through it; nil in tests of backups alone.
    let catalog: (any RemoteCatalog)?
    /// The verify step also reads the upload back and checks it can be restored; nil skips that.
    let checker: (any RestorabilityChecker)?
    let store: any JobStore
    private(set) var observer: (any JobObserver)?
    let clock: any WallClock
    let settings: BackupSettings
    /// Option keys that must be set before a backup can run (credentials, bucket).
    let missingOptions: [String]
    let retention: any RetentionHook
    /// Destinations besides B2 (an S3-compatible store), copied to after B2's copy is recorded.
    let secondaries: [SecondaryDestination]
    /// Whether every destination must hold a verified copy for the run to succeed.
    let requirement: DestinationRequirement
    let logger: Logger
    /// Seconds between progress reports to the observer.
    let progressInterval: TimeInterval

    private var current: (job: Job, task: Task<Job, Never>)?
    /// Restore passwords, by job id, only until the Supervisor has the restore: never saved.
    var restorePasswords: [String: String] = [:]
    let progress = ByteProgress()

    public init(source: any BackupSource, remote: any RemoteStore, catalog: (any RemoteCatalog)? = nil, store: any JobStore, observer: (any JobObserver)?,
                clock: any WallClock, settings: BackupSettings, missingOptions: [String] = [], retention: (any RetentionHook)? = nil,
                checker: (any RestorabilityChecker)? = nil, secondaries: [SecondaryDestination] = [], requirement: DestinationRequirement = .all,
                progressInterval: TimeInterval = 1, logger: Logger) {
        self.secondaries = secondaries
        self.requirement = requirement
        self.source = source
        self.remote = remote
        self.catalog = catalog
        self.checker = checker
        self.store = store
        self.observer = observer
        self.clock = clock
        self.settings = settings
        self.missingOptions = missingOptions
        self.retention = retention ?? LocalCopyRetention(keepLocal: settings.keepLocal)
        self.progressInterval = progressInterval
        self.logger = logger
    }

    /// Replaces who is told about jobs (the pipeline installs itself, in front of the Home Assistant reporter).
    public func observe(with observer: (any JobObserver)?) {
        self.observer = observer
    }

    /// The running job with live byte counts, or nil when idle.
    public var runningJob: Job? {
        guard var job = current?.job else { return nil }
        if job.step == .upload || job.step == .pull || job.step == .copy {
            let (done, total) = progress.value
            job.bytesDone = done
            job.bytesTotal = max(total, job.bytesTotal)
        }
        return job
    }

    /// A job by id: the running one live, others from the store.
    public func job(id: String) async throws -> Job? {
        if let running = runningJob, running.id == id { return running }
        return try await store.job(id: id)
    }

    /// Starts a backup job in the background and returns it as saved.
    /// - Throws: `EngineRefusal` when a job runs, the request is invalid or credentials are missing.
    public func start(_ request: BackupRequest = BackupRequest(), trigger: JobTrigger = .manual, notes: [String] = []) async throws(EngineRefusal) -> Job {
        try refuseWhileRunning()
        do { try request.validate() } catch { throw .invalidRequest(error) }
        if !missingOptions.isEmpty { throw .notConfigured(missing: missingOptions) }
        let now = clock.now()
        let plan = settings.plan(for: request, at: now, homeAssistantVersion: await source.homeAssistantVersion(), randomSuffix: Self.randomHex(4))
        // Checked again: the version lookup above suspended, and another caller may have started a job meanwhile.
        if let current { throw .jobRunning(id: current.job.id) }
        var job = Job(id: Self.newID(), trigger: trigger, plan: plan, startedAt: now)
        job.warnings = notes
        launch(job, isNew: true)
        return job
    }

    func refuseWhileRunning() throws(EngineRefusal) {
        if let current { throw .jobRunning(id: current.job.id) }
    }

    /// Reports progress of the running job (shared by uploads and downloads).
    func progressReporter(for jobID: String) -> @Sendable (Int64, Int64) -> Void {
        let throttle = Throttle(interval: progressInterval)
        return { [progress, clock] done, total in
            progress.set(done, total)
            if throttle.isDue(clock.now()) { Task { await self.reportProgress(jobID) } }
        }
    }

    /// Starts a job and waits for it to finish (the scheduler's way in).
    public func run(_ request: BackupRequest = BackupRequest(), trigger: JobTrigger, notes: [String] = []) async throws(EngineRefusal) -> Job {
        let job = try await start(request, trigger: trigger, notes: notes)
        return await wait(for: job.id) ?? job
    }

    /// Waits until the job with this id finishes, if it is the running one.
    public func wait(for id: String) async -> Job? {
        guard let current, current.job.id == id else { return try? await store.job(id: id) }
        return await current.task.value
    }

    /// Waits for the running job, if any (for shutdown and tests).
    public func waitForIdle() async {
        while let task = current?.task { _ = await task.value }
    }

    /// Cancels the running job without failing it: it stays unfinished and is continued at the next start.
    public func suspend() async {
        guard let task = current?.task else { return }
        task.cancel()
        _ = await task.value
    }

    /// Continues the newest unfinished job after a restart; older unfinished ones are marked failed.
    @discardableResult
    public func resumeUnfinished() async -> Job? {
        guard current == nil else { return nil }
        // A full restore may have replaced the database: the intent kept beside the backups brings the job back.
        for intent in await source.restoreIntents() {
            if (try? await store.job(id: intent.id)) == nil { try? await store.save(intent) }
        }
        let unfinished: [Job]
        do { unfinished = try await store.unfinishedJobs() } catch {
            logger.error("cannot read unfinished jobs", metadata: ["error": "\(error)"])
            return nil
        }
        guard let newest = unfinished.max(by: { $0.startedAt < $1.startedAt }) else { return nil }
        for var stale in unfinished where stale.id != newest.id {
            stale.failed = true
            stale.error = JobError(code: "interrupted", message: "the add-on stopped during this run and a newer run took its place", step: stale.step)
            stale.finishedAt = clock.now()
            try? await store.save(stale)
        }
        logger.info("continuing an interrupted backup", metadata: ["job.id": "\(newest.id)", "job.step": "\(newest.step.rawValue)"])
        launch(newest, isNew: false)
        return newest
    }

    // MARK: Running

    func launch(_ job: Job, isNew: Bool) {
        progress.set(job.bytesDone, job.bytesTotal)
        let task = Task { await self.execute(job, isNew: isNew) }
        current = (job, task)
    }

    private func execute(_ initial: Job, isNew: Bool) async -> Job {
        var job = initial
        if isNew {
            await save(job)
            await observer?.jobStarted(job)
        }
        do {
            while job.step != .done {
                try Task.checkCancellation()
                try await perform(&job)
            }
            job.finishedAt = clock.now()
            await save(job)
            logger.info("backup finished", metadata: ["job.id": "\(job.id)", "backup.slug": "\(job.slug ?? "")",
                                                      "bytes": "\(job.bytesTotal)", "seconds": "\(Int(job.duration ?? 0))"])
        } catch {
            if error is CancellationError || Task.isCancelled {
                // Shutting down: leave the job unfinished at its step; the next start continues it.
                logger.info("backup suspended for shutdown", metadata: ["job.id": "\(job.id)", "job.step": "\(job.step.rawValue)"])
                current = nil
                return job
            }
            job.failed = true
            job.error = Self.jobError(error, step: job.step)
            job.finishedAt = clock.now()
            await save(job)
            logger.error("backup failed", metadata: ["job.id": "\(job.id)", "job.step": "\(job.step.rawValue)",
                                                     "error.code": "\(job.error?.code ?? "")", "error": "\(job.error?.message ?? "")"])
            await cleanUpTemporary(&job)
            if job.kind == .restore { await source.removeRestoreIntent(id: job.id) }
            restorePasswords[job.id] = nil
        }
        current = nil
        await observer?.jobFinished(job)
        return job
    }

    /// Runs the job's current step and moves it to the next one, saving the result.
    private func perform(_ job: inout Job) async throws {
        switch job.step {
        case .create:
            try await create(&job)
            advance(&job, to: .locate)
        case .locate:
            guard let slug = job.slug else { throw JobError(code: "internal", message: "no backup slug after the create step") }
            let local = try await source.locate(slug: slug, filename: job.plan.filename)
            job.local = local
            job.bytesTotal = local.size
            advance(&job, to: .upload)
        case .upload:
            do {
                try await upload(&job)
                advance(&job, to: .verify)
            } catch where tolerated(error) {
                primaryFailed(&job, error)
            }
        case .verify:
            do {
                try await verify(job)
                if let checker, let object = job.remote {
                    // B2 holds the bytes we sent; now prove those bytes are a backup Home Assistant can restore.
                    let check = await checker.check(fileName: object.name, size: object.size, sha1: object.sha1, slug: job.slug, password: settings.password)
                    job.check = check
                    try Self.requireRestorable(check, where: nil)
                }
                setCopy(&job, DestinationCopy(destination: DestinationID.b2, remote: job.remote, verifiedAt: clock.now(), check: job.check))
                advance(&job, to: .record)
            } catch where tolerated(error) {
                primaryFailed(&job, error)
            }
        case .record:
            // The run is safe in B2 from here on: the catalog learns of it (a failure there is a warning;
            // the index is rebuilt from the bucket when it lags).
            job.warnings += await retention.record(job)
            advance(&job, to: .copy)
        case .copy:
            try await copyToSecondaries(&job)
            advance(&job, to: .retention)
        case .retention:
            job.warnings += await retention.apply(after: job, source: source)
            await cleanUpTemporary(&job)
            advance(&job, to: .notify)
        case .notify:
            // Notifications go out after the final save (jobFinished), so a crash here repeats nothing harmful.
            advance(&job, to: .done)
        case .pull, .handover, .restore:
            try await performRestoreStep(&job)
        case .done:
            return
        }
        await save(job)
    }

    func advance(_ job: inout Job, to step: JobStep) {
        job.step = step
        current?.job = job
    }

    private func create(_ job: inout Job) async throws {
        if job.supervisorJobID == nil {
            // A restart between asking and saving the job id: the backup may exist under our file name.
            if let slug = try await source.backupSlug(filename: job.plan.filename) {
                job.slug = slug
                return
            }
            let addons = job.plan.type == .full && job.plan.excludeAddons.isEmpty ? [] : try await source.installedAddons()
            let jobID = try await source.startBackup(settings.spec(for: job.plan, installedAddons: addons))
            job.supervisorJobID = jobID
            current?.job = job
            await save(job)
        }
        job.slug = try await waitForBackup(jobID: job.supervisorJobID!, filename: job.plan.filename)
    }

    private func waitForBackup(jobID: String, filename: String) async throws(PortError) -> String {
        do {
            return try await source.waitForBackup(jobID: jobID)
        } catch {
            guard error.code == "supervisor_job_unknown" else { throw error }
            // The Supervisor restarted and forgot its jobs; the file tells whether the backup was made.
            guard let slug = try await source.backupSlug(filename: filename) else {
                throw PortError(code: "backup_lost", message: "the Supervisor restarted while it was creating the backup, and the backup is not there")
            }
            return slug
        }
    }

    /// The metadata every copy carries, so a catalog can be rebuilt from any destination's listing alone.
    func uploadInfo(_ job: Job, local: LocalCopy, slug: String) -> [String: String] {
        var info = [
            "ha_slug": slug, "ha_name": job.plan.name, "ha_type": job.plan.type.rawValue,
            "ha_protected": job.plan.protected ? "true" : "false", "job_id": job.id,
        ]
        info["ha_exclude_database"] = job.plan.excludeDatabase ? "true" : "false"
        // The catalog can be rebuilt from these if its index is lost (B2 allows 2 KB of info with Object Lock).
        if let facts = local.facts {
            info["ha_date"] = ISO8601.string(facts.date)
            info["ha_type"] = facts.type
            info["ha_protected"] = facts.protected ? "true" : "false"
            if let version = facts.homeAssistantVersion { info["ha_version"] = version }
            var addons = ""
            for addon in facts.addons where addons.utf8.count + addon.utf8.count < 600 { addons += (addons.isEmpty ? "" : ",") + addon }
            info["ha_addons"] = addons
        }
        return info
    }

    private func upload(_ job: inout Job) async throws {
        guard let local = job.local, let slug = job.slug else { throw JobError(code: "internal", message: "nothing to upload") }
        let result = try await remote.upload(path: local.path, name: job.plan.filename, info: uploadInfo(job, local: local, slug: slug), settings: settings.upload,
                                             progress: progressReporter(for: job.id))
        job.remote = result
        job.bytesDone = result.size
        job.bytesTotal = result.size
    }

    private func reportProgress(_ id: String) async {
        guard let job = runningJob, job.id == id, job.step == .upload || job.step == .pull || job.step == .copy else { return }
        await observer?.jobProgressed(job)
    }

    /// B2's record of the file must match what we computed from the local copy: size and whole-file SHA-1.
    /// (Each part's SHA-1 was already checked by B2 against ours as it arrived.)
    private func verify(_ job: Job) async throws {
        guard let object = job.remote, let local = job.local else { throw JobError(code: "internal", message: "nothing to verify") }
        let facts = try await remote.facts(fileID: object.fileID)
        guard facts.size == local.size, facts.size == object.size else {
            throw JobError(code: "verify_mismatch", message: "B2 holds \(facts.size) bytes for \(object.name), the backup has \(local.size)")
        }
        guard let sha1 = facts.sha1, sha1.lowercased() == object.sha1.lowercased() else {
            throw JobError(code: "verify_mismatch", message: "the SHA-1 B2 recorded for \(object.name) (\(facts.sha1 ?? "none")) is not the backup's (\(object.sha1))")
        }
    }

    func cleanUpTemporary(_ job: inout Job) async {
        guard let local = job.local, local.temporary else { return }
        do {
            try FileManager.default.removeItem(atPath: local.path)
        } catch where (error as NSError).code == NSFileNoSuchFileError {
        } catch {
            job.warnings.append("could not remove the temporary copy \(local.path): \(error.localizedDescription)")
        }
    }

    func save(_ job: Job) async {
        do { try await store.save(job) } catch {
            logger.error("cannot save the job's progress", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
        }
    }

    static func jobError(_ error: any Error, step: JobStep) -> JobError {
        switch error {
        case var error as JobError:
            error.step = error.step ?? step
            return error
        case let error as PortError: return JobError(code: error.code, message: error.message, step: step)
        default: return JobError(code: "internal", message: "\(error)", step: step)
        }
    }

    public static func newID() -> String {
        randomHex(12)
    }

    static func randomHex(_ bytes: Int) -> String {
        (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}

/// Bytes moved by the running upload, written from upload threads and read by status requests.
final class ByteProgress: Sendable {
    private let state = Mutex<(done: Int64, total: Int64)>((0, 0))
    var value: (done: Int64, total: Int64) { state.withLock { $0 } }
    func set(_ done: Int64, _ total: Int64) { state.withLock { $0 = (done, total) } }
}

/// Lets through at most one event per interval (progress reports from upload threads).
final class Throttle: Sendable {
    private let interval: TimeInterval
    private let last = Mutex(Date.distantPast)
    init(interval: TimeInterval) { self.interval = interval }

    func isDue(_ now: Date) -> Bool {
        last.withLock { last in
            guard now.timeIntervalSince(last) >= interval else { return false }
            last = now
            return true
        }
    }
}

/// What happens once a backup is verified in B2: the catalog records it, then retention runs.
/// Both return warnings; neither can fail a backup that is already safe.
public protocol RetentionHook: Sendable {
    func record(_ job: Job) async -> [String]
    func apply(after job: Job, source: any BackupSource) async -> [String]
}

/// The add-on's hook: the cloud catalog and the retention policies.
public struct CatalogRetention: RetentionHook {
    public let service: RetentionService
    /// The secondary destinations' policies, applied after B2's (their catalogs learn of a run in the copy step).
    public let secondaries: [RetentionService]
    public init(service: RetentionService, secondaries: [RetentionService] = []) {
        self.service = service
        self.secondaries = secondaries
    }
    public func record(_ job: Job) async -> [String] { await service.record(job) }
    public func apply(after job: Job, source: any BackupSource) async -> [String] {
        var warnings = await service.afterBackup(job)
        for secondary in secondaries { warnings += await secondary.apply(during: job.id).warnings }
        return warnings
    }
}

/// Without a catalog: removes the Home Assistant backup after upload unless `keep_local` is on.
public struct LocalCopyRetention: RetentionHook {
    public let keepLocal: Bool
    public init(keepLocal: Bool) { self.keepLocal = keepLocal }

    public func record(_ job: Job) async -> [String] { [] }

    public func apply(after job: Job, source: any BackupSource) async -> [String] {
        guard !keepLocal, let slug = job.slug else { return [] }
        do {
            try await source.deleteBackup(slug: slug)
            return []
        } catch {
            return ["the local backup \(slug) was uploaded but could not be removed: \(error.message)"]
        }
    }
}
