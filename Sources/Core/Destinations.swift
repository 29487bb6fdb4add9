import Foundation

/// Where a backup's copies go: Backblaze B2 (always, the primary) and, optionally, a second
/// S3-compatible store. The ids are part of the REST API and of saved jobs.
public enum DestinationID {
    public static let b2 = "b2"
    public static let s3 = "s3"
}

/// A destination besides B2, with everything the engine and the pipeline need to keep a verified copy
/// there: the store to upload to, its own catalog (index object beside the backups), its own restorability
/// checker and its own retention policy.
public struct SecondaryDestination: Sendable {
    /// `s3`.
    public let id: String
    /// For people: "S3 (bucket at host)".
    public let title: String
    public let bucket: String
    public let store: any RemoteStore
    public let catalog: any RemoteCatalog
    public let checker: (any RestorabilityChecker)?
    /// This destination's catalog and policy (its local policy is off: Home Assistant's copies follow B2's).
    public let retention: RetentionService

    public init(id: String, title: String, bucket: String, store: any RemoteStore, catalog: any RemoteCatalog,
                checker: (any RestorabilityChecker)?, retention: RetentionService) {
        self.id = id
        self.title = title
        self.bucket = bucket
        self.store = store
        self.catalog = catalog
        self.checker = checker
        self.retention = retention
    }
}

/// How a run must end with more than one destination (`require_all_destinations`).
public enum DestinationRequirement: String, Sendable, Hashable {
    /// The run succeeds only when every destination holds a verified copy.
    case all
    /// One verified copy is enough; the others' failures are warnings.
    case any
}

/// One destination's copy of a run's backup.
public struct DestinationCopy: Codable, Sendable, Hashable {
    public var destination: String
    public var remote: RemoteObject?
    /// When size, SHA-1 (and the restorability check) matched.
    public var verifiedAt: Date?
    public var check: RestorabilityCheck?
    public var error: JobError?

    public init(destination: String, remote: RemoteObject? = nil, verifiedAt: Date? = nil, check: RestorabilityCheck? = nil, error: JobError? = nil) {
        self.destination = destination
        self.remote = remote
        self.verifiedAt = verifiedAt
        self.check = check
        self.error = error
    }

    /// `verified`, `failed` or `pending`.
    public var state: String { verifiedAt != nil ? "verified" : error != nil ? "failed" : "pending" }
}

/// Where a restore can download a backup from.
public struct RemoteCopyLocation: Codable, Sendable, Hashable {
    public var destination: String
    public var fileName: String
    public var sha1: String?
    public var size: Int64?
    /// The copy passed verification and its last restorability check.
    public var verified: Bool

    public init(destination: String, fileName: String, sha1: String?, size: Int64?, verified: Bool) {
        self.destination = destination
        self.fileName = fileName
        self.sha1 = sha1
        self.size = size
        self.verified = verified
    }

    /// A destination's catalog entry as a place to download from.
    public init(destination: String, entry: CatalogEntry) {
        self.init(destination: destination, fileName: entry.fileName, sha1: entry.sha1, size: entry.size, verified: entry.isVerified)
    }

    /// The order to try the copies in: the preferred destination first (`b2` or `s3`); `auto` puts verified
    /// copies first, then B2 before S3, because B2's egress is free up to three times the stored data and
    /// S3 providers often charge for it. The other copies stay as fall-backs.
    public static func ordered(_ copies: [RemoteCopyLocation], preference: String) -> [RemoteCopyLocation] {
        func rank(_ copy: RemoteCopyLocation) -> [Int] {
            let preferred = copy.destination == preference ? 0 : 1
            let verified = copy.verified ? 0 : 1
            let primary = copy.destination == DestinationID.b2 ? 0 : 1
            return preference == "auto" ? [verified, primary] : [preferred, verified, primary]
        }
        return copies.enumerated().sorted { (rank($0.element) + [$0.offset]).lexicographicallyPrecedes(rank($1.element) + [$1.offset]) }
            .map(\.element)
    }
}

extension RestoreSpec {
    /// Where to download from, in order: `sources`, or B2's file in jobs saved before destinations existed.
    public var locations: [RemoteCopyLocation] {
        sources ?? remoteFileName.map {
            [RemoteCopyLocation(destination: DestinationID.b2, fileName: $0, sha1: remoteSHA1, size: remoteSize, verified: true)]
        } ?? []
    }
}

extension Job {
    /// The destinations holding a verified copy of this run, B2 first.
    public var verifiedDestinations: [String] {
        (copies ?? []).filter { $0.verifiedAt != nil }.map(\.destination)
    }

    /// Each destination's result for this run: the saved copies, or, for runs saved before destinations
    /// existed, B2's result derived from the run itself.
    public func destinationResults(destinations: [String]) -> [DestinationCopy] {
        guard kind == .backup else { return [] }
        let saved = copies ?? []
        return destinations.map { id in
            if let copy = saved.first(where: { $0.destination == id }) { return copy }
            let failedStep = failed ? error?.step ?? step : nil
            if id == DestinationID.b2 {
                if let remote, step > .verify, failedStep.map({ $0 > .verify }) ?? true {
                    return DestinationCopy(destination: id, remote: remote, verifiedAt: finishedAt ?? startedAt, check: check)
                }
                if let failedStep, let error, failedStep >= .upload, failedStep <= .verify {
                    return DestinationCopy(destination: id, remote: remote, error: error)
                }
            } else if failedStep == .copy, let error {
                return DestinationCopy(destination: id, error: error)
            }
            return DestinationCopy(destination: id, remote: id == DestinationID.b2 ? remote : nil)
        }
    }
}
