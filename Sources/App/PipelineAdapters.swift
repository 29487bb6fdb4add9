import B2Client
import BackupArchive
import Core
import Foundation
import Logging
import Storage
import SupervisorClient
import Synchronization

/// Home Assistant's backups through the Supervisor API and the local backup folder.
struct SupervisorBackupSource: BackupSource {
    let client: SupervisorClient
    let index: LocalBackupIndex
    /// Where backups that are not in the backup folder (network mounts) are downloaded to; in /data.
    let temporaryDirectory: URL
    /// Between `/jobs/info` polls while the Supervisor creates a backup.
    let pollInterval: Duration

    func homeAssistantVersion() async -> String? {
        try? await client.info().homeassistant
    }

    func installedAddons() async throws(PortError) -> [String] {
        do { return try await client.installedAddons() } catch { throw Self.port(error) }
    }

    func installedAddonIdentities() async throws(PortError) -> [AddonIdentity] {
        do { return try await client.installedAddonDetails().map { AddonIdentity(slug: $0.slug, name: $0.name) } } catch { throw Self.port(error) }
    }

    func startBackup(_ spec: BackupSpec) async throws(PortError) -> String {
        let backup = NewBackup(name: spec.name, filename: spec.filename, password: spec.password, compressed: true,
                               excludeDatabase: spec.excludeDatabase ? true : nil, homeassistant: spec.isPartial ? true : nil,
                               addons: spec.addons, folders: spec.folders)
        do { return try await client.startBackup(backup) } catch { throw Self.port(error) }
    }

    func waitForBackup(jobID: String) async throws(PortError) -> String {
        do {
            let job = try await client.waitForJob(jobID, pollInterval: pollInterval)
            guard let slug = job.reference else {
                throw PortError(code: "supervisor_invalid_response", message: "the Supervisor finished the backup job without naming the backup")
            }
            return slug
        } catch let error as PortError {
            throw error
        } catch let error as SupervisorError {
            throw Self.port(error)
        } catch {
            throw PortError(code: "internal", message: "\(error)")
        }
    }

    func backupSlug(filename: String) async throws(PortError) -> String? {
        await index.scan().backups.first { URL(fileURLWithPath: $0.path).lastPathComponent == filename }?.metadata.slug
    }

    func locate(slug: String, filename: String) async throws(PortError) -> LocalCopy {
        if let local = await index.backup(slug: slug) {
            return LocalCopy(path: local.path, size: local.size, temporary: false, facts: Self.facts(local.metadata))
        }
        // Not in /backup (a network mount): stream it from the Supervisor into /data, removed after the run.
        let path = temporaryDirectory.appendingPathComponent(filename).path
        do {
            try FileManager.default.createDirectory(at: temporaryDirectory, withIntermediateDirectories: true)
            let expected = try await client.backupInfo(slug: slug).size_bytes
            if let expected, let size = Self.size(of: path), size == expected {
                return LocalCopy(path: path, size: size, temporary: true, facts: Self.facts(ofTar: path)) // downloaded before a restart
            }
            let written = try await client.downloadBackup(slug: slug, to: path)
            if let expected, written != expected {
                try? FileManager.default.removeItem(atPath: path)
                throw PortError(code: "download_incomplete", message: "the Supervisor sent \(written) of \(expected) bytes of backup \(slug)")
            }
            return LocalCopy(path: path, size: written, temporary: true, facts: Self.facts(ofTar: path))
        } catch let error as PortError {
            throw error
        } catch let error as SupervisorError {
            try? FileManager.default.removeItem(atPath: path)
            throw Self.port(error)
        } catch {
            throw PortError(code: "local_storage", message: "cannot write \(path): \(error.localizedDescription)")
        }
    }

    func deleteBackup(slug: String) async throws(PortError) {
        do { try await client.deleteBackup(slug: slug) } catch { throw Self.port(error) }
    }

    func homeAssistantBackups() async throws(PortError) -> [HomeAssistantBackup] {
        do {
            return try await client.backups().map { backup in
                // `.local` (or null, before 2025.01) is the local folder; mounts have their own names.
                let locations = (backup.locations ?? [backup.location]).map { $0 ?? ".local" }
                return HomeAssistantBackup(slug: backup.slug, name: backup.name, date: BackupMetadata.parseDate(backup.date) ?? .distantPast,
                                           size: backup.size_bytes ?? Int64((backup.size ?? 0) * 1_048_576), protected: backup.protected,
                                           type: backup.type, isLocal: locations.contains(".local"))
            }
        } catch {
            throw Self.port(error)
        }
    }

    func uploadBackup(path: String, filename: String) async throws(PortError) -> String {
        do { return try await client.uploadBackup(path: path, filename: filename) } catch { throw Self.port(error) }
    }

    func startRestore(_ spec: RestoreSpec, password: String?) async throws(PortError) -> String {
        let request = spec.partial
            ? RestoreRequest(password: password, homeassistant: spec.homeassistant ?? false, addons: spec.addons ?? [], folders: spec.folders ?? [])
            : RestoreRequest(password: password)
        do { return try await client.startRestore(slug: spec.slug, request) } catch { throw Self.port(error) }
    }

    func waitForRestore(jobID: String) async throws(PortError) {
        do {
            _ = try await client.waitForJob(jobID, pollInterval: pollInterval)
        } catch {
            if case .jobFailed = error { throw PortError(code: "restore_failed", message: error.description) }
            throw Self.port(error)
        }
    }

    /// `/backup/.b2-backup/restore-<job>.json`: unlike `/data`, the backup folder is not replaced by a full
    /// restore, and the Supervisor only looks at `*.tar` files directly in it. The run script gives the
    /// folder to the service user.
    var intentDirectory: URL { index.directory.appendingPathComponent(".b2-backup") }
    func intentPath(_ id: String) -> URL { intentDirectory.appendingPathComponent("restore-\(id).json") }

    func saveRestoreIntent(_ job: Job) async {
        guard let data = try? StoredJobStore.encoder.encode(job) else { return }
        try? FileManager.default.createDirectory(at: intentDirectory, withIntermediateDirectories: true)
        try? data.write(to: intentPath(job.id), options: .atomic)
    }

    func restoreIntents() async -> [Job] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: intentDirectory.path)) ?? []
        return names.filter { $0.hasPrefix("restore-") && $0.hasSuffix(".json") }.compactMap { name in
            guard let data = try? Data(contentsOf: intentDirectory.appendingPathComponent(name)) else { return nil }
            return try? StoredJobStore.decode(StoredJob(id: "", kind: "", state: "", startedAt: 0, finishedAt: nil, record: String(decoding: data, as: UTF8.self)))
        }
    }

    func removeRestoreIntent(id: String) async {
        try? FileManager.default.removeItem(at: intentPath(id))
    }

    /// What the catalog keeps of a backup's `backup.json`.
    static func facts(_ metadata: BackupMetadata) -> BackupFacts? {
        guard let date = metadata.parsedDate else { return nil }
        return BackupFacts(date: date, type: metadata.type, protected: metadata.protected, homeAssistantVersion: metadata.homeassistant?.version,
                           addons: metadata.addons.map(\.slug), folders: metadata.folders)
    }

    static func facts(ofTar path: String) -> BackupFacts? {
        guard let json = try? TarReader.backupJSON(in: URL(fileURLWithPath: path)), let metadata = try? BackupMetadata.parse(json) else { return nil }
        return facts(metadata)
    }

    static func size(of path: String) -> Int64? {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value
    }

    /// The Supervisor's own words reach the user; the code says which kind of failure it was.
    static func port(_ error: SupervisorError) -> PortError {
        let code = switch error {
        case .refused: "supervisor_refused"
        case .unauthorized: "supervisor_unauthorized"
        case .transport: "supervisor_unreachable"
        case .invalidResponse: "supervisor_invalid_response"
        case .jobFailed: "backup_failed"
        case .timedOut: "supervisor_timeout"
        case .jobUnknown: "supervisor_job_unknown"
        case .cancelled: "cancelled"
        }
        return PortError(code: code, message: error.description)
    }
}

/// Backups in a B2 bucket under the `b2_prefix` folder.
final class B2RemoteStore: RemoteStore {
    let client: B2Client
    let engine: UploadEngine
    let bucketName: String
    let prefix: String
    /// With Object Lock on the bucket, each backup is locked for this many days (`immutable_days`); 0 = none.
    let immutableDays: Int
    let logger: Logger
    private let bucket = Mutex<B2Bucket?>(nil)
    private let warnedAboutLock = Mutex(false)

    init(client: B2Client, journal: any UploadJournal, bucketName: String, prefix: String, immutableDays: Int = 0, logger: Logger) {
        self.client = client
        self.engine = UploadEngine(client: client, journal: journal, logger: logger)
        self.bucketName = bucketName
        self.prefix = prefix
        self.immutableDays = immutableDays
        self.logger = logger
    }

    /// `<prefix>/<name>`, or the bare name without a prefix.
    func objectName(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix)/\(name)" }

    func resolvedBucket() async throws(B2Error) -> B2Bucket {
        if let cached = bucket.withLock({ $0 }) { return cached }
        let found = try await client.bucket(named: bucketName)
        bucket.withLock { $0 = found }
        return found
    }

    func upload(path: String, name: String, info: [String: String], settings: UploadSettings,
                progress: @escaping @Sendable (Int64, Int64) -> Void) async throws(PortError) -> RemoteObject {
        do throws(B2Error) {
            let bucket = try await resolvedBucket()
            var options = UploadOptions(concurrency: settings.concurrency, maxBytesPerSecond: settings.bytesPerSecond, fileInfo: info)
            if immutableDays > 0, bucket.fileLockEnabled {
                // Governance mode: safe from a stolen key without bypassGovernance, yet removable by the owner in an emergency.
                options.retention = B2FileRetention(mode: .governance, retainUntil: Date().addingTimeInterval(TimeInterval(immutableDays) * 86_400))
            } else if immutableDays > 0, !warnedAboutLock.withLock({ $0 }) {
                warnedAboutLock.withLock { $0 = true }
                logger.warning("immutable_days is set but the bucket has no Object Lock (or the key may not read it): uploads are not locked",
                               metadata: ["b2.bucket": "\(bucketName)"])
            }
            // After a restart between "uploaded" and "saved": the same job's finished file is taken as it is.
            let result: UploadResult
            if let done = try await engine.existing(path: path, bucket: bucket, fileName: objectName(name), info: ["job_id": info["job_id"] ?? ""]) {
                result = done
            } else {
                result = try await engine.upload(path: path, bucket: bucket, fileName: objectName(name), options: options) { update in
                    // Hashing reports its own byte count first; the job counts bytes sent.
                    if update.phase != .hashing { progress(update.bytesDone, update.totalBytes) }
                }
            }
            guard let fileID = result.file.fileId else { throw B2Error.invalidResponse(operation: "upload", detail: "no fileId") }
            return RemoteObject(fileID: fileID, name: result.file.fileName, size: result.file.contentLength ?? 0, sha1: result.sha1, parts: result.partCount)
        } catch {
            throw Self.port(error)
        }
    }

    func facts(fileID: String) async throws(PortError) -> RemoteFileFacts {
        do {
            let file = try await client.fileInfo(fileID: fileID)
            return RemoteFileFacts(size: file.contentLength ?? -1, sha1: file.sha1)
        } catch {
            throw Self.port(error)
        }
    }

    func summary() async throws(PortError) -> RemoteSummary {
        do {
            let bucket = try await resolvedBucket()
            let files = try await client.listFileNames(bucketID: bucket.bucketId, prefix: prefix.isEmpty ? "" : prefix + "/")
                .filter { $0.fileName.hasSuffix(".tar") && ($0.action ?? "upload") == "upload" }
            return RemoteSummary(backups: files.count, bytes: files.reduce(0) { $0 + ($1.contentLength ?? 0) })
        } catch {
            throw Self.port(error)
        }
    }

    /// B2's codes turned into the pipeline's; the message keeps B2's words and our hint.
    static func port(_ error: B2Error) -> PortError {
        let code: String
        switch error {
        case .service(_, let status, let b2Code, _, _):
            code = switch b2Code {
            case "bad_auth_token", "expired_auth_token", "unauthorized": "b2_auth_failed"
            case "cap_exceeded", "storage_cap_exceeded", "transaction_cap_exceeded": "b2_cap_exceeded"
            case "access_denied": "b2_access_denied"
            default: status == 401 ? "b2_auth_failed" : "b2_error"
            }
        case .transport: code = "b2_unreachable"
        case .retriesExhausted: code = "b2_unavailable"
        case .integrity: code = "verify_mismatch"
        case .invalidRequest: code = "b2_invalid_request"
        case .invalidResponse: code = "b2_invalid_response"
        }
        return PortError(code: code, message: error.description)
    }
}

/// Jobs in the state database; the record is the engine's `Job` as JSON.
struct StoredJobStore: JobStore {
    let store: StateStore

    func save(_ job: Job) async throws {
        let record = String(decoding: try Self.encoder.encode(job), as: UTF8.self)
        try await store.saveJob(StoredJob(id: job.id, kind: job.kind.rawValue, state: job.state.rawValue, startedAt: job.startedAt.timeIntervalSince1970,
                                          finishedAt: job.finishedAt?.timeIntervalSince1970, record: record))
    }

    func job(id: String) async throws -> Job? {
        try await store.job(id: id).map(Self.decode)
    }

    func unfinishedJobs() async throws -> [Job] {
        try await store.unfinishedJobs().map(Self.decode)
    }

    func recentJobs(limit: Int) async throws -> [Job] {
        try await store.recentJobs(limit: limit).map(Self.decode)
    }

    func lastJob(kind: Job.Kind, state: JobState) async throws -> Job? {
        try await store.recentJobs(kind: kind.rawValue, state: state.rawValue, limit: 1).first.map(Self.decode)
    }

    /// When the newest backup run started (the scheduler's catch-up compares slots with it).
    func lastBackupStart() async throws -> Date? {
        try await store.recentJobs(kind: Job.Kind.backup.rawValue, limit: 1).first.map(Self.decode)?.startedAt
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    static func decode(_ stored: StoredJob) throws -> Job {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try decoder.decode(Job.self, from: Data(stored.record.utf8))
    }
}

/// Home Assistant Core through the Supervisor's Core proxy.
struct CoreProxyHomeAssistant: HomeAssistant, EntityReader {
    func entity(_ entityID: String) async throws(PortError) -> (state: String, name: String?)? {
        do { return try await client.entityState(entityID).map { ($0.state, $0.attributes?.friendly_name) } } catch { throw SupervisorBackupSource.port(error) }
    }

    let client: SupervisorClient

    func fireEvent(_ type: String, data: [String: StateValue]) async throws(PortError) {
        do { try await client.fireEvent(type, data: data) } catch { throw SupervisorBackupSource.port(error) }
    }

    func setState(_ entityID: String, state: String, attributes: [String: StateValue]) async throws(PortError) {
        do { try await client.setState(entityID, state: state, attributes: attributes) } catch { throw SupervisorBackupSource.port(error) }
    }

    func hasState(_ entityID: String) async throws(PortError) -> Bool {
        do { return try await client.hasState(entityID) } catch { throw SupervisorBackupSource.port(error) }
    }

    func callService(_ domain: String, _ service: String, data: [String: StateValue]) async throws(PortError) {
        do { try await client.callService(domain, service, data: data) } catch { throw SupervisorBackupSource.port(error) }
    }
}

/// The last catalog read from B2, kept in the state database for listings while B2 is unreachable.
struct StoredCatalogCache: CatalogCache {
    static let key = "catalog_cache"
    /// The second destination's catalog, kept apart from B2's.
    static let s3Key = "catalog_cache_s3"
    let store: StateStore
    var key = Self.key

    func cachedCatalog() async -> CatalogSnapshot? {
        guard let text = try? await store.setting(key) else { return nil }
        return try? B2Catalog.decoder.decode(CatalogSnapshot.self, from: Data(text.utf8))
    }

    func cacheCatalog(_ snapshot: CatalogSnapshot) async {
        guard let data = try? B2Catalog.encoder.encode(snapshot) else { return }
        try? await store.setSetting(key, String(decoding: data, as: UTF8.self))
    }
}
