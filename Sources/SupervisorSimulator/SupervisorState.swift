import Foundation

/// Everything the simulated Supervisor and Core remember: the backup index, jobs, Core's state machine,
/// entity states, and the records tests inspect.
actor SupervisorState {
    /// A backup in the index: its metadata (from backup.json) and its file.
    struct Backup: Sendable {
        var metadata: BackupMetadata
        var file: URL
        var sizeBytes: Int64

        var slug: String { metadata.slug }
    }

    /// A Supervisor job (`jobs/__init__.py SupervisorJob`).
    struct Job: Sendable {
        let uuid: String
        let name: String
        var reference: String?
        var progress = 0
        var stage: String?
        var done: Bool? = false
        var errors: [SimulatedJob.Failure] = []
        let created: String
        /// Jobs this one started (`backup_restore_addons` → `backup_addon_restore`, …).
        var children: [Job] = []
    }

    /// How to stop a job's work and wait for it, whatever its result type.
    struct JobHandle: Sendable {
        let cancel: @Sendable () -> Void
        let wait: @Sendable () async -> Void

        init<T: Sendable>(_ task: Task<T, Never>) {
            cancel = { task.cancel() }
            wait = { _ = await task.value }
        }
    }

    /// The backup and restore jobs, with the names the Supervisor gives them.
    enum JobKind: Sendable {
        case fullBackup, partialBackup, fullRestore, partialRestore, freeze

        var name: String {
            switch self {
            case .fullBackup: "backup_manager_full_backup"
            case .partialBackup: "backup_manager_partial_backup"
            case .fullRestore: "backup_manager_full_restore"
            case .partialRestore: "backup_manager_partial_restore"
            case .freeze: "backup_manager_freeze_all"
            }
        }

        /// The qualified method name the job decorator puts in condition errors.
        var method: String {
            switch self {
            case .fullBackup: "BackupManager.do_backup_full"
            case .partialBackup: "BackupManager.do_backup_partial"
            case .fullRestore: "BackupManager.do_restore_full"
            case .partialRestore: "BackupManager.do_restore_partial"
            case .freeze: "BackupManager.freeze_all"
            }
        }
    }

    /// `CoreState` as `/info` reports it.
    enum Phase: String, Sendable {
        case running, freeze
    }

    private(set) var backups: [Backup] = []
    private var jobs: [Job] = []
    private(set) var phase = Phase.running
    private var activeJob: String?
    /// Core is stopped (full restore, or a partial one with Home Assistant): the proxy answers 502.
    private(set) var coreStopped = false
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    private var tasks: [String: JobHandle] = [:]
    private(set) var installedAddons: [SupervisorSimulator.InstalledAddon]
    /// Passwords of the protected backups written here (created or seeded), by slug; the restore checks
    /// against them. A protected backup not in here (uploaded, or found in the folder) has its password
    /// checked against its first inner archive instead.
    private var passwords: [String: KnownPassword] = [:]
    private var requestCounts: [String: Int] = [:]
    private(set) var coreCalls: [CoreCall] = []
    private(set) var entityStates: [String: EntityState] = [:]
    private var entityOrder: [String] = []
    private(set) var notifications: [String: PersistentNotification] = [:]
    private(set) var restores: [RestoreRecord] = []

    init(backups: [Backup], installedAddons: [SupervisorSimulator.InstalledAddon]) {
        self.backups = backups
        self.installedAddons = installedAddons
    }

    // MARK: Requests

    func count(_ path: String) { requestCounts[path, default: 0] += 1 }
    func requestCount(_ path: String) -> Int { requestCounts[path] ?? 0 }

    // MARK: Backup index

    func backup(_ slug: String) -> Backup? { backups.first { $0.slug == slug } }

    /// Adds a backup; an entry for the same file or the same slug is replaced.
    func add(_ backup: Backup) {
        backups.removeAll { $0.slug == backup.slug || $0.file.standardizedFileURL == backup.file.standardizedFileURL }
        backups.append(backup)
    }

    func remove(slug: String) { backups.removeAll { $0.slug == slug } }

    /// After `POST /backups/reload`: the folder's contents replace the index.
    func replaceAll(_ scanned: [Backup]) { backups = scanned }

    /// How the restore checks the password of a protected backup written here.
    enum KnownPassword: Sendable, Hashable {
        /// The password it was made with.
        case exactly(String)
        /// Seeded without a password (encrypted with a random one): any non-empty password is taken.
        case anyNonEmpty
    }

    func rememberPassword(_ password: KnownPassword, slug: String) { passwords[slug] = password }

    func password(slug: String) -> KnownPassword? { passwords[slug] }

    // MARK: Jobs

    /// Starts a backup or restore job (`JobConcurrency.GROUP_REJECT` plus `JobCondition.RUNNING`): refused
    /// while another runs or the system is frozen, with the job decorator's message.
    func startJob(_ kind: JobKind) throws(APIError) -> String {
        if activeJob != nil || phase != .running {
            throw Self.blocked(kind, phase: activeJob != nil ? .freeze : phase)
        }
        let uuid = Self.newJobID()
        jobs.append(Job(uuid: uuid, name: kind.name, created: BackupMetadata.isoDate(Date())))
        activeJob = uuid
        return uuid
    }

    static func blocked(_ kind: JobKind, phase: Phase = .freeze) -> APIError {
        APIError("'\(kind.method)' blocked from execution, system is not running - \(phase.rawValue)")
    }

    /// The system enters `freeze` (backups and restores do this once their checks passed).
    func freeze(stoppingCore: Bool = false) {
        phase = .freeze
        if stoppingCore { coreStopped = true }
    }

    func update(_ uuid: String, reference: String? = nil, stage: String? = nil) {
        guard let index = jobs.firstIndex(where: { $0.uuid == uuid }) else { return }
        if let reference { jobs[index].reference = reference }
        if let stage { jobs[index].stage = stage }
    }

    func stage(of uuid: String) -> String? { jobs.first { $0.uuid == uuid }?.stage }

    /// Ends a job. A job whose method returned (even after capturing an error) ends at progress 100; one
    /// whose method raised keeps its progress (`SupervisorJob.start()`).
    func finish(_ uuid: String, error: SimulatedJob.Failure? = nil, completed: Bool = true) {
        if let index = jobs.firstIndex(where: { $0.uuid == uuid }) {
            if let error { jobs[index].errors.append(error) }
            if completed { jobs[index].progress = 100 }
            jobs[index].done = true
        }
        // Stops what is left of the job's work (a freeze's timeout); harmless when called from the job itself.
        tasks.removeValue(forKey: uuid)?.cancel()
        guard activeJob == uuid else { return }
        activeJob = nil
        phase = .running
        coreStopped = false
        let waiters = idleWaiters
        idleWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    func register<T: Sendable>(_ task: Task<T, Never>, for uuid: String) {
        // A job that already finished has cleaned up; keep nothing for it.
        guard jobs.first(where: { $0.uuid == uuid })?.done == false else { return }
        tasks[uuid] = JobHandle(task)
    }

    /// The running jobs' work, for shutdown.
    func runningTasks() -> [JobHandle] { Array(tasks.values) }

    /// Adds a finished child job (with its own children) under a job.
    func addChild(_ child: Job, to uuid: String) {
        guard let index = jobs.firstIndex(where: { $0.uuid == uuid }) else { return }
        jobs[index].children.append(child)
    }

    static func newJobID() -> String { UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }

    /// Returns once no backup, restore or freeze is running.
    func waitForIdle() async {
        guard activeJob != nil else { return }
        await withCheckedContinuation { idleWaiters.append($0) }
    }

    var isIdle: Bool { activeJob == nil }

    func job(_ uuid: String) -> Job? { jobs.first { $0.uuid == uuid } }

    func allJobs() -> [Job] { jobs }

    // MARK: Restores and add-ons

    func record(_ restore: RestoreRecord) { restores.append(restore) }

    /// A full restore uninstalls add-ons that are not in the backup and installs the backup's ones
    /// (`remove_delta_addons`, `restore_addons`); a partial one only (re)installs the ones asked for.
    func applyRestore(addons: [BackupMetadata.Addon], replace: Bool) {
        if replace { installedAddons.removeAll { installed in !addons.contains { $0.slug == installed.slug } } }
        for addon in addons {
            let restored = SupervisorSimulator.InstalledAddon(slug: addon.slug, name: addon.name, version: addon.version)
            if let index = installedAddons.firstIndex(where: { $0.slug == addon.slug }) {
                installedAddons[index] = restored
            } else {
                installedAddons.append(restored)
            }
        }
    }

    // MARK: Core

    func recordCoreCall(_ call: CoreCall) { coreCalls.append(call) }

    /// Core's `hass.states.async_set`: `last_changed` moves when the state changes, `last_updated` when
    /// the state or attributes change, `last_reported` on every write. Returns the state and whether it is new.
    func setState(_ entityID: String, state: String, attributes: [String: JSONValue]) -> (EntityState, created: Bool) {
        let now = BackupMetadata.isoDate(Date())
        let old = entityStates[entityID]
        let changed = old?.state != state
        let updated = changed || old?.attributes != attributes
        let new = EntityState(entityID: entityID, state: state, attributes: attributes,
                              lastChanged: changed ? now : old!.lastChanged, lastUpdated: updated ? now : old!.lastUpdated, lastReported: now)
        if old == nil { entityOrder.append(entityID) }
        entityStates[entityID] = new
        return (new, old == nil)
    }

    func state(_ entityID: String) -> EntityState? { entityStates[entityID] }

    func allStates() -> [EntityState] { entityOrder.compactMap { entityStates[$0] } }

    /// Core restarted: bare states (not backed by an entity) are gone; notifications too.
    func restartCore() {
        entityStates.removeAll()
        entityOrder.removeAll()
        notifications.removeAll()
    }

    /// The Supervisor restarted: jobs are kept only in memory (`cleanup=False` until restart).
    func forgetFinishedJobs() {
        jobs.removeAll { $0.done == true }
    }

    func removeState(_ entityID: String) -> Bool {
        guard entityStates.removeValue(forKey: entityID) != nil else { return false }
        entityOrder.removeAll { $0 == entityID }
        return true
    }

    func notify(_ notification: PersistentNotification) { notifications[notification.notificationID] = notification }

    func dismiss(_ notificationID: String?) {
        if let notificationID { notifications[notificationID] = nil } else { notifications.removeAll() }
    }
}
