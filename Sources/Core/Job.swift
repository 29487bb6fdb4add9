import Foundation

/// What a job is doing, as the REST API and `sensor.b2_backup` report it.
public enum JobState: String, Codable, Sendable, CaseIterable {
    case creating, uploading, verifying, downloading, restoring, done, failed

    public var isFinished: Bool { self == .done || self == .failed }
}

/// The pipeline's steps, in order. Each is saved before it starts, so a restart continues from it.
public enum JobStep: String, Codable, Sendable, CaseIterable, Comparable {
    case create, locate, upload, verify, record
    /// Copies to the second destination (S3-compatible), after B2's copy is recorded.
    case copy
    case retention, notify
    /// Restore and pull jobs: download from B2, hand the file to the Supervisor, restore.
    case pull, handover, restore
    case done

    /// The coarse state a step belongs to.
    public var state: JobState {
        switch self {
        case .create, .locate: .creating
        case .upload, .copy: .uploading
        case .verify, .record, .retention, .notify: .verifying
        case .pull, .handover: .downloading
        case .restore: .restoring
        case .done: .done
        }
    }

    /// Plain words for notifications ("while uploading to B2").
    public var activity: String {
        switch self {
        case .create: "creating the backup in Home Assistant"
        case .locate: "finding the backup file"
        case .upload: "uploading to Backblaze B2"
        case .verify: "verifying the upload"
        case .record: "recording the backup"
        case .copy: "copying to the second destination"
        case .retention: "applying the retention rules"
        case .notify: "sending notifications"
        case .pull: "downloading the backup from Backblaze B2"
        case .handover: "handing the backup to Home Assistant"
        case .restore: "restoring in Home Assistant"
        case .done: "finishing"
        }
    }

    public static func < (lhs: JobStep, rhs: JobStep) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Why a run was started.
public enum JobTrigger: String, Codable, Sendable {
    case manual, schedule, catchUp = "catch_up", retry
}

/// What went wrong: a stable code for automations, the message for people, and the step.
public struct JobError: Error, Codable, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var step: JobStep?

    public init(code: String, message: String, step: JobStep? = nil) {
        self.code = code
        self.message = message
        self.step = step
    }

    public var description: String { message }
}

/// Whole or partial Home Assistant backup.
public enum BackupType: String, Codable, Sendable, CaseIterable {
    case full, partial
}

/// What one run backs up, resolved from the options and the request's overrides when the job starts.
/// Never holds the password: that is read from the options when the backup is created.
public struct BackupPlan: Codable, Sendable, Hashable {
    public var name: String
    /// Our own unique file name in the backup folder (the Supervisor deletes an existing file of the same name).
    public var filename: String
    public var type: BackupType
    public var excludeAddons: [String]
    public var excludeFolders: [String]
    public var excludeDatabase: Bool
    public var protected: Bool

    public init(name: String, filename: String, type: BackupType, excludeAddons: [String], excludeFolders: [String], excludeDatabase: Bool, protected: Bool) {
        self.name = name
        self.filename = filename
        self.type = type
        self.excludeAddons = excludeAddons
        self.excludeFolders = excludeFolders
        self.excludeDatabase = excludeDatabase
        self.protected = protected
    }
}

/// What a backup's own `backup.json` says, as far as the catalog needs it.
public struct BackupFacts: Codable, Sendable, Hashable {
    /// The backup's own date; retention buckets by it.
    public var date: Date
    public var type: String
    public var protected: Bool
    public var homeAssistantVersion: String?
    public var addons: [String]
    public var folders: [String]

    public init(date: Date, type: String, protected: Bool, homeAssistantVersion: String?, addons: [String], folders: [String]) {
        self.date = date
        self.type = type
        self.protected = protected
        self.homeAssistantVersion = homeAssistantVersion
        self.addons = addons
        self.folders = folders
    }
}

/// The backup file the upload reads.
public struct LocalCopy: Codable, Sendable, Hashable {
    public var path: String
    public var size: Int64
    /// Downloaded from the Supervisor into our data folder (a network-mount backup): removed after the run.
    public var temporary: Bool
    /// From the tar's `backup.json`; nil when it could not be read (the upload still goes ahead).
    public var facts: BackupFacts?

    public init(path: String, size: Int64, temporary: Bool, facts: BackupFacts? = nil) {
        self.path = path
        self.size = size
        self.temporary = temporary
        self.facts = facts
    }
}

/// A file in the remote store as the upload left it.
public struct RemoteObject: Codable, Sendable, Hashable {
    public var fileID: String
    public var name: String
    public var size: Int64
    /// SHA-1 of the whole file as we computed it from the local copy.
    public var sha1: String
    public var parts: Int

    public init(fileID: String, name: String, size: Int64, sha1: String, parts: Int) {
        self.fileID = fileID
        self.name = name
        self.size = size
        self.sha1 = sha1
        self.parts = parts
    }
}

/// What a restore job restores (never the password: that is only held while the restore is started).
public struct RestoreSpec: Codable, Sendable, Hashable {
    public var slug: String
    /// Full restores replace everything, this add-on included; partial ones only what they name.
    public var partial: Bool
    public var homeassistant: Bool?
    public var addons: [String]?
    public var folders: [String]?
    /// B2's file, in jobs saved before `sources` existed (read through `locations`).
    public var remoteFileName: String?
    public var remoteSHA1: String?
    public var remoteSize: Int64?
    /// Every destination holding the backup, in the order to try them (`restore_source`); nil in jobs saved
    /// before destinations existed, which download from B2's `remoteFileName`.
    public var sources: [RemoteCopyLocation]?

    public init(slug: String, partial: Bool, homeassistant: Bool? = nil, addons: [String]? = nil, folders: [String]? = nil,
                remoteFileName: String? = nil, remoteSHA1: String? = nil, remoteSize: Int64? = nil, sources: [RemoteCopyLocation]? = nil) {
        self.sources = sources
        self.slug = slug
        self.partial = partial
        self.homeassistant = homeassistant
        self.addons = addons
        self.folders = folders
        self.remoteFileName = remoteFileName
        self.remoteSHA1 = remoteSHA1
        self.remoteSize = remoteSize
    }
}

/// One pipeline run, saved after every step.
public struct Job: Codable, Sendable, Hashable, Identifiable {
    /// `pull` brings a backup from B2 into Home Assistant; `restore` pulls when needed, then restores it.
    public enum Kind: String, Codable, Sendable { case backup, pull, restore }

    public let id: String
    public var kind: Kind
    public var trigger: JobTrigger
    public var step: JobStep
    public var failed: Bool
    public var plan: BackupPlan
    /// The Supervisor's job, kept so a restart waits for the same backup instead of starting another.
    public var supervisorJobID: String?
    public var slug: String?
    public var local: LocalCopy?
    public var remote: RemoteObject?
    public var bytesDone: Int64
    public var bytesTotal: Int64
    public var startedAt: Date
    public var finishedAt: Date?
    public var error: JobError?
    /// Problems that did not fail the run (e.g. the local copy could not be removed).
    public var warnings: [String]
    /// Pull and restore jobs: what to bring back.
    public var restore: RestoreSpec?
    /// Backups: the restorability check of the uploaded file (the verify step).
    public var check: RestorabilityCheck?
    /// Backups: each destination's copy (B2 and the second destination), as the run left them.
    /// Absent in runs saved before destinations existed; see `destinationResults`.
    public var copies: [DestinationCopy]?

    public init(id: String, trigger: JobTrigger, plan: BackupPlan, startedAt: Date) {
        self.id = id
        kind = .backup
        self.trigger = trigger
        step = .create
        failed = false
        self.plan = plan
        bytesDone = 0
        bytesTotal = 0
        self.startedAt = startedAt
        warnings = []
    }

    public var state: JobState { failed ? .failed : step.state }
    public var isFinished: Bool { finishedAt != nil }
    public var duration: TimeInterval? { finishedAt.map { $0.timeIntervalSince(startedAt) } }
}
