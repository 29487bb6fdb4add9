import Foundation

/// What a backup's `./backup.json` says, as far as the add-on needs it. Unknown keys are ignored.
public struct BackupMetadata: Sendable, Hashable, Decodable {
    public struct HomeAssistant: Sendable, Hashable, Decodable {
        public let version: String?
        public let exclude_database: Bool?
    }
    public struct Addon: Sendable, Hashable, Decodable {
        public let slug: String
        public let name: String?
        public let version: String?
    }

    public let slug: String
    public let name: String
    /// ISO 8601 in UTC, as the Supervisor writes it.
    public let date: String
    public let type: String
    public let protected: Bool
    public let compressed: Bool
    public let homeassistant: HomeAssistant?
    public let addons: [Addon]
    public let folders: [String]
    public let supervisor_version: String?

    enum CodingKeys: String, CodingKey {
        case slug, name, date, type, protected, compressed, homeassistant, addons, folders, supervisor_version
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        slug = try container.decode(String.self, forKey: .slug)
        name = try container.decode(String.self, forKey: .name)
        date = try container.decode(String.self, forKey: .date)
        type = try container.decode(String.self, forKey: .type)
        // Version 1 files store the encryption scheme as a string here: any string means protected.
        if let flag = try? container.decodeIfPresent(Bool.self, forKey: .protected) {
            protected = flag
        } else {
            protected = (try? container.decodeIfPresent(String.self, forKey: .protected)) != nil
        }
        compressed = (try? container.decodeIfPresent(Bool.self, forKey: .compressed)) ?? true
        homeassistant = try? container.decodeIfPresent(HomeAssistant.self, forKey: .homeassistant)
        addons = (try? container.decodeIfPresent([Addon].self, forKey: .addons)) ?? []
        folders = (try? container.decodeIfPresent([String].self, forKey: .folders)) ?? []
        supervisor_version = try? container.decodeIfPresent(String.self, forKey: .supervisor_version)
    }

    public static func parse(_ bytes: [UInt8]) throws -> BackupMetadata {
        try JSONDecoder().decode(BackupMetadata.self, from: Data(bytes))
    }
}

/// A backup file in the local backup folder, identified by its own `backup.json`.
public struct LocalBackup: Sendable, Hashable {
    public let path: String
    public let size: Int64
    public let modified: Date
    public let metadata: BackupMetadata
}

/// Finds backups in the local backup folder by reading `./backup.json` inside each `*.tar`: on current
/// installs file names are not slugs. Each file is read once per (size, modification time).
public actor LocalBackupIndex {
    public struct Problem: Sendable, Hashable {
        public let path: String
        public let reason: String
    }

    private struct CacheEntry {
        let size: Int64
        let modified: Date
        let result: Result<BackupMetadata, ReadFailure>
    }

    /// Why a `*.tar` file is not a usable backup.
    struct ReadFailure: Error {
        let reason: String
    }

    public nonisolated let directory: URL
    private var cache: [String: CacheEntry] = [:]
    /// How many files were actually opened and read (a cache hit reads nothing).
    public private(set) var filesRead = 0

    public init(directory: URL) {
        self.directory = directory
    }

    /// Every readable backup in the folder, and the `*.tar` files that are not valid backups with the reason.
    public func scan() -> (backups: [LocalBackup], problems: [Problem]) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var backups: [LocalBackup] = []
        var problems: [Problem] = []
        var seen: Set<String> = []
        for name in names.sorted() where name.hasSuffix(".tar") {
            let path = directory.appendingPathComponent(name).path
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                  (attributes[.type] as? FileAttributeType) == .typeRegular else { continue }
            let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
            let modified = attributes[.modificationDate] as? Date ?? .distantPast
            seen.insert(path)
            let entry: CacheEntry
            if let cached = cache[path], cached.size == size, cached.modified == modified {
                entry = cached
            } else {
                entry = CacheEntry(size: size, modified: modified, result: Self.read(path))
                filesRead += 1
                cache[path] = entry
            }
            switch entry.result {
            case .success(let metadata): backups.append(LocalBackup(path: path, size: size, modified: modified, metadata: metadata))
            case .failure(let failure): problems.append(Problem(path: path, reason: failure.reason))
            }
        }
        cache = cache.filter { seen.contains($0.key) } // forget deleted files
        return (backups, problems)
    }

    /// The local file of a backup, or nil when it is not in the folder (e.g. it lives on a network mount).
    public func backup(slug: String) -> LocalBackup? {
        scan().backups.first { $0.metadata.slug == slug }
    }

    private static func read(_ path: String) -> Result<BackupMetadata, ReadFailure> {
        let json: [UInt8]?
        do {
            json = try TarReader.backupJSON(in: URL(fileURLWithPath: path))
        } catch {
            return .failure(ReadFailure(reason: "not a readable tar: \(error)"))
        }
        guard let json else { return .failure(ReadFailure(reason: "the tar has no ./backup.json")) }
        do {
            return .success(try BackupMetadata.parse(json))
        } catch {
            return .failure(ReadFailure(reason: "its backup.json is not valid"))
        }
    }
}

extension BackupMetadata {
    /// `date` as a `Date`: Python's `isoformat()` of an aware datetime, with or without fractional seconds.
    public var parsedDate: Date? { Self.parseDate(date) }

    public static func parseDate(_ text: String) -> Date? {
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = fractional.date(from: text) { return date }
        let whole = ISO8601DateFormatter()
        whole.formatOptions = [.withInternetDateTime]
        return whole.date(from: text)
    }
}
