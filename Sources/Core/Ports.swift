import Foundation

/// A failure of one of the engine's collaborators, already in words for the user.
/// Adapters translate their own errors (Supervisor, B2, file system) into this.
public struct PortError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Stable, for automations: `supervisor_refused`, `b2_auth_failed`, `b2_storage_cap`, …
    public var code: String
    public var message: String
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// What to ask the Supervisor for.
public struct BackupSpec: Sendable, Hashable {
    public var name: String
    public var filename: String
    public var password: String?
    public var excludeDatabase: Bool
    /// nil: a full backup. Otherwise a partial one with Home Assistant and exactly these.
    public var addons: [String]?
    public var folders: [String]?

    public init(name: String, filename: String, password: String?, excludeDatabase: Bool, addons: [String]?, folders: [String]?) {
        self.name = name
        self.filename = filename
        self.password = password
        self.excludeDatabase = excludeDatabase
        self.addons = addons
        self.folders = folders
    }

    public var isPartial: Bool { addons != nil || folders != nil }
}

/// Home Assistant's side of a backup: the Supervisor and the backup folder.
public protocol BackupSource: Sendable {
    /// The running Home Assistant version, for `{version}` in backup names; nil when unknown.
    func homeAssistantVersion() async -> String?
    /// Slugs of the installed add-ons (to turn "everything but these" into a partial backup).
    func installedAddons() async throws(PortError) -> [String]
    /// The installed add-ons with their names (for the critical components' coverage).
    func installedAddonIdentities() async throws(PortError) -> [AddonIdentity]
    /// Starts a backup and returns the Supervisor's job id.
    func startBackup(_ spec: BackupSpec) async throws(PortError) -> String
    /// Waits for the backup job and returns the new backup's slug.
    func waitForBackup(jobID: String) async throws(PortError) -> String
    /// The slug of the backup stored under our file name, if the Supervisor has it (after a restart).
    func backupSlug(filename: String) async throws(PortError) -> String?
    /// The backup's tar: in the backup folder, else downloaded into `temporaryDirectory`.
    func locate(slug: String, filename: String) async throws(PortError) -> LocalCopy
    func deleteBackup(slug: String) async throws(PortError)
    /// Home Assistant's backup list (for local retention and the merged listing).
    func homeAssistantBackups() async throws(PortError) -> [HomeAssistantBackup]

    /// Hands a backup file to the Supervisor (streamed upload); returns the slug it read from the file.
    func uploadBackup(path: String, filename: String) async throws(PortError) -> String
    /// Starts a restore in the background and returns the Supervisor's job id.
    func startRestore(_ spec: RestoreSpec, password: String?) async throws(PortError) -> String
    /// Waits for the restore job; throws with the Supervisor's words when it failed.
    func waitForRestore(jobID: String) async throws(PortError)

    /// A full restore replaces this add-on's data folder too, so the intent is also kept beside the backups.
    func saveRestoreIntent(_ job: Job) async
    func restoreIntents() async -> [Job]
    func removeRestoreIntent(id: String) async
}

/// Upload settings for one run.
public struct UploadSettings: Sendable, Hashable {
    public var concurrency: Int
    /// Bytes per second over all connections; nil for no cap.
    public var bytesPerSecond: Int64?
    public init(concurrency: Int, bytesPerSecond: Int64?) {
        self.concurrency = concurrency
        self.bytesPerSecond = bytesPerSecond
    }
}

/// What a remote copy says of itself, for the verification step.
public struct RemoteFileFacts: Sendable, Hashable {
    public var size: Int64
    /// The whole file's SHA-1 as the store recorded it (`contentSha1`, or `large_file_sha1` for large files).
    public var sha1: String?
    public init(size: Int64, sha1: String?) {
        self.size = size
        self.sha1 = sha1
    }
}

/// Totals for the sensor's attributes.
public struct RemoteSummary: Sendable, Hashable {
    public var backups: Int
    public var bytes: Int64
    public init(backups: Int, bytes: Int64) {
        self.backups = backups
        self.bytes = bytes
    }
}

/// Where backups go (Backblaze B2).
public protocol RemoteStore: Sendable {
    /// Uploads the file under `name` (resuming an interrupted upload of the same file), with `info` as metadata.
    func upload(path: String, name: String, info: [String: String], settings: UploadSettings,
                progress: @escaping @Sendable (_ done: Int64, _ total: Int64) -> Void) async throws(PortError) -> RemoteObject
    /// Reads back what the store holds for the file.
    func facts(fileID: String) async throws(PortError) -> RemoteFileFacts
    func summary() async throws(PortError) -> RemoteSummary
}

/// Where jobs are saved (the state database).
public protocol JobStore: Sendable {
    func save(_ job: Job) async throws
    func job(id: String) async throws -> Job?
    func unfinishedJobs() async throws -> [Job]
    func recentJobs(limit: Int) async throws -> [Job]
    /// The newest job of a kind in a state (the last successful backup, say).
    func lastJob(kind: Job.Kind, state: JobState) async throws -> Job?
}

/// What the engine tells the outside world about (Home Assistant events, sensors, notifications).
public protocol JobObserver: Sendable {
    func jobStarted(_ job: Job) async
    /// Throttled: at most every few seconds while bytes move.
    func jobProgressed(_ job: Job) async
    func jobFinished(_ job: Job) async
}
