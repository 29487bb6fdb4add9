import Foundation
import Hashing

/// The contents of `./backup.json` (schema `SCHEMA_BACKUP` of Supervisor 2026.08 `backups/validate.py`,
/// written by `Backup.new()`), with the schema's defaults applied when read.
struct BackupMetadata: Sendable, Hashable {
    struct Addon: Sendable, Hashable {
        var slug: String
        var name: String
        var version: String
        var size: Double = 0.0
    }

    struct HomeAssistant: Sendable, Hashable {
        var version: String
        var excludeDatabase: Bool
        /// Always 0.0 in current files.
        var size: Double = 0.0
    }

    var slug: String
    var version = 2
    var name: String
    /// ISO 8601 UTC with microseconds, e.g. `2026-09-14T03:00:04.512873+00:00`.
    var date: String
    /// `full` or `partial`.
    var type: String
    var supervisorVersion: String
    var extra: JSONObject = [:]
    var addons: [Addon] = []
    var repositories: [String] = []
    var homeassistant: HomeAssistant?
    var folders: [String] = []
    var protected = false
    var compressed = true

    /// The folders a backup may name (`backups/validate.py ALL_FOLDERS`).
    static let allFolders = ["share", "addons/local", "ssl", "media"]

    /// Compact JSON in the key order `Backup.new()` builds, as orjson writes it (no `crypto` since 2026.03.3).
    func encoded() -> [UInt8] {
        var addonList: [JSONValue] = []
        for addon in addons {
            addonList.append(["slug": .string(addon.slug), "name": .string(addon.name), "version": .string(addon.version), "size": .double(addon.size)])
        }
        let core: JSONValue = homeassistant.map {
            ["version": .string($0.version), "exclude_database": .bool($0.excludeDatabase), "size": .double($0.size)]
        } ?? .null
        let json: JSONValue = [
            "slug": .string(slug), "version": .int(version), "name": .string(name), "date": .string(date), "type": .string(type),
            "supervisor_version": .string(supervisorVersion), "extra": .object(extra), "addons": .array(addonList),
            "repositories": .strings(repositories), "homeassistant": core, "folders": .strings(folders),
            "protected": .bool(protected), "compressed": .bool(compressed),
        ]
        return json.encoded()
    }

    /// Reads backup.json the way `Backup.load()` validates it: slug, name, date and type are required,
    /// the rest gets the schema's defaults. Returns nil for what the Supervisor would refuse to load.
    static func parse(_ bytes: [UInt8]) -> BackupMetadata? {
        guard let json = try? JSONValue.parse(bytes), case .object(let object) = json,
              let slug = object["slug"]?.stringValue, let name = object["name"]?.stringValue,
              let date = object["date"]?.stringValue, let type = object["type"]?.stringValue,
              type == "full" || type == "partial" else { return nil }
        var metadata = BackupMetadata(slug: slug, name: name, date: date, type: type,
                                      supervisorVersion: object["supervisor_version"]?.stringValue ?? "2022.08.3")
        if let version = object["version"]?.intValue {
            guard version == 1 || version == 2 else { return nil }
            metadata.version = version
        } else {
            metadata.version = 1
        }
        // A v1 password string counts as protected.
        switch object["protected"] {
        case .bool(let value)?: metadata.protected = value
        case .string?: metadata.protected = true
        default: metadata.protected = false
        }
        metadata.compressed = object["compressed"]?.boolValue ?? true
        if case .object(let core)? = object["homeassistant"] {
            metadata.homeassistant = HomeAssistant(version: core["version"]?.stringValue ?? "",
                                                   excludeDatabase: core["exclude_database"]?.boolValue ?? false,
                                                   size: core["size"]?.doubleValue ?? 0.0)
        }
        var folders: [String] = []
        for folder in object["folders"]?.arrayValue ?? [] {
            guard let name = folder.stringValue else { return nil }
            if name == "homeassistant" { continue } // v1 listed it as a folder; the schema drops it
            guard allFolders.contains(name), !folders.contains(name) else { return nil }
            folders.append(name)
        }
        metadata.folders = folders
        for addon in object["addons"]?.arrayValue ?? [] {
            guard let slug = addon["slug"]?.stringValue, !metadata.addons.contains(where: { $0.slug == slug }) else { return nil }
            metadata.addons.append(Addon(slug: slug, name: addon["name"]?.stringValue ?? slug, version: addon["version"]?.stringValue ?? "",
                                         size: addon["size"]?.doubleValue ?? 0.0))
        }
        metadata.repositories = (object["repositories"]?.arrayValue ?? []).compactMap(\.stringValue)
        metadata.extra = object["extra"]?.objectValue ?? [:]
        return metadata
    }

    /// `sha1(f"{date} - {name}".lower())[:8]` (`backups/utils.py create_slug`).
    static func slug(name: String, date: String) -> String {
        String(StreamingDigest.sha1Hex(Array("\(date) - \(name)".lowercased().utf8)).prefix(8))
    }

    /// Python's `datetime.isoformat()` of an aware UTC datetime: microseconds only when not zero.
    static func isoDate(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        let seconds = interval.rounded(.down)
        let micros = min(999_999, Int(((interval - seconds) * 1_000_000).rounded()))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: seconds))
        func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }
        var text = String(format: "%04d", parts.year ?? 1970) + "-\(two(parts.month))-\(two(parts.day))T\(two(parts.hour)):\(two(parts.minute)):\(two(parts.second))"
        if micros > 0 { text += String(format: ".%06d", micros) }
        return text + "+00:00"
    }
}
