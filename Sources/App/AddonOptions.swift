import Core
import Foundation
import Logging

/// A configuration problem, naming the option (never its value: some are secrets).
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let option: String?
    public let message: String
    public var description: String { option.map { "option '\($0)': \(message)" } ?? message }
}

/// A `postpone_while` entry: the engine's own condition type (Core), checked here as an option
/// (`AddonOptions.validate`: exactly one of `state` or `above`/`below`, and `above < below`).
public typealias PostponeCondition = QuietCondition

/// The add-on options the Supervisor writes to `/data/options.json` (schema in config.yaml).
///
/// `description` and the mirror (what `dump`, `String(reflecting:)` and test failures print)
/// redact `b2_key`, `s3_secret_access_key`, `api_token` and `backup_password`.
public struct AddonOptions: Sendable, Equatable {
    public var b2KeyID: String?
    public var b2Key: String?
    public var b2Bucket: String?
    /// The folder inside the bucket, without leading or trailing slashes; may be empty.
    public var b2Prefix: String
    public var apiToken: String?
    public var logLevel: Logger.Level

    // Schedule.
    public var scheduleEnabled: Bool
    /// Local times of day as "HH:MM", sorted, without duplicates.
    public var scheduleTimes: [String]
    /// Weekdays as "mon" ... "sun", in week order, without duplicates.
    public var scheduleDays: [String]
    public var scheduleRandomDelayMinutes: Int
    public var catchUpMissed: Bool
    /// A scheduled backup waits while any of these holds (manual backups ignore them); without duplicates.
    public var postponeWhile: [PostponeCondition]
    /// Minutes between two looks at `postponeWhile` while a scheduled backup waits.
    public var postponeRecheckMinutes: Int
    /// The longest a scheduled backup waits for `postponeWhile`; then it runs anyway. 0 turns postponing off.
    public var postponeMaxMinutes: Int

    // What a backup holds.
    /// "full" or "partial" (`backupTypes`).
    public var backupType: String
    /// Add-on slugs, without duplicates.
    public var excludeAddons: [String]
    /// Among `excludableFolders`, without duplicates.
    public var excludeFolders: [String]
    public var excludeDatabase: Bool
    /// Changes to the critical add-ons each backup is checked for (by default Zigbee2MQTT, Mosquitto, ESPHome,
    /// Z-Wave JS and Matter Server, when installed): a slug adds an add-on, "-slug" removes one of the defaults.
    /// Each as `isCriticalAddonEntry`; without duplicates, in their first order.
    public var criticalAddons: [String]
    /// Encrypts the backups Home Assistant makes; a secret, never logged.
    public var backupPassword: String?
    /// Name template with the placeholders in `backupNamePlaceholders`.
    public var backupName: String
    public var keepLocal: Bool

    // Upload.
    public var uploadConcurrency: Int
    /// Upload bandwidth limit in kilobits per second (1 kbit/s = 125 bytes/s); 0 = unlimited.
    public var uploadLimitKbps: Int

    // Notifications and monitoring.
    /// A notify service such as "notify.mobile_app_phone".
    public var notifyService: String?
    public var notifyOnSuccess: Bool
    public var staleAfterHours: Int

    // Retention in B2, as restic's `forget`: a backup is kept if any rule keeps it; 0 turns a rule off.
    /// Keeps the N newest backups.
    public var keepLast: Int
    /// Keeps the newest backup of each of the last N days that have backups (Home Assistant's time zone).
    public var keepDaily: Int
    /// Keeps the newest backup of each of the last N ISO weeks that have backups.
    public var keepWeekly: Int
    /// Keeps the newest backup of each of the last N months that have backups.
    public var keepMonthly: Int
    /// Keeps the newest backup of each of the last N years that have backups.
    public var keepYearly: Int

    // Retention in Home Assistant (Settings → System → Backups); all 0 keeps every local backup.
    public var localKeepLast: Int
    public var localKeepDaily: Int
    public var localKeepWeekly: Int
    public var localKeepMonthly: Int
    /// Retention also deletes backups this add-on did not make.
    public var manageOtherBackups: Bool
    /// "delete" (every version of the file) or "hide" (the bucket's lifecycle rules delete it) (`b2DeletionModes`).
    public var b2Deletion: String
    /// Days each upload is locked (Object Lock) against deletion; 0 = no lock.
    public var immutableDays: Int
    /// Days between two scheduled checks that a stored backup can be restored (one backup per check, the
    /// longest unchecked first); 0 turns the scheduled check off. Each new upload is checked anyway.
    public var verifyDays: Int
    /// `full` (stream the whole backup back and check every archive) or `quick` (only the tar headers,
    /// backup.json and the archives' headers) (`verifyModes`).
    public var verifyMode: String

    // The optional second destination, an S3-compatible bucket (AWS S3, MinIO, Wasabi, Cloudflare R2,
    // B2's S3 endpoint). Its values are checked only while `s3Enabled` is on (`validate`).
    public var s3Enabled: Bool
    /// The endpoint as an http(s) URL without a trailing slash, or nil for AWS (`s3EndpointURL`).
    public var s3Endpoint: String?
    public var s3Region: String
    public var s3Bucket: String?
    /// The folder inside the bucket, as `b2Prefix`: without leading or trailing slashes; may be empty.
    public var s3Prefix: String
    public var s3AccessKeyID: String?
    /// A secret, never logged.
    public var s3SecretAccessKey: String?
    /// `https://endpoint/bucket/key` (MinIO, IP addresses, localhost) instead of `https://bucket.endpoint/key`.
    public var s3PathStyle: Bool
    /// Multipart upload part size in MiB (`s3PartSizeRange`).
    public var s3PartSizeMB: Int
    /// A run succeeds only when every enabled destination holds a verified copy; false: when at least one does.
    public var requireAllDestinations: Bool
    /// Where a restore reads from first (`restoreSources`): "auto" (a verified copy, B2 before S3),
    /// "b2" or "s3" (that destination first, the other as fall-back).
    public var restoreSource: String
    // Retention in the S3 bucket: the B2 rules' meaning, with their own numbers.
    public var s3KeepLast: Int
    public var s3KeepDaily: Int
    public var s3KeepWeekly: Int
    public var s3KeepMonthly: Int
    public var s3KeepYearly: Int

    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// Shorter bearer tokens are too easy to guess for an API that can delete backups.
    public static let minimumAPITokenLength = 16
    /// Weekday keys in week order.
    public static let weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    public static let backupTypes = ["full", "partial"]
    public static let excludableFolders = ["ssl", "share", "media", "addons/local"]
    public static let backupNamePlaceholders = ["date", "time", "type", "version"]
    public static let maximumBackupNameLength = 100
    public static let scheduleRandomDelayRange = 0...240
    public static let postponeRecheckRange = 1...60
    public static let postponeMaxRange = 0...1440
    public static let uploadConcurrencyRange = 1...16
    public static let staleAfterHoursRange = 1...8760
    public static let keepRange = 0...1000
    public static let localKeepRange = 0...100
    public static let b2DeletionModes = ["delete", "hide"]
    public static let immutableDaysRange = 0...3650
    public static let verifyDaysRange = 0...365
    public static let verifyModes = ["full", "quick"]
    public static let maximumSlugLength = 100
    public static let s3PartSizeRange = 5...5000
    public static let restoreSources = ["auto", "b2", "s3"]
    public static let defaultS3Region = "us-east-1"

    public init(b2KeyID: String? = nil, b2Key: String? = nil, b2Bucket: String? = nil, b2Prefix: String = "homeassistant",
                apiToken: String? = nil, logLevel: Logger.Level = .info,
                scheduleEnabled: Bool = true, scheduleTimes: [String] = ["03:30"], scheduleDays: [String] = AddonOptions.weekdays,
                scheduleRandomDelayMinutes: Int = 0, catchUpMissed: Bool = true,
                postponeWhile: [PostponeCondition] = [], postponeRecheckMinutes: Int = 5, postponeMaxMinutes: Int = 120,
                backupType: String = "full", excludeAddons: [String] = [], excludeFolders: [String] = [], excludeDatabase: Bool = false,
                criticalAddons: [String] = [],
                backupPassword: String? = nil, backupName: String = "B2 {date} {type}", keepLocal: Bool = true,
                uploadConcurrency: Int = 4, uploadLimitKbps: Int = 0,
                notifyService: String? = nil, notifyOnSuccess: Bool = false, staleAfterHours: Int = 48,
                keepLast: Int = 0, keepDaily: Int = 7, keepWeekly: Int = 4, keepMonthly: Int = 6, keepYearly: Int = 0,
                localKeepLast: Int = 3, localKeepDaily: Int = 0, localKeepWeekly: Int = 0, localKeepMonthly: Int = 0,
                manageOtherBackups: Bool = false, b2Deletion: String = "delete", immutableDays: Int = 0,
                verifyDays: Int = 7, verifyMode: String = "full",
                s3Enabled: Bool = false, s3Endpoint: String? = nil, s3Region: String = AddonOptions.defaultS3Region,
                s3Bucket: String? = nil, s3Prefix: String = "homeassistant", s3AccessKeyID: String? = nil,
                s3SecretAccessKey: String? = nil, s3PathStyle: Bool = false, s3PartSizeMB: Int = 16,
                requireAllDestinations: Bool = true, restoreSource: String = "auto",
                s3KeepLast: Int = 0, s3KeepDaily: Int = 7, s3KeepWeekly: Int = 4, s3KeepMonthly: Int = 6, s3KeepYearly: Int = 0) {
        self.b2KeyID = b2KeyID
        self.b2Key = b2Key
        self.b2Bucket = b2Bucket
        self.b2Prefix = b2Prefix
        self.apiToken = apiToken
        self.logLevel = logLevel
        self.scheduleEnabled = scheduleEnabled
        self.scheduleTimes = scheduleTimes
        self.scheduleDays = scheduleDays
        self.scheduleRandomDelayMinutes = scheduleRandomDelayMinutes
        self.catchUpMissed = catchUpMissed
        self.postponeWhile = postponeWhile
        self.postponeRecheckMinutes = postponeRecheckMinutes
        self.postponeMaxMinutes = postponeMaxMinutes
        self.backupType = backupType
        self.excludeAddons = excludeAddons
        self.excludeFolders = excludeFolders
        self.excludeDatabase = excludeDatabase
        self.criticalAddons = criticalAddons
        self.backupPassword = backupPassword
        self.backupName = backupName
        self.keepLocal = keepLocal
        self.uploadConcurrency = uploadConcurrency
        self.uploadLimitKbps = uploadLimitKbps
        self.notifyService = notifyService
        self.notifyOnSuccess = notifyOnSuccess
        self.staleAfterHours = staleAfterHours
        self.keepLast = keepLast
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
        self.keepYearly = keepYearly
        self.localKeepLast = localKeepLast
        self.localKeepDaily = localKeepDaily
        self.localKeepWeekly = localKeepWeekly
        self.localKeepMonthly = localKeepMonthly
        self.manageOtherBackups = manageOtherBackups
        self.b2Deletion = b2Deletion
        self.immutableDays = immutableDays
        self.verifyDays = verifyDays
        self.verifyMode = verifyMode
        self.s3Enabled = s3Enabled
        self.s3Endpoint = s3Endpoint
        self.s3Region = s3Region
        self.s3Bucket = s3Bucket
        self.s3Prefix = s3Prefix
        self.s3AccessKeyID = s3AccessKeyID
        self.s3SecretAccessKey = s3SecretAccessKey
        self.s3PathStyle = s3PathStyle
        self.s3PartSizeMB = s3PartSizeMB
        self.requireAllDestinations = requireAllDestinations
        self.restoreSource = restoreSource
        self.s3KeepLast = s3KeepLast
        self.s3KeepDaily = s3KeepDaily
        self.s3KeepWeekly = s3KeepWeekly
        self.s3KeepMonthly = s3KeepMonthly
        self.s3KeepYearly = s3KeepYearly
    }

    /// All B2 `keep_*` rules are 0: every backup in B2 is kept.
    public var retentionOff: Bool {
        keepLast == 0 && keepDaily == 0 && keepWeekly == 0 && keepMonthly == 0 && keepYearly == 0
    }

    /// All S3 `s3_keep_*` rules are 0: every backup in the S3 bucket is kept.
    public var s3RetentionOff: Bool {
        s3KeepLast == 0 && s3KeepDaily == 0 && s3KeepWeekly == 0 && s3KeepMonthly == 0 && s3KeepYearly == 0
    }

    /// `upload_limit_kbps` in bytes per second, or nil for unlimited.
    public var uploadLimitBytesPerSecond: Int? {
        uploadLimitKbps <= 0 ? nil : min(uploadLimitKbps, Int.max / 125) * 125
    }

    /// Options needed before the first backup that are still unset, by option key.
    public var missingForBackups: [String] {
        [("b2_key_id", b2KeyID), ("b2_key", b2Key), ("b2_bucket", b2Bucket)].filter { $0.1 == nil }.map(\.0)
    }

    /// Options the S3 destination needs that are still unset, by option key; empty while `s3_enabled` is off.
    public var missingForS3: [String] {
        guard s3Enabled else { return [] }
        return [("s3_bucket", s3Bucket), ("s3_access_key_id", s3AccessKeyID), ("s3_secret_access_key", s3SecretAccessKey)]
            .filter { $0.1 == nil }.map(\.0)
    }

    /// `s3_endpoint`, or AWS's endpoint for `s3_region` when it is empty.
    public var s3EndpointURL: String {
        s3Endpoint ?? "https://s3.\(s3Region).amazonaws.com"
    }

    /// Reads and validates the options file.
    public static func load(from url: URL) throws(ConfigurationError) -> AddonOptions {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ConfigurationError(option: nil, message: "cannot read the options file \(url.path): \((error as NSError).localizedDescription)")
        }
        return try parse(data)
    }

    public static func parse(_ data: Data) throws(ConfigurationError) -> AddonOptions {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigurationError(option: nil, message: "the options file is not valid JSON")
        }
        guard let values = object as? [String: Any] else { throw ConfigurationError(option: nil, message: "the options file must hold a JSON object") }
        var options = AddonOptions()
        options.b2KeyID = try optionalString(values, "b2_key_id")
        options.b2Key = try optionalString(values, "b2_key")
        options.b2Bucket = try optionalString(values, "b2_bucket")
        options.apiToken = try optionalString(values, "api_token")
        options.b2Prefix = try optionalString(values, "b2_prefix").map(normalizedPrefix) ?? "homeassistant"
        if let level = try optionalString(values, "log_level") {
            guard logLevels.contains(level), let parsed = Logger.Level(rawValue: level) else {
                throw ConfigurationError(option: "log_level", message: "'\(level)' is not one of \(logLevels.joined(separator: ", "))")
            }
            options.logLevel = parsed
        }
        if let enabled = try bool(values, "schedule_enabled") { options.scheduleEnabled = enabled }
        if let times = try stringList(values, "schedule_times") {
            for time in times where !isTimeOfDay(time) {
                throw ConfigurationError(option: "schedule_times", message: "'\(time)' is not a time of day as HH:MM (00:00 to 23:59)")
            }
            options.scheduleTimes = Array(Set(times)).sorted()
        }
        if let days = try stringList(values, "schedule_days") {
            try checkMembers(days, of: weekdays, option: "schedule_days")
            options.scheduleDays = weekdays.filter(days.contains)
        }
        if let delay = try integer(values, "schedule_random_delay_minutes", in: scheduleRandomDelayRange) { options.scheduleRandomDelayMinutes = delay }
        if let catchUp = try bool(values, "catch_up_missed") { options.catchUpMissed = catchUp }
        if let conditions = try postponeConditions(values, "postpone_while") { options.postponeWhile = unique(conditions) }
        if let minutes = try integer(values, "postpone_recheck_minutes", in: postponeRecheckRange) { options.postponeRecheckMinutes = minutes }
        if let minutes = try integer(values, "postpone_max_minutes", in: postponeMaxRange) { options.postponeMaxMinutes = minutes }
        if let type = try optionalString(values, "backup_type") {
            try checkMembers([type], of: backupTypes, option: "backup_type")
            options.backupType = type
        }
        if let addons = try stringList(values, "exclude_addons") { options.excludeAddons = unique(addons) }
        if let folders = try stringList(values, "exclude_folders") {
            try checkMembers(folders, of: excludableFolders, option: "exclude_folders")
            options.excludeFolders = unique(folders)
        }
        if let database = try bool(values, "exclude_database") { options.excludeDatabase = database }
        if let addons = try stringList(values, "critical_addons") { options.criticalAddons = unique(addons) }
        options.backupPassword = try secret(values, "backup_password")
        if let name = try optionalString(values, "backup_name") {
            options.backupName = name
        } else if let raw = values["backup_name"], !(raw is NSNull) {
            throw ConfigurationError(option: "backup_name", message: "must not be empty; the default is 'B2 {date} {type}'")
        }
        if let keep = try bool(values, "keep_local") { options.keepLocal = keep }
        if let concurrency = try integer(values, "upload_concurrency", in: uploadConcurrencyRange) { options.uploadConcurrency = concurrency }
        if let limit = try integer(values, "upload_limit_kbps", in: 0...Int.max) { options.uploadLimitKbps = limit }
        options.notifyService = try optionalString(values, "notify_service")
        if let notify = try bool(values, "notify_on_success") { options.notifyOnSuccess = notify }
        if let hours = try integer(values, "stale_after_hours", in: staleAfterHoursRange) { options.staleAfterHours = hours }
        if let keep = try integer(values, "keep_last", in: keepRange) { options.keepLast = keep }
        if let keep = try integer(values, "keep_daily", in: keepRange) { options.keepDaily = keep }
        if let keep = try integer(values, "keep_weekly", in: keepRange) { options.keepWeekly = keep }
        if let keep = try integer(values, "keep_monthly", in: keepRange) { options.keepMonthly = keep }
        if let keep = try integer(values, "keep_yearly", in: keepRange) { options.keepYearly = keep }
        if let keep = try integer(values, "local_keep_last", in: localKeepRange) { options.localKeepLast = keep }
        if let keep = try integer(values, "local_keep_daily", in: localKeepRange) { options.localKeepDaily = keep }
        if let keep = try integer(values, "local_keep_weekly", in: localKeepRange) { options.localKeepWeekly = keep }
        if let keep = try integer(values, "local_keep_monthly", in: localKeepRange) { options.localKeepMonthly = keep }
        if let manage = try bool(values, "manage_other_backups") { options.manageOtherBackups = manage }
        if let mode = try optionalString(values, "b2_deletion") {
            try checkMembers([mode], of: b2DeletionModes, option: "b2_deletion")
            options.b2Deletion = mode
        }
        if let days = try integer(values, "immutable_days", in: immutableDaysRange) { options.immutableDays = days }
        if let days = try integer(values, "verify_days", in: verifyDaysRange) { options.verifyDays = days }
        if let mode = try optionalString(values, "verify_mode") {
            try checkMembers([mode], of: verifyModes, option: "verify_mode")
            options.verifyMode = mode
        }
        try parseS3(values, into: &options)
        try options.validate()
        return options
    }

    /// The `s3_*`, `require_all_destinations` and `restore_source` options; absent keys keep their defaults.
    private static func parseS3(_ values: [String: Any], into options: inout AddonOptions) throws(ConfigurationError) {
        if let enabled = try bool(values, "s3_enabled") { options.s3Enabled = enabled }
        options.s3Endpoint = try optionalString(values, "s3_endpoint").map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        if let region = try optionalString(values, "s3_region") { options.s3Region = region }
        options.s3Bucket = try optionalString(values, "s3_bucket")
        options.s3Prefix = try optionalString(values, "s3_prefix").map(normalizedPrefix) ?? "homeassistant"
        options.s3AccessKeyID = try optionalString(values, "s3_access_key_id")
        options.s3SecretAccessKey = try optionalString(values, "s3_secret_access_key")
        if let pathStyle = try bool(values, "s3_path_style") { options.s3PathStyle = pathStyle }
        if let size = try integer(values, "s3_part_size_mb", in: s3PartSizeRange) { options.s3PartSizeMB = size }
        if let all = try bool(values, "require_all_destinations") { options.requireAllDestinations = all }
        if let source = try optionalString(values, "restore_source") {
            try checkMembers([source], of: restoreSources, option: "restore_source")
            options.restoreSource = source
        }
        if let keep = try integer(values, "s3_keep_last", in: keepRange) { options.s3KeepLast = keep }
        if let keep = try integer(values, "s3_keep_daily", in: keepRange) { options.s3KeepDaily = keep }
        if let keep = try integer(values, "s3_keep_weekly", in: keepRange) { options.s3KeepWeekly = keep }
        if let keep = try integer(values, "s3_keep_monthly", in: keepRange) { options.s3KeepMonthly = keep }
        if let keep = try integer(values, "s3_keep_yearly", in: keepRange) { options.s3KeepYearly = keep }
    }

    /// JSON `true` or `false` only: numbers and strings such as "yes" are refused.
    private static func bool(_ values: [String: Any], _ key: String) throws(ConfigurationError) -> Bool? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        guard let number = raw as? NSNumber, isJSONBoolean(number), let value = raw as? Bool else {
            throw ConfigurationError(option: key, message: "must be a boolean (true or false)")
        }
        return value
    }

    /// JSONSerialization gives booleans and numbers both as NSNumber; booleans have their own class.
    private static func isJSONBoolean(_ number: NSNumber) -> Bool {
        type(of: number) == type(of: NSNumber(value: true))
    }

    /// A whole JSON number (1 and 1.0 alike, not 1.5, not a boolean or a string) inside `range`.
    private static func integer(_ values: [String: Any], _ key: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        guard let number = raw as? NSNumber, !isJSONBoolean(number) else {
            throw ConfigurationError(option: key, message: "must be an integer")
        }
        let double = number.doubleValue
        guard double.isFinite, double.rounded() == double else { throw ConfigurationError(option: key, message: "must be an integer") }
        let bounds = range.upperBound == Int.max ? "\(range.lowerBound) or more" : "between \(range.lowerBound) and \(range.upperBound)"
        guard let value = Int(exactly: double) else { // beyond Int's range
            throw ConfigurationError(option: key, message: double < 0 ? "must be \(bounds)" : "is too large; it must be \(bounds)")
        }
        guard range.contains(value) else { throw ConfigurationError(option: key, message: "must be \(bounds)") }
        return value
    }

    /// A JSON list of strings, each trimmed; empty entries are dropped (the Supervisor UI leaves them).
    private static func stringList(_ values: [String: Any], _ key: String) throws(ConfigurationError) -> [String]? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        guard let list = raw as? [Any] else { throw ConfigurationError(option: key, message: "must be a list of strings") }
        var strings: [String] = []
        for element in list {
            guard let text = element as? String else { throw ConfigurationError(option: key, message: "must be a list of strings") }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { strings.append(trimmed) }
        }
        return strings
    }

    /// A secret string, kept exactly as entered (trimming would change it); empty or blank counts as unset.
    private static func secret(_ values: [String: Any], _ key: String) throws(ConfigurationError) -> String? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        guard let text = raw as? String else { throw ConfigurationError(option: key, message: "must be a string") }
        return text.allSatisfy(\.isWhitespace) ? nil : text
    }

    /// A JSON list of objects `{entity, state?, above?, below?}`. Strings are trimmed; null and empty strings count
    /// as unset (the Supervisor UI leaves them); other keys are ignored, as the Supervisor drops them.
    /// Whether each condition makes sense is `validate`'s job.
    private static func postponeConditions(_ values: [String: Any], _ key: String) throws(ConfigurationError) -> [PostponeCondition]? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        let example = #"{entity: binary_sensor.hallway_motion, state: "on"} or {entity: sensor.processor_temperature, above: 80}"#
        guard let list = raw as? [Any] else { throw ConfigurationError(option: key, message: "must be a list of conditions such as \(example)") }
        var conditions: [PostponeCondition] = []
        for (index, element) in list.enumerated() {
            let entry = "entry \(index + 1)"
            guard let fields = element as? [String: Any] else { throw ConfigurationError(option: key, message: "\(entry) must be a condition such as \(example)") }
            func text(_ field: String) throws(ConfigurationError) -> String? {
                guard let raw = fields[field], !(raw is NSNull) else { return nil }
                guard let text = raw as? String else {
                    throw ConfigurationError(option: key, message: #"\#(entry): \#(field) must be a string (quote values such as "on" in YAML)"#)
                }
                let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
                return trimmed.isEmpty ? nil : trimmed
            }
            func number(_ field: String) throws(ConfigurationError) -> Double? {
                guard let raw = fields[field], !(raw is NSNull) else { return nil }
                guard let number = raw as? NSNumber, !isJSONBoolean(number), number.doubleValue.isFinite else {
                    throw ConfigurationError(option: key, message: "\(entry): \(field) must be a number")
                }
                return number.doubleValue
            }
            guard let entity = try text("entity") else {
                throw ConfigurationError(option: key, message: "\(entry) has no entity; each condition names one, such as binary_sensor.hallway_motion")
            }
            conditions.append(PostponeCondition(entity: entity, state: try text("state"), above: try number("above"), below: try number("below")))
        }
        return conditions
    }

    /// Why a `postpone_while` condition is unusable, or nil.
    static func postponeConditionProblem(_ condition: PostponeCondition) -> String? {
        guard isEntityID(condition.entity) else {
            return "'\(condition.entity)' is not an entity ID; use domain.object_id in lowercase, such as binary_sensor.hallway_motion"
        }
        let hasLimit = condition.above != nil || condition.below != nil
        if condition.state != nil && hasLimit { return "give either state or above/below, not both" }
        if condition.state == nil && !hasLimit { return "give a state (such as \"on\") or above and/or below" }
        if let above = condition.above, let below = condition.below, above >= below {
            return "above (\(format(above))) must be less than below (\(format(below))): the state must lie between them"
        }
        return nil
    }

    /// The characters of add-on slugs, as the Supervisor allows them: `^[-_.A-Za-z0-9]+$`.
    static func isSlugCharacter(_ scalar: Unicode.Scalar) -> Bool {
        scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || "-_.".unicodeScalars.contains(scalar))
    }

    /// A `critical_addons` entry: an add-on slug of at most 100 characters, with a leading "-" to remove it
    /// (`^-?[A-Za-z0-9_.-]{1,100}$`; a lone "-" names nothing).
    static func isCriticalAddonEntry(_ entry: String) -> Bool {
        let slug = entry.hasPrefix("-") ? entry.unicodeScalars.dropFirst() : entry.unicodeScalars[...]
        return (1...maximumSlugLength).contains(slug.count) && slug.allSatisfy(isSlugCharacter)
    }

    /// Lowercase letters, digits and '_', as the object part of entity IDs and service names.
    static func isObjectID(_ text: Substring) -> Bool {
        !text.isEmpty && text.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    /// A Home Assistant entity ID, `domain.object_id` (`^[a-z0-9_]+\.[a-z0-9_]+$`).
    static func isEntityID(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy(isObjectID)
    }

    /// 80 rather than 80.0; 80.5 as it is.
    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    private static func checkMembers(_ entries: [String], of allowed: [String], option: String) throws(ConfigurationError) {
        for entry in entries where !allowed.contains(entry) {
            throw ConfigurationError(option: option, message: "'\(entry)' is not one of \(allowed.joined(separator: ", "))")
        }
    }

    /// The entries in their first order, each once.
    private static func unique<Entry: Hashable>(_ entries: [Entry]) -> [Entry] {
        var seen = Set<Entry>()
        return entries.filter { seen.insert($0).inserted }
    }

    /// "HH:MM" from 00:00 to 23:59, as the schema's `match(^([01][0-9]|2[0-3]):[0-5][0-9]$)`.
    static func isTimeOfDay(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let hour = Int(parts[0]), let minute = Int(parts[1]) else { return false }
        return (0...23).contains(hour) && (0...59).contains(minute)
    }

    /// Why a backup name template is unusable, or nil: only known `{placeholder}`s, no stray braces.
    static func backupNameProblem(_ template: String) -> String? {
        guard template.count <= maximumBackupNameLength else { return "is longer than \(maximumBackupNameLength) characters" }
        guard !template.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            return "must not contain control characters such as line breaks"
        }
        var rest = Substring(template)
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            guard rest[open] == "{" else { return "has a '}' without a matching '{'" }
            guard let close = rest[open...].firstIndex(of: "}") else { return "has a '{' without a matching '}'" }
            let name = rest[rest.index(after: open)..<close]
            guard backupNamePlaceholders.contains(String(name)) else {
                let known = backupNamePlaceholders.map { "{\($0)}" }.joined(separator: ", ")
                return "uses the unknown placeholder '{\(name)}'; known placeholders: \(known)"
            }
            rest = rest[rest.index(after: close)...]
        }
        return nil
    }

    /// Empty strings count as unset: the Supervisor UI leaves them when a field is cleared.
    private static func optionalString(_ values: [String: Any], _ key: String) throws(ConfigurationError) -> String? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        guard let text = raw as? String else { throw ConfigurationError(option: key, message: "must be a string") }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    static func normalizedPrefix(_ prefix: String) -> String {
        prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
    }

    func validate() throws(ConfigurationError) {
        if let bucket = b2Bucket {
            // B2 bucket names: 6-63 characters, letters, digits and '-', not starting with "b2-".
            let allowed = bucket.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "-" }
            guard (6...63).contains(bucket.count), allowed, !bucket.lowercased().hasPrefix("b2-") else {
                throw ConfigurationError(option: "b2_bucket", message: "'\(bucket)' is not a valid B2 bucket name (6-63 letters, digits or '-', not starting with 'b2-')")
            }
        }
        if let keyID = b2KeyID, !keyID.unicodeScalars.allSatisfy({ $0.isASCII && CharacterSet.alphanumerics.contains($0) }) {
            throw ConfigurationError(option: "b2_key_id", message: "must contain only letters and digits, as the application key ID shown by Backblaze")
        }
        if let key = b2Key, key.contains(where: { $0.isWhitespace }) {
            throw ConfigurationError(option: "b2_key", message: "contains whitespace; paste the application key exactly as Backblaze shows it")
        }
        if let token = apiToken, token.count < Self.minimumAPITokenLength {
            throw ConfigurationError(option: "api_token", message: "is shorter than \(Self.minimumAPITokenLength) characters; use a long random value")
        }
        try Self.checkPrefix(b2Prefix, option: "b2_prefix")
        if scheduleEnabled && scheduleTimes.isEmpty {
            throw ConfigurationError(option: "schedule_times", message: "must list at least one time (HH:MM) while schedule_enabled is on")
        }
        if scheduleEnabled && scheduleDays.isEmpty {
            throw ConfigurationError(option: "schedule_days", message: "must list at least one day (mon to sun) while schedule_enabled is on")
        }
        if let slug = excludeAddons.first(where: { !$0.unicodeScalars.allSatisfy(Self.isSlugCharacter) }) {
            throw ConfigurationError(option: "exclude_addons", message: "'\(slug)' is not an add-on slug; use slugs such as core_mosquitto (shown in the add-on's URL)")
        }
        if let entry = criticalAddons.first(where: { !Self.isCriticalAddonEntry($0) }) {
            throw ConfigurationError(option: "critical_addons", message: "'\(entry)' is not an add-on slug; use slugs such as 45df7312_zigbee2mqtt to add an add-on, or -core_matter_server to remove a default (at most 100 letters, digits, '_', '.' or '-')")
        }
        if let added = criticalAddons.first(where: { criticalAddons.contains("-" + $0) }) {
            throw ConfigurationError(option: "critical_addons", message: "lists both '\(added)' and '-\(added)'; keep one")
        }
        for (index, condition) in postponeWhile.enumerated() {
            if let problem = Self.postponeConditionProblem(condition) {
                throw ConfigurationError(option: "postpone_while", message: "entry \(index + 1) (\(condition.entity)): \(problem)")
            }
        }
        if let problem = Self.backupNameProblem(backupName) {
            throw ConfigurationError(option: "backup_name", message: problem)
        }
        if let password = backupPassword, password.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw ConfigurationError(option: "backup_password", message: "contains a control character such as a line break")
        }
        if let service = notifyService {
            let parts = service.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == "notify", Self.isObjectID(parts[1]) else {
                throw ConfigurationError(option: "notify_service", message: "'\(service)' is not a notify service; use notify.<name> with lowercase letters, digits and '_', such as notify.mobile_app_phone")
            }
        }
        if s3Enabled { try validateS3() }
    }

    /// A folder path in a bucket (`b2_prefix`, `s3_prefix`), already without leading and trailing slashes.
    private static func checkPrefix(_ prefix: String, option: String) throws(ConfigurationError) {
        guard !prefix.isEmpty else { return }
        let segments = prefix.split(separator: "/", omittingEmptySubsequences: false)
        guard prefix.utf8.count <= 200,
              !prefix.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "\\" }),
              !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw ConfigurationError(option: option, message: "must be a folder path such as 'homeassistant' or 'homes/main' (no empty, '.' or '..' parts, no control characters, at most 200 bytes)")
        }
    }

    /// Why an `s3_endpoint` is unusable, or nil: an http(s) URL with a host, without user name, password,
    /// query or fragment. The message never repeats a URL that holds a user name or password.
    static func s3EndpointProblem(_ endpoint: String) -> String? {
        let example = "such as https://s3.eu-central-1.amazonaws.com or http://192.168.1.10:9000"
        guard let url = URLComponents(string: endpoint) else { return "is not a URL; use an http(s) URL \(example)" }
        if url.user != nil || url.password != nil {
            return "must not contain a user name or password; put the keys in s3_access_key_id and s3_secret_access_key"
        }
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            return "'\(endpoint)' is not an http(s) URL; use one \(example)"
        }
        guard let host = url.host, !host.isEmpty else { return "'\(endpoint)' has no host name; use a URL \(example)" }
        guard url.query == nil, url.fragment == nil else { return "'\(endpoint)' must not have a query (?…) or fragment (#…)" }
        return nil
    }

    /// The S3 destination's values, checked only while `s3_enabled` is on: a half-filled S3 section
    /// that is switched off never stops the add-on.
    private func validateS3() throws(ConfigurationError) {
        if let endpoint = s3Endpoint, let problem = Self.s3EndpointProblem(endpoint) {
            throw ConfigurationError(option: "s3_endpoint", message: problem)
        }
        // The region is part of the signature's credential scope (…/region/s3/aws4_request) and of AWS's host name.
        guard s3Region.count <= 64, s3Region.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_") }) else {
            throw ConfigurationError(option: "s3_region", message: "'\(s3Region)' is not a region; use letters, digits and '-', such as us-east-1, eu-central-1 or auto (Cloudflare R2)")
        }
        if let bucket = s3Bucket {
            // S3 bucket names: 3-63 lowercase letters, digits, '.' and '-'; older AWS buckets and some stores
            // also allow capitals and '_' and up to 255 characters. Anything else cannot stand in a host or path.
            let allowed = bucket.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-._".unicodeScalars.contains($0)) }
            guard (3...255).contains(bucket.count), allowed else {
                throw ConfigurationError(option: "s3_bucket", message: "'\(bucket)' is not a valid bucket name (3-63 lowercase letters, digits, '.' or '-', such as my-home-backups)")
            }
        }
        try Self.checkPrefix(s3Prefix, option: "s3_prefix")
        if let keyID = s3AccessKeyID, keyID.contains(where: { $0.isWhitespace || $0 == "/" }) || keyID.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw ConfigurationError(option: "s3_access_key_id", message: "must not contain spaces, control characters or '/'; paste the access key ID exactly as your provider shows it")
        }
        if let secret = s3SecretAccessKey, secret.contains(where: { $0.isWhitespace }) || secret.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw ConfigurationError(option: "s3_secret_access_key", message: "contains whitespace or a control character; paste the secret access key exactly as your provider shows it")
        }
    }
}

extension AddonOptions: CustomStringConvertible, CustomReflectable {
    /// Secrets show as set or unset, never their value.
    private var redactedFields: [(String, String)] {
        func secret(_ value: String?) -> String { value == nil ? "nil" : "<redacted>" }
        func text(_ value: String?) -> String { value.map { "\"\($0)\"" } ?? "nil" }
        return [
            ("b2KeyID", text(b2KeyID)), ("b2Key", secret(b2Key)), ("b2Bucket", text(b2Bucket)), ("b2Prefix", text(b2Prefix)),
            ("apiToken", secret(apiToken)), ("logLevel", "\(logLevel)"),
            ("scheduleEnabled", "\(scheduleEnabled)"), ("scheduleTimes", "\(scheduleTimes)"), ("scheduleDays", "\(scheduleDays)"),
            ("scheduleRandomDelayMinutes", "\(scheduleRandomDelayMinutes)"), ("catchUpMissed", "\(catchUpMissed)"),
            ("postponeWhile", "\(postponeWhile.map(\.description))"), ("postponeRecheckMinutes", "\(postponeRecheckMinutes)"),
            ("postponeMaxMinutes", "\(postponeMaxMinutes)"),
            ("backupType", text(backupType)), ("excludeAddons", "\(excludeAddons)"), ("excludeFolders", "\(excludeFolders)"),
            ("excludeDatabase", "\(excludeDatabase)"), ("criticalAddons", "\(criticalAddons)"), ("backupPassword", secret(backupPassword)), ("backupName", text(backupName)),
            ("keepLocal", "\(keepLocal)"), ("uploadConcurrency", "\(uploadConcurrency)"), ("uploadLimitKbps", "\(uploadLimitKbps)"),
            ("notifyService", text(notifyService)), ("notifyOnSuccess", "\(notifyOnSuccess)"), ("staleAfterHours", "\(staleAfterHours)"),
            ("keepLast", "\(keepLast)"), ("keepDaily", "\(keepDaily)"), ("keepWeekly", "\(keepWeekly)"),
            ("keepMonthly", "\(keepMonthly)"), ("keepYearly", "\(keepYearly)"),
            ("localKeepLast", "\(localKeepLast)"), ("localKeepDaily", "\(localKeepDaily)"),
            ("localKeepWeekly", "\(localKeepWeekly)"), ("localKeepMonthly", "\(localKeepMonthly)"),
            ("manageOtherBackups", "\(manageOtherBackups)"), ("b2Deletion", text(b2Deletion)), ("immutableDays", "\(immutableDays)"), ("verifyDays", "\(verifyDays)"), ("verifyMode", text(verifyMode)),
            ("s3Enabled", "\(s3Enabled)"), ("s3Endpoint", s3Endpoint.map { Self.endpointWithoutUserInfo($0) } ?? "nil"), ("s3Region", text(s3Region)),
            ("s3Bucket", text(s3Bucket)), ("s3Prefix", text(s3Prefix)), ("s3AccessKeyID", text(s3AccessKeyID)),
            ("s3SecretAccessKey", secret(s3SecretAccessKey)), ("s3PathStyle", "\(s3PathStyle)"), ("s3PartSizeMB", "\(s3PartSizeMB)"),
            ("requireAllDestinations", "\(requireAllDestinations)"), ("restoreSource", text(restoreSource)),
            ("s3KeepLast", "\(s3KeepLast)"), ("s3KeepDaily", "\(s3KeepDaily)"), ("s3KeepWeekly", "\(s3KeepWeekly)"),
            ("s3KeepMonthly", "\(s3KeepMonthly)"), ("s3KeepYearly", "\(s3KeepYearly)"),
        ]
    }

    /// The endpoint quoted, or `<redacted>` when it holds a user name or password (refused while S3 is on,
    /// but an S3 section that is off is not checked).
    private static func endpointWithoutUserInfo(_ endpoint: String) -> String {
        let components = URLComponents(string: endpoint)
        return components?.user != nil || components?.password != nil || (components == nil && endpoint.contains("@")) ? "<redacted>" : "\"\(endpoint)\""
    }

    public var description: String {
        "AddonOptions(" + redactedFields.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + ")"
    }

    public var customMirror: Mirror {
        Mirror(self, children: redactedFields.map { (label: Optional($0.0), value: $0.1 as Any) }, displayStyle: .struct)
    }
}

/// Settings that come from the environment rather than the options (tests and simulators set them).
public struct RuntimeEnvironment: Sendable, Equatable {
    public var supervisorURL: String
    public var supervisorToken: String?
    public var b2APIURL: String

    public static let defaultSupervisorURL = "http://supervisor"
    public static let defaultB2APIURL = "https://api.backblazeb2.com"

    public static func from(_ environment: [String: String]) throws(ConfigurationError) -> RuntimeEnvironment {
        let supervisor = environment["SUPERVISOR_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultSupervisorURL
        let b2 = environment["B2_API_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultB2APIURL
        for (name, value) in [("SUPERVISOR_URL", supervisor), ("B2_API_URL", b2)] {
            guard let url = URL(string: value), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
                throw ConfigurationError(option: nil, message: "environment variable \(name) must be an http(s) URL")
            }
        }
        let token = environment["SUPERVISOR_TOKEN"] ?? environment["HASSIO_TOKEN"]
        return RuntimeEnvironment(supervisorURL: trimmedURL(supervisor), supervisorToken: token.flatMap { $0.isEmpty ? nil : $0 }, b2APIURL: trimmedURL(b2))
    }

    private static func trimmedURL(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }
}
