/// `GET /info`: what the add-on needs of the host.
public struct SupervisorInfo: Sendable, Decodable {
    public let supervisor: String?
    public let homeassistant: String?
    public let hostname: String?
    public let timezone: String
}

/// An entry of `addons` in `GET /supervisor/info`.
public struct InstalledAddon: Sendable, Hashable, Decodable {
    public let slug: String
    public let name: String
}

/// `GET /core/api/states/<entity_id>`: the state and the attributes the add-on reads.
public struct EntityState: Sendable, Hashable, Decodable {
    public struct Attributes: Sendable, Hashable, Decodable {
        public let friendly_name: String?
    }
    public let entity_id: String
    public let state: String
    public let attributes: Attributes?
}

/// `GET /addons/self/info`.
public struct SelfAddonInfo: Sendable, Decodable {
    public let slug: String
    public let name: String
    public let version: String?
    public let hostname: String?
    public let ingress_url: String?
    public let ingress_port: Int?
}

/// What a backup contains (`content` in the list, flattened in details).
public struct BackupContent: Sendable, Hashable, Decodable {
    public let homeassistant: Bool
    public let addons: [String]
    public let folders: [String]
}

/// An entry of `GET /backups`.
public struct BackupSummary: Sendable, Hashable, Decodable {
    public let slug: String
    public let name: String
    public let date: String
    public let type: String
    /// Megabytes, as the Supervisor reports it; prefer `size_bytes`.
    public let size: Double?
    public let size_bytes: Int64?
    public let location: String?
    public let locations: [String?]?
    public let protected: Bool
    public let compressed: Bool?
    public let content: BackupContent?
}

/// `GET /backups/{slug}/info`.
public struct BackupDetails: Sendable, Hashable, Decodable {
    public struct Addon: Sendable, Hashable, Decodable {
        public let slug: String
        public let name: String?
        public let version: String?
        public let size: Double?
    }
    public let slug: String
    public let type: String
    public let name: String
    public let date: String
    public let size: Double?
    public let size_bytes: Int64?
    public let compressed: Bool?
    public let protected: Bool
    public let supervisor_version: String?
    /// The Home Assistant version inside, or nil when Home Assistant is not in the backup.
    public let homeassistant: String?
    public let location: String?
    public let addons: [Addon]
    public let folders: [String]
    public let homeassistant_exclude_database: Bool?
}

/// A Supervisor job as `GET /jobs/info` lists it.
public struct SupervisorJob: Sendable, Hashable, Decodable {
    public struct JobError: Sendable, Hashable, Decodable {
        public let type: String?
        public let message: String
        public let stage: String?
    }
    public let name: String
    /// For backup and restore jobs: the backup's slug.
    public let reference: String?
    public let uuid: String
    public let progress: Double?
    public let stage: String?
    public let done: Bool?
    public let errors: [JobError]
    public let child_jobs: [SupervisorJob]

    public var isDone: Bool { done == true }
    /// Errors of this job and of its children (a failed partial restore reports them on children).
    public var allErrors: [JobError] { errors + child_jobs.flatMap(\.allErrors) }
}

/// What to put in a new backup (`POST /backups/new/full|partial`).
public struct NewBackup: Sendable, Hashable, Encodable {
    public var name: String
    /// A file name of our choosing (`^[^\\/]+\.tar$`); never reuse one: the Supervisor deletes the old file.
    public var filename: String?
    public var password: String?
    public var compressed: Bool?
    public var homeassistant_exclude_database: Bool?
    /// Partial backups only: what to include.
    public var homeassistant: Bool?
    public var addons: [String]?
    public var folders: [String]?
    public var background: Bool = true

    public init(name: String, filename: String? = nil, password: String? = nil, compressed: Bool? = nil, excludeDatabase: Bool? = nil,
                homeassistant: Bool? = nil, addons: [String]? = nil, folders: [String]? = nil) {
        self.name = name
        self.filename = filename
        self.password = password
        self.compressed = compressed
        self.homeassistant_exclude_database = excludeDatabase
        self.homeassistant = homeassistant
        self.addons = addons
        self.folders = folders
    }

    /// Partial when it names what to include; full otherwise.
    public var isPartial: Bool { homeassistant != nil || addons != nil || folders != nil }
}

/// What to restore (`POST /backups/{slug}/restore/full|partial`).
public struct RestoreRequest: Sendable, Hashable, Encodable {
    public var password: String?
    public var homeassistant: Bool?
    public var addons: [String]?
    public var folders: [String]?
    public var background: Bool = true

    public init(password: String? = nil, homeassistant: Bool? = nil, addons: [String]? = nil, folders: [String]? = nil) {
        self.password = password
        self.homeassistant = homeassistant
        self.addons = addons
        self.folders = folders
    }

    public var isPartial: Bool { homeassistant != nil || addons != nil || folders != nil }
}
