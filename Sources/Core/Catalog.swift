import Foundation

/// The last check that a stored backup can be restored (read back from B2 and taken apart).
public struct RestorabilityCheck: Codable, Sendable, Hashable {
    public var at: Date
    /// `full` or `quick`.
    public var mode: String
    /// `restorable`, `not_restorable`, or `flagged` (restorable, but not what it claims, e.g. not encrypted).
    public var verdict: String
    public var problems: [String]

    public init(at: Date, mode: String, verdict: String, problems: [String]) {
        self.at = at
        self.mode = mode
        self.verdict = verdict
        self.problems = problems
    }

    public var ok: Bool { verdict == "restorable" }
}

/// Reads a stored backup back and checks it can be restored (the verify step and the scheduled check).
public protocol RestorabilityChecker: Sendable {
    func check(fileName: String, size: Int64, sha1: String?, slug: String?, password: String?) async -> RestorabilityCheck
}

/// One backup in B2 as the catalog records it: enough to list, restore and apply retention without
/// downloading anything. Built from the upload (or, when the index is lost, from the file's own file info).
public struct CatalogEntry: Codable, Sendable, Hashable {
    public var slug: String
    public var name: String
    public var facts: BackupFacts
    public var size: Int64
    public var sha1: String?
    /// The object's full name in the bucket (with the prefix).
    public var fileName: String
    public var fileID: String
    public var uploadedAt: Date
    /// When our verify step matched B2's size and SHA-1 with the file; nil for backups found in the bucket
    /// that this add-on did not verify (uploaded by another tool or before the index existed).
    public var verifiedAt: Date?
    /// Uploaded by this add-on (the `uploaded_by` file info).
    public var madeByAddon: Bool
    /// Object Lock: B2 refuses to delete it before this.
    public var lockedUntil: Date?
    /// The last restorability check; a failed one takes the backup out of "newest verified".
    public var lastCheck: RestorabilityCheck?

    /// Uploaded, matched, and not found unrestorable since.
    public var isVerified: Bool { verifiedAt != nil && lastCheck?.ok != false }

    public init(slug: String, name: String, facts: BackupFacts, size: Int64, sha1: String?, fileName: String, fileID: String,
                uploadedAt: Date, verifiedAt: Date?, madeByAddon: Bool, lockedUntil: Date?) {
        self.slug = slug
        self.name = name
        self.facts = facts
        self.size = size
        self.sha1 = sha1
        self.fileName = fileName
        self.fileID = fileID
        self.uploadedAt = uploadedAt
        self.verifiedAt = verifiedAt
        self.madeByAddon = madeByAddon
        self.lockedUntil = lockedUntil
    }
}

/// The cloud catalog: every backup under the prefix, and the pins. Kept in B2 as a small index object next
/// to the backups, so a fresh install sees the same catalog with one read and one listing.
public struct CatalogSnapshot: Codable, Sendable, Hashable {
    public static let format = 1
    public var format: Int
    public var updatedAt: Date
    public var backups: [CatalogEntry]
    /// Slugs the user pinned: kept in B2 and in Home Assistant whatever the policy says.
    public var pins: Set<String>
    /// When the last scheduled restorability check ran (`verify_days` counts from it).
    public var lastScheduledCheck: Date?

    public init(updatedAt: Date, backups: [CatalogEntry] = [], pins: Set<String> = []) {
        format = Self.format
        self.updatedAt = updatedAt
        self.backups = backups
        self.pins = pins
    }

    public func entry(slug: String) -> CatalogEntry? { backups.first { $0.slug == slug } }
}

/// How a catalog load went: the snapshot, and whether the index object had to be rebuilt from the listing.
public struct CatalogLoad: Sendable {
    public var snapshot: CatalogSnapshot
    /// The index was missing, unreadable or did not match the bucket; it was rebuilt (and should be saved).
    public var rebuilt: Bool
    public init(snapshot: CatalogSnapshot, rebuilt: Bool) {
        self.snapshot = snapshot
        self.rebuilt = rebuilt
    }
}

/// The catalog in the remote store (B2): the index object, the listing it is checked against, deletions.
public protocol RemoteCatalog: Sendable {
    /// Reads the index object and one listing of the prefix; entries the index lacks are built from the
    /// files' own info, entries whose file is gone are dropped.
    func load() async throws(PortError) -> CatalogLoad
    /// Writes the index object.
    func save(_ snapshot: CatalogSnapshot) async throws(PortError)
    /// Removes a backup's file from the bucket (every version, or a hide marker, as configured).
    func delete(_ entry: CatalogEntry) async throws(PortError)
    /// Cancels unfinished large files of ours under the prefix started before `date`; returns how many.
    func cancelUnfinishedUploads(startedBefore date: Date) async throws(PortError) -> Int
    /// Downloads a backup into a temporary file (resuming, SHA-1 checked against `sha1`).
    func download(fileName: String, sha1: String?, size: Int64?,
                  progress: @escaping @Sendable (_ done: Int64, _ total: Int64) -> Void) async throws(PortError) -> LocalCopy
}

/// The catalogs of other prefixes in the same bucket (other Home Assistant installations, or an older
/// `b2_prefix`), read on request for disaster recovery.
public protocol BucketCatalogs: Sendable {
    /// Folders at the bucket's top level that hold backups or a catalog index.
    func prefixes() async throws(PortError) -> [String]
    func catalog(prefix: String) -> any RemoteCatalog
}

/// A backup in Home Assistant's list (`GET /backups`).
public struct HomeAssistantBackup: Sendable, Hashable {
    public var slug: String
    public var name: String
    public var date: Date
    public var size: Int64
    public var protected: Bool
    public var type: String
    /// Only in Home Assistant's local folder (retention never touches backups on network storage).
    public var isLocal: Bool

    public init(slug: String, name: String, date: Date, size: Int64, protected: Bool, type: String, isLocal: Bool) {
        self.slug = slug
        self.name = name
        self.date = date
        self.size = size
        self.protected = protected
        self.type = type
        self.isLocal = isLocal
    }
}

/// A local copy of the last catalog read from B2 (the state database): shown when B2 cannot be reached,
/// never used to decide a deletion. B2 stays the truth.
public protocol CatalogCache: Sendable {
    func cachedCatalog() async -> CatalogSnapshot?
    func cacheCatalog(_ snapshot: CatalogSnapshot) async
}
