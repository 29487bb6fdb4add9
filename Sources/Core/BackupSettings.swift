import Foundation

/// The backup options, as the engine uses them (App maps the add-on options onto this).
public struct BackupSettings: Sendable, Hashable {
    /// Every folder a partial backup can hold (Supervisor `FOLDER_*`).
    public static let folders = ["ssl", "share", "media", "addons/local"]

    public var type: BackupType
    public var excludeAddons: [String]
    public var excludeFolders: [String]
    public var excludeDatabase: Bool
    public var password: String?
    /// `{date}`, `{time}`, `{type}` and `{version}` are filled in.
    public var nameTemplate: String
    public var keepLocal: Bool
    public var upload: UploadSettings
    /// Home Assistant's time zone: names, file names and the schedule use local time.
    public var timeZone: TimeZone

    public init(type: BackupType = .full, excludeAddons: [String] = [], excludeFolders: [String] = [], excludeDatabase: Bool = false,
                password: String? = nil, nameTemplate: String = "B2 {date} {type}", keepLocal: Bool = true,
                upload: UploadSettings = UploadSettings(concurrency: 4, bytesPerSecond: nil), timeZone: TimeZone = .gmt) {
        self.type = type
        self.excludeAddons = excludeAddons
        self.excludeFolders = excludeFolders
        self.excludeDatabase = excludeDatabase
        self.password = password
        self.nameTemplate = nameTemplate
        self.keepLocal = keepLocal
        self.upload = upload
        self.timeZone = timeZone
    }
}

/// A manual run's overrides (`POST /api/backups`); unset fields come from the options.
public struct BackupRequest: Sendable, Hashable, Codable {
    public var name: String?
    public var type: BackupType?
    public var excludeAddons: [String]?
    public var excludeFolders: [String]?
    public var excludeDatabase: Bool?

    enum CodingKeys: String, CodingKey {
        case name, type
        case excludeAddons = "exclude_addons"
        case excludeFolders = "exclude_folders"
        case excludeDatabase = "exclude_database"
    }

    public init(name: String? = nil, type: BackupType? = nil, excludeAddons: [String]? = nil, excludeFolders: [String]? = nil, excludeDatabase: Bool? = nil) {
        self.name = name
        self.type = type
        self.excludeAddons = excludeAddons
        self.excludeFolders = excludeFolders
        self.excludeDatabase = excludeDatabase
    }

    /// `^[A-Za-z0-9_.-]{1,100}$`, as the API document says.
    public static func isAddonSlug(_ text: String) -> Bool {
        (1...100).contains(text.count) && text.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_.-".unicodeScalars.contains($0)) }
    }

    /// Checks what the Supervisor would refuse later, so a bad request fails before anything starts.
    public func validate() throws(JobError) {
        if let name {
            let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty, name.count <= 100, !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw JobError(code: "invalid_request", message: "'name' must be 1 to 100 printable characters")
            }
        }
        if let folders = excludeFolders, let unknown = folders.first(where: { !BackupSettings.folders.contains($0) }) {
            throw JobError(code: "invalid_request", message: "'exclude_folders' has '\(unknown)'; folders are \(BackupSettings.folders.joined(separator: ", "))")
        }
        if let addons = excludeAddons, let bad = addons.first(where: { !Self.isAddonSlug($0) }) {
            throw JobError(code: "invalid_request", message: "'exclude_addons' has '\(bad)', which is not an add-on slug (letters, digits, '_', '-', '.')")
        }
    }
}

extension BackupSettings {
    /// The plan for one run: options, overridden by the request; name and file name in local time.
    public func plan(for request: BackupRequest, at date: Date, homeAssistantVersion: String?, randomSuffix: String) -> BackupPlan {
        let type = request.type ?? self.type
        let name = request.name?.trimmingCharacters(in: .whitespacesAndNewlines)
            ?? Self.render(nameTemplate, date: date, timeZone: timeZone, type: type, version: homeAssistantVersion)
        return BackupPlan(name: name, filename: Self.filename(name: name, date: date, timeZone: timeZone, suffix: randomSuffix), type: type,
                          excludeAddons: request.excludeAddons ?? excludeAddons, excludeFolders: request.excludeFolders ?? excludeFolders,
                          excludeDatabase: request.excludeDatabase ?? excludeDatabase, protected: password != nil)
    }

    static func render(_ template: String, date: Date, timeZone: TimeZone, type: BackupType, version: String?) -> String {
        let parts = Self.local(date, timeZone)
        return template
            .replacingOccurrences(of: "{date}", with: parts.date)
            .replacingOccurrences(of: "{time}", with: parts.time)
            .replacingOccurrences(of: "{type}", with: type.rawValue)
            .replacingOccurrences(of: "{version}", with: version ?? "unknown")
    }

    /// `<name>_<YYYY-MM-DD_HH.MM.SS>_<suffix>.tar`, safe for the Supervisor's `^[^\\/]+\.tar$` and for B2.
    static func filename(name: String, date: Date, timeZone: TimeZone, suffix: String) -> String {
        let parts = Self.local(date, timeZone)
        var safe = String(name.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || "-.".unicodeScalars.contains(scalar)) ? Character(scalar) : "_"
        })
        while safe.contains("__") { safe = safe.replacingOccurrences(of: "__", with: "_") }
        safe = String(safe.trimmingCharacters(in: CharacterSet(charactersIn: "_.")).prefix(60))
        return "\(safe.isEmpty ? "backup" : safe)_\(parts.date)_\(parts.time.replacingOccurrences(of: ":", with: ".")).\(parts.seconds)_\(suffix).tar"
    }

    private static func local(_ date: Date, _ timeZone: TimeZone) -> (date: String, time: String, seconds: String) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }
        return (String(format: "%04d", c.year ?? 0) + "-" + two(c.month) + "-" + two(c.day), two(c.hour) + ":" + two(c.minute), two(c.second))
    }

    /// The Supervisor request for a plan: full when nothing is excluded, else partial with the rest.
    public func spec(for plan: BackupPlan, installedAddons: [String]) -> BackupSpec {
        if plan.type == .full && plan.excludeAddons.isEmpty && plan.excludeFolders.isEmpty {
            return BackupSpec(name: plan.name, filename: plan.filename, password: password, excludeDatabase: plan.excludeDatabase, addons: nil, folders: nil)
        }
        let excludedAddons = Set(plan.excludeAddons)
        let excludedFolders = Set(plan.excludeFolders)
        return BackupSpec(name: plan.name, filename: plan.filename, password: password, excludeDatabase: plan.excludeDatabase,
                          addons: installedAddons.filter { !excludedAddons.contains($0) }.sorted(),
                          folders: Self.folders.filter { !excludedFolders.contains($0) })
    }
}
