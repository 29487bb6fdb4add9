import BackupArchive
import Foundation
import HTTPServer
import Logging
import Synchronization

/// A Home Assistant Supervisor on 127.0.0.1 for tests and the local demo: the v1 backup API with jobs,
/// the add-on's view of `/info` and `/addons/self/info`, and the Core API proxy with a small simulated
/// Core behind it (states, services, events).
///
/// Envelopes, status codes, messages and rules follow Supervisor 2026.08 and Core, never a client:
/// `{"result":"ok","data":…}` / `{"result":"error","message":…}`, plain-text `401: Unauthorized` and
/// `403: Forbidden` from the security middleware, the `backup` role's path patterns, jobs polled through
/// `GET /jobs/info`, one backup or restore at a time, and real backup tars in ``Configuration/backupDirectory``.
///
/// A backup made with a password is protected as the real one is: every inner archive is SecureTar (v3 with
/// Core 2026.3.0 or newer, else v2) under one key derived from the password, so ``BackupVerifier`` opens it
/// with that password only. A restore compares the password with the one the backup was made with; for a
/// protected backup it did not write (uploaded, or found in the folder) it opens the first inner archive
/// with it, as `Backup.validate_backup` does.
///
/// Not simulated: backup mounts
/// (`.cloud_backup` is refused as the real API refuses an add-on; other names are unknown mounts), Core's
/// websocket, and the stop of the calling add-on during a full restore.
///
/// ```swift
/// let supervisor = try SupervisorSimulator(configuration: .init(backupDirectory: dir), logger: logger)
/// supervisor.start()
/// // SUPERVISOR_URL = supervisor.url, SUPERVISOR_TOKEN = configuration.token
/// await supervisor.shutdown()
/// ```
/// - SeeAlso: https://developers.home-assistant.io/docs/api/supervisor/endpoints
public final class SupervisorSimulator: Sendable {
    /// An installed add-on as the Supervisor lists it.
    public struct InstalledAddon: Sendable, Hashable {
        /// `<repository hash>_<slug>`, `core_<slug>` or `local_<slug>`.
        public var slug: String
        public var name: String
        public var version: String

        public init(slug: String, name: String, version: String) {
            self.slug = slug
            self.name = name
            self.version = version
        }
    }

    /// The installation being simulated. Defaults describe a typical HA OS box.
    public struct Configuration: Sendable {
        /// The add-on's `SUPERVISOR_TOKEN`: a missing token gets 401, any other token 403 (plain text).
        public var token: String
        /// The add-on's `hassio_role`: `default`, `homeassistant`, `backup`, `manager` or `admin`.
        public var role: String
        /// `hassio_api`: without it only `/addons/self/*`, `/info`, `/services*`, `/discovery*` and `/auth` work.
        public var hassioAPI: Bool
        /// `homeassistant_api`: access to the Core proxy at `/core/api/`.
        public var homeassistantAPI: Bool
        /// The add-on's `/backup` (the Supervisor's local backup folder); created if missing, never deleted.
        public var backupDirectory: URL
        public var timezone: String
        /// Installed add-ons; a full backup contains all of them.
        public var installedAddons: [(slug: String, name: String, version: String)]
        /// Folders that exist; a full backup contains all of them (`share`, `ssl`, `media`, `addons/local`).
        public var folders: [String]
        public var homeassistantVersion: String
        public var supervisorVersion: String
        /// Add-on store repositories, written into backup.json.
        public var repositories: [String]
        /// Bytes of random data in `homeassistant.tar.gz`, to make backups of a chosen size.
        public var backupPayloadBytes: Int
        /// How long a backup or restore job runs before it is done.
        public var jobDuration: Duration
        /// What `GET /addons/self/info` describes: the calling add-on.
        public var selfAddon: InstalledAddon
        /// The calling add-on's options (`/addons/self/info` → `options`).
        public var selfOptions: JSONObject
        /// `notify.<service>` services Core has (`persistent_notification` is always there).
        public var notifyServices: [String]

        public init(token: String = "simulated-supervisor-token",
                    role: String = "backup",
                    hassioAPI: Bool = true,
                    homeassistantAPI: Bool = true,
                    backupDirectory: URL,
                    timezone: String = "Europe/Amsterdam",
                    installedAddons: [(slug: String, name: String, version: String)] = [
                        ("core_mosquitto", "Mosquitto broker", "6.5.1"),
                        ("45df7312_zigbee2mqtt", "Zigbee2MQTT", "2.6.0-1"),
                    ],
                    folders: [String] = ["share", "ssl", "media", "addons/local"],
                    homeassistantVersion: String = "2026.11.2",
                    supervisorVersion: String = "2026.08.0",
                    repositories: [String] = ["https://github.com/hassio-addons/repository", "https://github.com/zigbee2mqtt/hassio-zigbee2mqtt"],
                    backupPayloadBytes: Int = 64 * 1024,
                    jobDuration: Duration = .milliseconds(50),
                    selfAddon: InstalledAddon = InstalledAddon(slug: "local_b2_backup", name: "B2 Backup", version: "0.1.0"),
                    selfOptions: JSONObject = [:],
                    notifyServices: [String] = ["mobile_app_phone"]) {
            self.token = token
            self.role = role
            self.hassioAPI = hassioAPI
            self.homeassistantAPI = homeassistantAPI
            self.backupDirectory = backupDirectory
            self.timezone = timezone
            self.installedAddons = installedAddons
            self.folders = folders
            self.homeassistantVersion = homeassistantVersion
            self.supervisorVersion = supervisorVersion
            self.repositories = repositories
            self.backupPayloadBytes = backupPayloadBytes
            self.jobDuration = jobDuration
            self.selfAddon = selfAddon
            self.selfOptions = selfOptions
            self.notifyServices = notifyServices
        }
    }

    /// The local demo's installation: token `demo-supervisor-token`, Mosquitto, Zigbee2MQTT, Studio Code
    /// Server and the B2 Backup add-on itself, all folders, and jobs that take a visible second.
    public static func demoConfiguration(backupDirectory: URL) -> Configuration {
        Configuration(token: "demo-supervisor-token", backupDirectory: backupDirectory,
                      installedAddons: [
                          ("core_mosquitto", "Mosquitto broker", "6.5.1"),
                          ("45df7312_zigbee2mqtt", "Zigbee2MQTT", "2.6.0-1"),
                          ("a0d7b954_vscode", "Studio Code Server", "5.19.3"),
                          ("local_b2_backup", "B2 Backup", "0.1.0"),
                      ],
                      backupPayloadBytes: 256 * 1024, jobDuration: .seconds(1))
    }

    public let configuration: Configuration
    /// Rules that make the next requests fail the ways the Supervisor fails.
    public let faults: SupervisorFaultInjector
    let state: SupervisorState
    private let server: HTTPServer
    private let logger: Logger
    private let scratchDirectory: URL
    private let running = Mutex<Task<Void, Never>?>(nil)

    /// `http://127.0.0.1:PORT`: what `SUPERVISOR_URL` is set to (`http://supervisor` in a real add-on).
    public var url: String { "http://127.0.0.1:\(server.port)" }

    /// Binds on 127.0.0.1 with a free port, so ``url`` is known (and connectable) before ``start()``,
    /// and loads the backups already in the backup folder.
    /// - Throws: ``SupervisorSimulatorError`` when the folders cannot be created or the socket cannot be bound.
    public init(configuration: Configuration, logger: Logger) throws {
        guard ["default", "homeassistant", "backup", "manager", "admin"].contains(configuration.role) else {
            throw SupervisorSimulatorError("unknown hassio_role \(configuration.role)")
        }
        self.configuration = configuration
        self.logger = logger
        scratchDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("supervisor-simulator-\(UUID().uuidString)", isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: configuration.backupDirectory, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: scratchDirectory, withIntermediateDirectories: true)
        } catch {
            throw SupervisorSimulatorError("cannot create \(configuration.backupDirectory.path) or a scratch folder: \(error.localizedDescription)")
        }
        let installed = configuration.installedAddons.map { InstalledAddon(slug: $0.slug, name: $0.name, version: $0.version) }
        state = SupervisorState(backups: BackupScanner.scan(configuration.backupDirectory, logger: logger), installedAddons: installed)
        faults = SupervisorFaultInjector()
        let context = Context(configuration: configuration, state: state, faults: faults, scratch: scratchDirectory, logger: logger)
        // aiohttp's client_max_size in the Supervisor is 16 MiB; uploads stream without a cap.
        let serverConfiguration = HTTPServer.Configuration(host: "127.0.0.1", port: 0, defaultBodyLimit: 16 << 20, shutdownGracePeriod: .seconds(2))
        do {
            server = try HTTPServer(configuration: serverConfiguration, router: Routes.router(context), logger: logger)
        } catch {
            try? FileManager.default.removeItem(at: scratchDirectory)
            throw SupervisorSimulatorError("cannot bind the simulator's server: \(error)")
        }
    }

    /// Serves requests in a background task.
    public func start() {
        running.withLock { task in
            precondition(task == nil, "SupervisorSimulator.start() called twice")
            let server = server
            let logger = logger
            task = Task {
                do {
                    try await server.run()
                } catch {
                    logger.error("Supervisor simulator server stopped with an error", metadata: ["error": "\(error)"])
                }
            }
        }
        logger.info("Supervisor simulator running", metadata: ["supervisor.url": "\(url)", "supervisor.backup_dir": "\(configuration.backupDirectory.path)"])
    }

    /// Stops the server, cancels running jobs (their partial files are removed) and deletes scratch files.
    /// The backup folder is left as it is.
    public func shutdown() async {
        server.shutdown()
        let task = running.withLock { $0 }
        await task?.value
        for job in await state.runningTasks() {
            job.cancel()
            await job.wait()
        }
        try? FileManager.default.removeItem(at: scratchDirectory)
    }

    // MARK: Inspection for tests

    /// The backup index, as `GET /backups` lists it.
    public func backups() async -> [SimulatedBackup] {
        await state.backups.map(Self.inspect)
    }

    /// Every request that reached Core through the proxy, in order.
    public func coreCalls() async -> [CoreCall] { await state.coreCalls }

    /// Entity states posted through `/core/api/states/<entity_id>`, by entity ID.
    public func states() async -> [String: EntityState] { await state.entityStates }

    /// Simulates a Home Assistant restart: every state posted through the proxy, and every notification, is forgotten.
    public func restartCore() async { await state.restartCore() }

    /// Simulates a Supervisor restart between jobs: finished jobs vanish from `/jobs/info`.
    public func forgetFinishedJobs() async { await state.forgetFinishedJobs() }

    /// Persistent notifications currently shown, by notification ID.
    public func notifications() async -> [String: PersistentNotification] { await state.notifications }

    /// Restores the Supervisor accepted, in order.
    public func restores() async -> [RestoreRecord] { await state.restores }

    /// Every job since start, in creation order.
    public func jobs() async -> [SimulatedJob] {
        await state.allJobs().map { SimulatedJob(uuid: $0.uuid, name: $0.name, reference: $0.reference, progress: $0.progress,
                                                 stage: $0.stage, done: $0.done, errors: $0.errors, created: $0.created) }
    }

    /// Installed add-ons (a full restore replaces them with the backup's).
    public func installedAddons() async -> [InstalledAddon] { await state.installedAddons }

    /// How many requests had exactly this path (`/backups/new/full`), refused ones included.
    public func requestCount(_ path: String) async -> Int { await state.requestCount(path) }

    /// Returns once no backup, restore or freeze runs; at once when none does.
    public func waitForIdle() async { await state.waitForIdle() }

    /// Puts a backup in the folder and the index as if an earlier Supervisor had made it: a real tar with
    /// every installed add-on and folder (`full`) or Home Assistant and the add-ons (`partial`).
    /// - Parameters:
    ///   - date: written as backup.json's `date`; the slug is derived from it and the name.
    ///   - fileName: the file's name; nil = `<slug>.tar`.
    ///   - protected: writes the backup protected (SecureTar, as ``Configuration/homeassistantVersion`` decides,
    ///     v3 from Core 2026.3.0): encrypted with `password`, or with a random one when nil. A restore then
    ///     needs `password` (any non-empty one when nil). Costs one Argon2id (about 2 s in a debug build) for v3.
    /// - Returns: the slug.
    /// - Throws: ``SupervisorSimulatorError`` when the file exists or cannot be written.
    @discardableResult
    public func addExistingBackup(name: String, type: String = "full", date: Date, fileName: String? = nil, protected: Bool = false,
                                  password: String? = nil) async throws -> String {
        guard type == "full" || type == "partial" else { throw SupervisorSimulatorError("backup type must be full or partial, not \(type)") }
        let isoDate = BackupMetadata.isoDate(date)
        let slug = BackupMetadata.slug(name: name, date: isoDate)
        let file = configuration.backupDirectory.appendingPathComponent(fileName ?? "\(slug).tar")
        guard !FileManager.default.fileExists(atPath: file.path) else { throw SupervisorSimulatorError("\(file.path) already exists") }
        let addons = await state.installedAddons
        var metadata = BackupMetadata(slug: slug, name: name, date: isoDate, type: type, supervisorVersion: configuration.supervisorVersion)
        metadata.protected = protected
        metadata.repositories = configuration.repositories
        metadata.homeassistant = .init(version: configuration.homeassistantVersion, excludeDatabase: false)
        metadata.folders = type == "full" ? BackupMetadata.allFolders.filter(configuration.folders.contains) : []
        let plan = BackupPlan(metadata: metadata, addons: addons, payloadBytes: configuration.backupPayloadBytes)
        let password = password.flatMap { $0.isEmpty ? nil : $0 }
        var protection: SecureTarBackupKey?
        if protected {
            let secret = password ?? UUID().uuidString
            let version = BackupJobs.secureTarVersion(coreVersion: configuration.homeassistantVersion)
            protection = try await BackupJobs.offload { SecureTarBackupKey(password: secret, version: version) }
        }
        let size = try await BackupJobs.write(plan, to: file, scratch: scratchDirectory, protection: protection)
        metadata.addons = addons.map { .init(slug: $0.slug, name: $0.name, version: $0.version) }
        await state.add(.init(metadata: metadata, file: file, sizeBytes: size))
        if protected { await state.rememberPassword(password.map { .exactly($0) } ?? .anyNonEmpty, slug: slug) }
        return slug
    }

    static func inspect(_ backup: SupervisorState.Backup) -> SimulatedBackup {
        let metadata = backup.metadata
        return SimulatedBackup(slug: metadata.slug, name: metadata.name, date: metadata.date, type: metadata.type, file: backup.file,
                               sizeBytes: backup.sizeBytes, protected: metadata.protected, compressed: metadata.compressed,
                               content: .init(homeassistant: metadata.homeassistant != nil, addons: metadata.addons.map(\.slug), folders: metadata.folders),
                               homeassistantVersion: metadata.homeassistant?.version, supervisorVersion: metadata.supervisorVersion,
                               extra: .object(metadata.extra))
    }
}

/// What every handler needs.
struct Context: Sendable {
    let configuration: SupervisorSimulator.Configuration
    let state: SupervisorState
    let faults: SupervisorFaultInjector
    let scratch: URL
    let logger: Logger
}

/// Reads the backup folder the way `BackupManager.reload()` does: every `*.tar` whose backup.json loads.
enum BackupScanner {
    static func load(_ file: URL) -> SupervisorState.Backup? {
        guard let bytes = try? TarReader.backupJSON(in: file), let metadata = BackupMetadata.parse(bytes) else { return nil }
        let size = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? NSNumber)?.int64Value ?? 0
        return SupervisorState.Backup(metadata: metadata, file: file, sizeBytes: size)
    }

    static func scan(_ directory: URL, logger: Logger) -> [SupervisorState.Backup] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var backups: [SupervisorState.Backup] = []
        for name in names.sorted() where name.hasSuffix(".tar") {
            let file = directory.appendingPathComponent(name)
            guard let backup = load(file) else {
                logger.info("Supervisor simulator: cannot read backup", metadata: ["supervisor.file": "\(name)"])
                continue
            }
            guard !backups.contains(where: { $0.slug == backup.slug }) else {
                logger.info("Supervisor simulator: duplicate backup slug ignored", metadata: ["supervisor.file": "\(name)", "supervisor.slug": "\(backup.slug)"])
                continue
            }
            backups.append(backup)
        }
        return backups
    }
}
