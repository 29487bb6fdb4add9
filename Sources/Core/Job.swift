import Foundation

/// What a job is doing, as the REST API and `sensor.b2_backup` report it.
public enum JobState: String, Codable, Sendable, CaseIterable {
    case creating, uploading, verifying, done, failed

    public var isFinished: Bool { self == .done || self == .failed }
}

/// The pipeline's steps, in order. Each is saved before it starts, so a restart continues from it.
public enum JobStep: String, Codable, Sendable, CaseIterable, Comparable {
    case create, locate, upload, verify, record, retention, notify, done

    /// The coarse state a step belongs to.
    public var state: JobState {
        switch self {
        case .create, .locate: .creating
        case .upload: .uploading
        case .verify, .record, .retention, .notify: .verifying
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
        case .retention: "applying the retention rules"
        case .notify: "sending notifications"
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

/// One pipeline run, saved after every step.
public struct Job: Codable, Sendable, Hashable, Identifiable {
    public enum Kind: String, Codable, Sendable { case backup }

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
