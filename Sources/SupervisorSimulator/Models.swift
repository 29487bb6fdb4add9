import Foundation

/// A backup as the simulated Supervisor knows it (its index entry plus what backup.json says).
public struct SimulatedBackup: Sendable, Hashable {
    public struct Content: Sendable, Hashable {
        public let homeassistant: Bool
        public let addons: [String]
        public let folders: [String]
    }

    public let slug: String
    public let name: String
    /// As written in backup.json: ISO 8601 UTC with microseconds, e.g. `2026-09-14T03:00:04.512873+00:00`.
    public let date: String
    /// `full` or `partial`.
    public let type: String
    /// The file in the backup directory; its name is the `filename` asked for, else `<slug>.tar`.
    public let file: URL
    public let sizeBytes: Int64
    public let protected: Bool
    public let compressed: Bool
    public let content: Content
    public let homeassistantVersion: String?
    public let supervisorVersion: String
    public let extra: JSONValue

    public var fileName: String { file.lastPathComponent }
}

/// One request that reached the simulated Home Assistant Core through the proxy.
public struct CoreCall: Sendable, Hashable {
    public let method: String
    /// The path as the add-on sent it, e.g. `/core/api/states/sensor.b2_backup_last_run`.
    public let path: String
    /// The query string without `?`; empty when absent.
    public let query: String
    /// The JSON body; nil when there was none or it was not JSON.
    public let body: JSONValue?
    /// What Core answered.
    public let status: Int
}

/// An entity state as Core holds it after `POST /api/states/<entity_id>`.
public struct EntityState: Sendable, Hashable {
    public let entityID: String
    public let state: String
    public let attributes: [String: JSONValue]
    /// ISO 8601 UTC: when `state` last changed, when state or attributes last changed, when last written.
    public let lastChanged: String
    public let lastUpdated: String
    public let lastReported: String
}

/// A persistent notification created through `persistent_notification.create` or `notify.persistent_notification`.
public struct PersistentNotification: Sendable, Hashable {
    public let notificationID: String
    public let title: String?
    public let message: String
}

/// A restore the Supervisor accepted (password checked, job started).
public struct RestoreRecord: Sendable, Hashable {
    public let slug: String
    /// `full` or `partial`.
    public let type: String
    public let password: String?
    /// What is restored: for a full restore, everything in the backup.
    public let homeassistant: Bool
    public let addons: [String]
    public let folders: [String]
    public let jobID: String

    public init(slug: String, type: String, password: String?, homeassistant: Bool, addons: [String], folders: [String], jobID: String) {
        self.slug = slug
        self.type = type
        self.password = password
        self.homeassistant = homeassistant
        self.addons = addons
        self.folders = folders
        self.jobID = jobID
    }
}

/// A job as `GET /jobs/info` lists it.
public struct SimulatedJob: Sendable, Hashable {
    public struct Failure: Sendable, Hashable {
        /// The Supervisor's exception class name, e.g. `BackupFileExistError`.
        public let type: String
        public let message: String
        public let stage: String?

        public init(type: String, message: String, stage: String?) {
            self.type = type
            self.message = message
            self.stage = stage
        }
    }

    public let uuid: String
    public let name: String
    public let reference: String?
    public let progress: Int
    public let stage: String?
    /// nil before it starts, false while it runs, true when it ended (with or without errors).
    public let done: Bool?
    public let errors: [Failure]
    public let created: String
}

/// Why the simulator could not be set up or seeded.
public struct SupervisorSimulatorError: Error, Sendable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { "Supervisor simulator: \(message)" }
}
