import Core
import Foundation
import Logging
@testable import App
import Testing

@Suite struct AddonOptionsTests {
    private func parse(_ json: String) throws(ConfigurationError) -> AddonOptions {
        try AddonOptions.parse(Data(json.utf8))
    }

    /// A `ConfigurationError` for `option` whose text says `message` and shows no secret (test secrets hold "s3cr3t").
    private func isRefusal(_ error: any Error, option: String, message: String) -> Bool {
        guard let error = error as? ConfigurationError else { return false }
        let text = "\(error)"
        return error.option == option && text.hasPrefix("option '\(option)': ") && text.contains(message) && !text.contains("s3cr3t")
    }

    @Test func defaultsFromTheSupervisorsMinimalFile() throws {
        let options = try parse(#"{"b2_prefix": "homeassistant", "log_level": "info"}"#)
        #expect(options == AddonOptions())
        #expect(options.missingForBackups == ["b2_key_id", "b2_key", "b2_bucket"])
    }

    @Test func fullOptions() throws {
        let options = try parse(#"{"b2_key_id": "0012ab34cd56ef70000000001", "b2_key": "K001secret", "b2_bucket": "my-ha-backups", "b2_prefix": "/homes/main/", "api_token": "0123456789abcdef0123", "log_level": "debug"}"#)
        #expect(options.b2Bucket == "my-ha-backups")
        #expect(options.b2Prefix == "homes/main")
        #expect(options.logLevel == .debug)
        #expect(options.missingForBackups.isEmpty)
    }

    @Test func emptyStringsCountAsUnset() throws {
        let options = try parse(#"{"b2_key_id": "", "b2_key": "  ", "api_token": "", "b2_prefix": ""}"#)
        #expect(options.b2KeyID == nil && options.b2Key == nil && options.apiToken == nil)
        #expect(options.b2Prefix == "homeassistant")
    }

    /// Each bad option is named, and secret values never appear in the message.
    @Test(arguments: [
        (#"{"log_level": "verbose"}"#, "log_level"),
        (#"{"log_level": 3}"#, "log_level"),
        (#"{"b2_bucket": "ab"}"#, "b2_bucket"),
        (#"{"b2_bucket": "b2-reserved-name"}"#, "b2_bucket"),
        (#"{"b2_bucket": "under_score"}"#, "b2_bucket"),
        (#"{"b2_key_id": "key id!"}"#, "b2_key_id"),
        (#"{"b2_key": "K001 secret-value"}"#, "b2_key"),
        (#"{"api_token": "short-secret"}"#, "api_token"),
        (#"{"b2_prefix": "a//b"}"#, "b2_prefix"),
        (#"{"b2_prefix": "a/../b"}"#, "b2_prefix"),
        (#"{"b2_prefix": "tab\there"}"#, "b2_prefix"),
        (#"{"b2_prefix": ["list"]}"#, "b2_prefix"),
    ])
    func invalidOptionsAreNamed(json: String, option: String) {
        #expect { try parse(json) } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            let text = "\(error)"
            return error.option == option && text.hasPrefix("option '\(option)'") && !text.contains("secret")
        }
    }

    @Test(arguments: ["not json", "[1, 2]", ""])
    func malformedFilesAreRefused(text: String) {
        #expect(throws: ConfigurationError.self) { try parse(text) }
    }

    @Test func missingFileNamesThePath() {
        #expect { try AddonOptions.load(from: URL(fileURLWithPath: "/nonexistent/options.json")) } throws: { error in
            "\(error)".contains("/nonexistent/options.json")
        }
    }

    @Test func environmentDefaultsAndOverrides() throws {
        let defaults = try RuntimeEnvironment.from([:])
        #expect(defaults.supervisorURL == "http://supervisor")
        #expect(defaults.b2APIURL == "https://api.backblazeb2.com")
        #expect(defaults.supervisorToken == nil)
        let custom = try RuntimeEnvironment.from(["SUPERVISOR_URL": "http://127.0.0.1:9000/", "B2_API_URL": "http://127.0.0.1:9001", "SUPERVISOR_TOKEN": "tok"])
        #expect(custom.supervisorURL == "http://127.0.0.1:9000")
        #expect(custom.b2APIURL == "http://127.0.0.1:9001")
        #expect(custom.supervisorToken == "tok")
        #expect(throws: ConfigurationError.self) { try RuntimeEnvironment.from(["B2_API_URL": "ftp://x"]) }
    }

    @Test func versionMatchesConfigYAML() throws {
        let config = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config.yaml")
        let text = try String(contentsOf: config, encoding: .utf8)
        #expect(text.contains("version: \"\(AddonVersion.current)\""))
        let changelog = try String(contentsOf: config.deletingLastPathComponent().appendingPathComponent("CHANGELOG.md"), encoding: .utf8)
        #expect(changelog.contains("## \(AddonVersion.current)"))
    }

    // MARK: Backup pipeline options

    /// Valid option files and what they parse to; everything not named keeps its default.
    @Test(arguments: [
        (#"{"schedule_enabled": false, "schedule_times": [], "schedule_days": []}"#,
         AddonOptions(scheduleEnabled: false, scheduleTimes: [], scheduleDays: [])),
        (#"{"schedule_times": ["23:59", " 00:00 ", "23:59", ""]}"#, AddonOptions(scheduleTimes: ["00:00", "23:59"])),
        (#"{"schedule_days": ["sun", "mon", "sun"]}"#, AddonOptions(scheduleDays: ["mon", "sun"])),
        (#"{"schedule_random_delay_minutes": 240, "catch_up_missed": false}"#,
         AddonOptions(scheduleRandomDelayMinutes: 240, catchUpMissed: false)),
        (#"{"backup_type": "partial", "exclude_addons": ["core_mosquitto", "a0d7b954_vscode", "core_mosquitto", ""], "exclude_folders": ["media", "addons/local", "media", "ssl", "share"], "exclude_database": true}"#,
         AddonOptions(backupType: "partial", excludeAddons: ["core_mosquitto", "a0d7b954_vscode"],
                      excludeFolders: ["media", "addons/local", "ssl", "share"], excludeDatabase: true)),
        (#"{"backup_password": " pass word "}"#, AddonOptions(backupPassword: " pass word ")), // secrets are kept exactly
        (#"{"backup_password": "  "}"#, AddonOptions()),
        (#"{"backup_name": "  {version} {date} {time} {type}  ", "keep_local": false}"#,
         AddonOptions(backupName: "{version} {date} {time} {type}", keepLocal: false)),
        (#"{"backup_name": "Nightly"}"#, AddonOptions(backupName: "Nightly")),
        (#"{"upload_concurrency": 16.0, "upload_limit_kbps": 100000}"#, AddonOptions(uploadConcurrency: 16, uploadLimitKbps: 100000)),
        (#"{"upload_concurrency": 1, "stale_after_hours": 8760}"#, AddonOptions(uploadConcurrency: 1, staleAfterHours: 8760)),
        (#"{"stale_after_hours": 1}"#, AddonOptions(staleAfterHours: 1)),
        (#"{"notify_service": " notify.mobile_app_phone ", "notify_on_success": true}"#,
         AddonOptions(notifyService: "notify.mobile_app_phone", notifyOnSuccess: true)),
        (#"{"notify_service": ""}"#, AddonOptions()),
        (#"{"schedule_times": null, "upload_concurrency": null, "keep_local": null}"#, AddonOptions()),
        (#"{"keep_last": 1000, "keep_daily": 0, "keep_weekly": 52, "keep_monthly": 12.0, "keep_yearly": 10}"#,
         AddonOptions(keepLast: 1000, keepDaily: 0, keepWeekly: 52, keepMonthly: 12, keepYearly: 10)),
        (#"{"keep_last": 0, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0, "keep_yearly": 0}"#,
         AddonOptions(keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0)),
        (#"{"local_keep_last": 0, "local_keep_daily": 100, "local_keep_weekly": 4, "local_keep_monthly": 1}"#,
         AddonOptions(localKeepLast: 0, localKeepDaily: 100, localKeepWeekly: 4, localKeepMonthly: 1)),
        (#"{"local_keep_last": 100}"#, AddonOptions(localKeepLast: 100)),
        (#"{"manage_other_backups": true, "b2_deletion": " hide ", "immutable_days": 3650}"#,
         AddonOptions(manageOtherBackups: true, b2Deletion: "hide", immutableDays: 3650)),
        (#"{"b2_deletion": "delete", "immutable_days": 0}"#, AddonOptions(b2Deletion: "delete", immutableDays: 0)),
        (#"{"verify_days": 0, "verify_mode": "quick"}"#, AddonOptions(verifyDays: 0, verifyMode: "quick")),
        (#"{"verify_days": 365, "verify_mode": "full"}"#, AddonOptions(verifyDays: 365)),
        (#"{"b2_deletion": "", "keep_daily": null, "local_keep_last": null, "manage_other_backups": null}"#, AddonOptions()),
        (#"{"critical_addons": ["a0d7b954_nodered", " -core_matter_server ", "", "a0d7b954_nodered", "-core_mosquitto"]}"#,
         AddonOptions(criticalAddons: ["a0d7b954_nodered", "-core_matter_server", "-core_mosquitto"])),
        ("{\"critical_addons\": [\"-\(String(repeating: "a", count: 100))\", \"local_my.addon-2\"]}",
         AddonOptions(criticalAddons: ["-" + String(repeating: "a", count: 100), "local_my.addon-2"])),
        (#"{"critical_addons": [], "postpone_while": []}"#, AddonOptions()),
        (#"{"postpone_while": [{"entity": " binary_sensor.hallway_motion ", "state": "on"}, {"entity": "sensor.processor_temperature", "above": 80}]}"#,
         AddonOptions(postponeWhile: [PostponeCondition(entity: "binary_sensor.hallway_motion", state: "on"),
                                      PostponeCondition(entity: "sensor.processor_temperature", above: 80)])),
        (#"{"postpone_while": [{"entity": "sensor.power", "above": -5.5, "below": 1500.0}, {"entity": "sensor.power", "below": 10}]}"#,
         AddonOptions(postponeWhile: [PostponeCondition(entity: "sensor.power", above: -5.5, below: 1500),
                                      PostponeCondition(entity: "sensor.power", below: 10)])),
        // The Supervisor UI leaves null and empty fields; unknown keys are dropped; the same condition twice counts once.
        (#"{"postpone_while": [{"entity": "media_player.tv", "state": "playing", "above": null, "below": null, "note": "x"}, {"entity": "media_player.tv", "state": "playing"}]}"#,
         AddonOptions(postponeWhile: [PostponeCondition(entity: "media_player.tv", state: "playing")])),
        (#"{"postpone_while": [{"entity": "sensor.cpu_load", "state": "", "below": 0}]}"#,
         AddonOptions(postponeWhile: [PostponeCondition(entity: "sensor.cpu_load", below: 0)])),
        (#"{"postpone_recheck_minutes": 1, "postpone_max_minutes": 0}"#, AddonOptions(postponeRecheckMinutes: 1, postponeMaxMinutes: 0)),
        (#"{"postpone_recheck_minutes": 60, "postpone_max_minutes": 1440.0}"#, AddonOptions(postponeRecheckMinutes: 60, postponeMaxMinutes: 1440)),
        (#"{"critical_addons": null, "postpone_while": null, "postpone_recheck_minutes": null, "postpone_max_minutes": null}"#, AddonOptions()),
    ])
    func pipelineOptionsAreParsed(json: String, expected: AddonOptions) throws {
        #expect(try parse(json) == expected)
    }

    /// Each bad value is refused with the option's name and a message that says what is allowed;
    /// the backup password never appears in it.
    @Test(arguments: [
        (#"{"schedule_enabled": "yes"}"#, "schedule_enabled", "must be a boolean"),
        (#"{"schedule_enabled": 1}"#, "schedule_enabled", "must be a boolean"),
        (#"{"schedule_times": "03:30"}"#, "schedule_times", "must be a list of strings"),
        (#"{"schedule_times": [330]}"#, "schedule_times", "must be a list of strings"),
        (#"{"schedule_times": ["24:00"]}"#, "schedule_times", "HH:MM"),
        (#"{"schedule_times": ["3:30"]}"#, "schedule_times", "HH:MM"),
        (#"{"schedule_times": ["03:60"]}"#, "schedule_times", "HH:MM"),
        (#"{"schedule_times": ["03:30:00"]}"#, "schedule_times", "HH:MM"),
        (#"{"schedule_times": ["٠٣:٣٠"]}"#, "schedule_times", "HH:MM"),
        (#"{"schedule_times": []}"#, "schedule_times", "at least one"),
        (#"{"schedule_days": ["monday"]}"#, "schedule_days", "is not one of mon, tue"),
        (#"{"schedule_days": ["Mon"]}"#, "schedule_days", "is not one of"),
        (#"{"schedule_days": [""]}"#, "schedule_days", "at least one"),
        (#"{"schedule_random_delay_minutes": 241}"#, "schedule_random_delay_minutes", "between 0 and 240"),
        (#"{"schedule_random_delay_minutes": -1}"#, "schedule_random_delay_minutes", "between 0 and 240"),
        (#"{"schedule_random_delay_minutes": 1.5}"#, "schedule_random_delay_minutes", "must be an integer"),
        (#"{"schedule_random_delay_minutes": "5"}"#, "schedule_random_delay_minutes", "must be an integer"),
        (#"{"schedule_random_delay_minutes": true}"#, "schedule_random_delay_minutes", "must be an integer"),
        (#"{"catch_up_missed": "false"}"#, "catch_up_missed", "must be a boolean"),
        (#"{"backup_type": "differential"}"#, "backup_type", "is not one of full, partial"),
        (#"{"backup_type": ["full"]}"#, "backup_type", "must be a string"),
        (#"{"exclude_addons": "core_mosquitto"}"#, "exclude_addons", "must be a list of strings"),
        (#"{"exclude_addons": ["Mosquitto broker"]}"#, "exclude_addons", "is not an add-on slug"),
        (#"{"exclude_folders": ["homeassistant"]}"#, "exclude_folders", "is not one of ssl, share, media, addons/local"),
        (#"{"exclude_database": 0}"#, "exclude_database", "must be a boolean"),
        (#"{"backup_password": 12345678}"#, "backup_password", "must be a string"),
        (#"{"backup_password": "s3cr3t\nline"}"#, "backup_password", "control character"),
        (#"{"backup_name": "  "}"#, "backup_name", "must not be empty"),
        (#"{"backup_name": "B2 {date} {host}"}"#, "backup_name", "unknown placeholder '{host}'"),
        (#"{"backup_name": "B2 {Date}"}"#, "backup_name", "unknown placeholder '{Date}'"),
        (#"{"backup_name": "B2 {}"}"#, "backup_name", "unknown placeholder '{}'"),
        (#"{"backup_name": "B2 {date"}"#, "backup_name", "'{' without"),
        (#"{"backup_name": "B2 date}"}"#, "backup_name", "'}' without"),
        (#"{"backup_name": "B2\t{date}"}"#, "backup_name", "control characters"),
        ("{\"backup_name\": \"\(String(repeating: "x", count: 101))\"}", "backup_name", "longer than 100"),
        (#"{"keep_local": "no"}"#, "keep_local", "must be a boolean"),
        (#"{"upload_concurrency": 0}"#, "upload_concurrency", "between 1 and 16"),
        (#"{"upload_concurrency": 17}"#, "upload_concurrency", "between 1 and 16"),
        (#"{"upload_limit_kbps": -1}"#, "upload_limit_kbps", "0 or more"),
        (#"{"upload_limit_kbps": 1e30}"#, "upload_limit_kbps", "is too large; it must be 0 or more"),
        (#"{"upload_limit_kbps": 99999999999999999999}"#, "upload_limit_kbps", "is too large"),
        (#"{"upload_limit_kbps": 0.5}"#, "upload_limit_kbps", "must be an integer"),
        (#"{"notify_service": "mobile_app_phone"}"#, "notify_service", "notify.<name>"),
        (#"{"notify_service": "notify."}"#, "notify_service", "notify.<name>"),
        (#"{"notify_service": "light.kitchen"}"#, "notify_service", "notify.<name>"),
        (#"{"notify_service": "notify.Mobile_App"}"#, "notify_service", "notify.<name>"),
        (#"{"notify_service": "notify.a.b"}"#, "notify_service", "notify.<name>"),
        (#"{"notify_on_success": "true"}"#, "notify_on_success", "must be a boolean"),
        (#"{"stale_after_hours": 0}"#, "stale_after_hours", "between 1 and 8760"),
        (#"{"stale_after_hours": 8761}"#, "stale_after_hours", "between 1 and 8760"),
        (#"{"keep_last": -1}"#, "keep_last", "between 0 and 1000"),
        (#"{"keep_last": 1001}"#, "keep_last", "between 0 and 1000"),
        (#"{"keep_daily": 1001}"#, "keep_daily", "between 0 and 1000"),
        (#"{"keep_daily": -7}"#, "keep_daily", "between 0 and 1000"),
        (#"{"keep_daily": 7.5}"#, "keep_daily", "must be an integer"),
        (#"{"keep_daily": "7"}"#, "keep_daily", "must be an integer"),
        (#"{"keep_weekly": 1001}"#, "keep_weekly", "between 0 and 1000"),
        (#"{"keep_weekly": true}"#, "keep_weekly", "must be an integer"),
        (#"{"keep_monthly": 1001}"#, "keep_monthly", "between 0 and 1000"),
        (#"{"keep_monthly": 1e30}"#, "keep_monthly", "is too large; it must be between 0 and 1000"),
        (#"{"keep_yearly": 1001}"#, "keep_yearly", "between 0 and 1000"),
        (#"{"keep_yearly": [1]}"#, "keep_yearly", "must be an integer"),
        (#"{"local_keep_last": 101}"#, "local_keep_last", "between 0 and 100"),
        (#"{"local_keep_last": -1}"#, "local_keep_last", "between 0 and 100"),
        (#"{"local_keep_last": "3"}"#, "local_keep_last", "must be an integer"),
        (#"{"local_keep_daily": 101}"#, "local_keep_daily", "between 0 and 100"),
        (#"{"local_keep_weekly": 101}"#, "local_keep_weekly", "between 0 and 100"),
        (#"{"local_keep_monthly": 101}"#, "local_keep_monthly", "between 0 and 100"),
        (#"{"local_keep_monthly": 0.5}"#, "local_keep_monthly", "must be an integer"),
        (#"{"manage_other_backups": "true"}"#, "manage_other_backups", "must be a boolean"),
        (#"{"manage_other_backups": 1}"#, "manage_other_backups", "must be a boolean"),
        (#"{"b2_deletion": "remove"}"#, "b2_deletion", "is not one of delete, hide"),
        (#"{"b2_deletion": "Hide"}"#, "b2_deletion", "is not one of delete, hide"),
        (#"{"b2_deletion": true}"#, "b2_deletion", "must be a string"),
        (#"{"immutable_days": 3651}"#, "immutable_days", "between 0 and 3650"),
        (#"{"immutable_days": -1}"#, "immutable_days", "between 0 and 3650"),
        (#"{"immutable_days": "30"}"#, "immutable_days", "must be an integer"),
        (#"{"verify_days": 366}"#, "verify_days", "between 0 and 365"),
        (#"{"verify_days": 1.5}"#, "verify_days", "must be an integer"),
        (#"{"verify_mode": "deep"}"#, "verify_mode", "is not one of full, quick"),
        (#"{"critical_addons": "45df7312_zigbee2mqtt"}"#, "critical_addons", "must be a list of strings"),
        (#"{"critical_addons": [12]}"#, "critical_addons", "must be a list of strings"),
        (#"{"critical_addons": ["bad slug!"]}"#, "critical_addons", "'bad slug!' is not an add-on slug"),
        (#"{"critical_addons": ["-"]}"#, "critical_addons", "'-' is not an add-on slug"),
        (#"{"critical_addons": ["+core_mosquitto"]}"#, "critical_addons", "is not an add-on slug"),
        (#"{"critical_addons": ["Zigbee2MQTT add-on"]}"#, "critical_addons", "is not an add-on slug"),
        (#"{"critical_addons": ["core_mosquitto/"]}"#, "critical_addons", "is not an add-on slug"),
        (#"{"critical_addons": ["zigbee²mqtt"]}"#, "critical_addons", "is not an add-on slug"),
        ("{\"critical_addons\": [\"\(String(repeating: "a", count: 101))\"]}", "critical_addons", "is not an add-on slug"),
        (#"{"critical_addons": ["core_mosquitto", "-core_mosquitto"]}"#, "critical_addons", "both 'core_mosquitto' and '-core_mosquitto'"),
        (#"{"postpone_while": {"entity": "binary_sensor.hallway_motion", "state": "on"}}"#, "postpone_while", "must be a list of conditions"),
        (#"{"postpone_while": ["binary_sensor.hallway_motion"]}"#, "postpone_while", "entry 1 must be a condition"),
        (#"{"postpone_while": [{"state": "on"}]}"#, "postpone_while", "entry 1 has no entity"),
        (#"{"postpone_while": [{"entity": " ", "state": "on"}]}"#, "postpone_while", "entry 1 has no entity"),
        (#"{"postpone_while": [{"entity": "binary_sensor.hallway_motion"}]}"#, "postpone_while", "entry 1 (binary_sensor.hallway_motion): give a state"),
        (#"{"postpone_while": [{"entity": "binary_sensor.a", "state": "on"}, {"entity": "sensor.b", "state": "", "above": null}]}"#,
         "postpone_while", "entry 2 (sensor.b): give a state"),
        (#"{"postpone_while": [{"entity": "sensor.cpu", "state": "on", "above": 80}]}"#, "postpone_while", "either state or above/below, not both"),
        (#"{"postpone_while": [{"entity": "sensor.cpu", "state": "on", "below": 80}]}"#, "postpone_while", "either state or above/below, not both"),
        (#"{"postpone_while": [{"entity": "sensor.cpu", "above": 90, "below": 80}]}"#, "postpone_while", "above (90) must be less than below (80)"),
        (#"{"postpone_while": [{"entity": "sensor.cpu", "above": 80, "below": 80}]}"#, "postpone_while", "above (80) must be less than below (80)"),
        (#"{"postpone_while": [{"entity": "sensor.cpu", "above": 80.5, "below": 80.25}]}"#, "postpone_while", "above (80.5) must be less than below (80.25)"),
        (#"{"postpone_while": [{"entity": "hallway_motion", "state": "on"}]}"#, "postpone_while", "'hallway_motion' is not an entity ID"),
        (#"{"postpone_while": [{"entity": "Binary_Sensor.Hallway", "state": "on"}]}"#, "postpone_while", "is not an entity ID"),
        (#"{"postpone_while": [{"entity": "binary_sensor.hallway.motion", "state": "on"}]}"#, "postpone_while", "is not an entity ID"),
        (#"{"postpone_while": [{"entity": "binary_sensor.", "state": "on"}]}"#, "postpone_while", "is not an entity ID"),
        (#"{"postpone_while": [{"entity": "binary sensor.hallway", "state": "on"}]}"#, "postpone_while", "is not an entity ID"),
        (#"{"postpone_while": [{"entity": 12, "state": "on"}]}"#, "postpone_while", "entry 1: entity must be a string"),
        (#"{"postpone_while": [{"entity": "binary_sensor.hallway_motion", "state": true}]}"#, "postpone_while", #"state must be a string (quote values such as "on""#),
        (#"{"postpone_while": [{"entity": "sensor.cpu", "above": "80"}]}"#, "postpone_while", "entry 1: above must be a number"),
        (#"{"postpone_while": [{"entity": "sensor.cpu", "below": false}]}"#, "postpone_while", "entry 1: below must be a number"),
        (#"{"postpone_recheck_minutes": 0}"#, "postpone_recheck_minutes", "between 1 and 60"),
        (#"{"postpone_recheck_minutes": 61}"#, "postpone_recheck_minutes", "between 1 and 60"),
        (#"{"postpone_recheck_minutes": 2.5}"#, "postpone_recheck_minutes", "must be an integer"),
        (#"{"postpone_recheck_minutes": "5"}"#, "postpone_recheck_minutes", "must be an integer"),
        (#"{"postpone_max_minutes": -1}"#, "postpone_max_minutes", "between 0 and 1440"),
        (#"{"postpone_max_minutes": 1441}"#, "postpone_max_minutes", "between 0 and 1440"),
        (#"{"postpone_max_minutes": true}"#, "postpone_max_minutes", "must be an integer"),
    ])
    func invalidPipelineOptionsAreNamed(json: String, option: String, message: String) {
        #expect { try parse(json) } throws: { isRefusal($0, option: option, message: message) }
    }

    @Test func postponeConditionsDescribeThemselves() {
        #expect("\(PostponeCondition(entity: "binary_sensor.hallway_motion", state: "on"))" == "binary_sensor.hallway_motion is on")
        #expect("\(PostponeCondition(entity: "sensor.processor_temperature", above: 80))" == "sensor.processor_temperature above 80")
        #expect("\(PostponeCondition(entity: "sensor.power", above: -0.5, below: 1500))" == "sensor.power above -0.5 and below 1500")
        let options = AddonOptions(postponeWhile: [PostponeCondition(entity: "sensor.cpu", below: 20)], criticalAddons: ["-core_matter_server"])
        #expect("\(options)".contains(#"postponeWhile: ["sensor.cpu below 20"]"#))
        #expect("\(options)".contains(#"criticalAddons: ["-core_matter_server"]"#))
    }

    @Test func uploadLimitInBytesPerSecond() {
        #expect(AddonOptions().uploadLimitBytesPerSecond == nil)
        #expect(AddonOptions(uploadLimitKbps: 8000).uploadLimitBytesPerSecond == 1_000_000)
        #expect(AddonOptions(uploadLimitKbps: .max).uploadLimitBytesPerSecond! > 0) // no overflow
    }

    @Test func retentionIsOffOnlyWhenEveryB2RuleIsZero() {
        #expect(!AddonOptions().retentionOff)
        let off = AddonOptions(keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0)
        #expect(off.retentionOff)
        #expect(!AddonOptions(keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0).retentionOff)
        #expect(!AddonOptions(keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 1).retentionOff)
        // The local rules do not count.
        #expect(AddonOptions(keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, localKeepLast: 5).retentionOff)
    }

    @Test func secretsNeverShowInDescriptions() throws {
        let options = try parse(#"{"b2_key_id": "0012ab34cd56ef70000000001", "b2_key": "K001-key-s3cr3t", "api_token": "token-s3cr3t-0123456789", "backup_password": "password-s3cr3t", "b2_bucket": "my-ha-backups"}"#)
        var dumped = ""
        dump(options, to: &dumped)
        for text in ["\(options)", String(reflecting: options), dumped, "\(Mirror(reflecting: options).children.map(\.value))"] {
            #expect(!text.contains("s3cr3t"))
            #expect(text.contains("<redacted>"))
            #expect(text.contains("my-ha-backups"))
        }
        #expect(!"\(AddonOptions())".contains("<redacted>")) // unset secrets show as nil
    }

    // MARK: The second destination (S3)

    @Test func s3DefaultsApplyWhenTheKeysAreAbsent() throws {
        let options = try parse(#"{"b2_prefix": "homeassistant"}"#) // an options file from before the S3 options
        #expect(!options.s3Enabled)
        #expect(options.s3Endpoint == nil && options.s3Bucket == nil && options.s3AccessKeyID == nil && options.s3SecretAccessKey == nil)
        #expect(options.s3Region == "us-east-1" && options.s3Prefix == "homeassistant")
        #expect(!options.s3PathStyle && options.s3PartSizeMB == 16)
        #expect(options.requireAllDestinations && options.restoreSource == "auto")
        #expect(options.s3KeepLast == options.keepLast && options.s3KeepDaily == options.keepDaily && options.s3KeepWeekly == options.keepWeekly)
        #expect(options.s3KeepMonthly == options.keepMonthly && options.s3KeepYearly == options.keepYearly)
        #expect(options.s3EndpointURL == "https://s3.us-east-1.amazonaws.com")
        #expect(options.missingForS3.isEmpty)
        #expect(!options.s3RetentionOff)
    }

    @Test func fullS3Options() throws {
        let options = try parse(#"""
            {"s3_enabled": true, "s3_endpoint": " http://192.168.1.10:9000/ ", "s3_region": "eu-west-2", "s3_bucket": "home-backups",
             "s3_prefix": "/homes/main/", "s3_access_key_id": " minioadmin ", "s3_secret_access_key": "Secret/Key+s3cr3t",
             "s3_path_style": true, "s3_part_size_mb": 64, "require_all_destinations": false, "restore_source": "s3",
             "s3_keep_last": 2, "s3_keep_daily": 30, "s3_keep_weekly": 0, "s3_keep_monthly": 24.0, "s3_keep_yearly": 1000}
            """#)
        #expect(options == AddonOptions(s3Enabled: true, s3Endpoint: "http://192.168.1.10:9000", s3Region: "eu-west-2",
                                        s3Bucket: "home-backups", s3Prefix: "homes/main", s3AccessKeyID: "minioadmin",
                                        s3SecretAccessKey: "Secret/Key+s3cr3t", s3PathStyle: true, s3PartSizeMB: 64,
                                        requireAllDestinations: false, restoreSource: "s3",
                                        s3KeepLast: 2, s3KeepDaily: 30, s3KeepWeekly: 0, s3KeepMonthly: 24, s3KeepYearly: 1000))
        #expect(options.s3EndpointURL == "http://192.168.1.10:9000")
        #expect(options.missingForS3.isEmpty)
        #expect(options.missingForBackups == ["b2_key_id", "b2_key", "b2_bucket"]) // B2 stays the first destination
    }

    /// Valid S3 values and what they parse to; everything not named keeps its default.
    @Test(arguments: [
        (#"{"s3_endpoint": "", "s3_region": "", "s3_prefix": "", "s3_bucket": " ", "restore_source": ""}"#, AddonOptions()),
        (#"{"s3_enabled": null, "s3_path_style": null, "s3_part_size_mb": null, "s3_keep_daily": null, "require_all_destinations": null}"#, AddonOptions()),
        (#"{"s3_enabled": true, "s3_region": "auto", "s3_endpoint": "https://0123abcd.r2.cloudflarestorage.com"}"#,
         AddonOptions(s3Enabled: true, s3Endpoint: "https://0123abcd.r2.cloudflarestorage.com", s3Region: "auto")),
        (#"{"s3_enabled": true, "s3_endpoint": "HTTPS://s3.eu-central-003.backblazeb2.com", "s3_region": "eu-central-003"}"#,
         AddonOptions(s3Enabled: true, s3Endpoint: "HTTPS://s3.eu-central-003.backblazeb2.com", s3Region: "eu-central-003")),
        (#"{"s3_enabled": true, "s3_endpoint": "http://localhost:9000/minio", "s3_path_style": true}"#,
         AddonOptions(s3Enabled: true, s3Endpoint: "http://localhost:9000/minio", s3PathStyle: true)),
        (#"{"s3_enabled": true, "s3_endpoint": "http://[::1]:9000"}"#, AddonOptions(s3Enabled: true, s3Endpoint: "http://[::1]:9000")),
        (#"{"s3_enabled": true, "s3_prefix": "/"}"#, AddonOptions(s3Enabled: true, s3Prefix: "")),
        (#"{"s3_enabled": true, "s3_bucket": "Legacy_Bucket.2010"}"#, AddonOptions(s3Enabled: true, s3Bucket: "Legacy_Bucket.2010")),
        (#"{"s3_part_size_mb": 5}"#, AddonOptions(s3PartSizeMB: 5)),
        (#"{"s3_part_size_mb": 5000.0}"#, AddonOptions(s3PartSizeMB: 5000)),
        (#"{"restore_source": " b2 "}"#, AddonOptions(restoreSource: "b2")),
        (#"{"restore_source": "auto", "require_all_destinations": true}"#, AddonOptions()),
        (#"{"s3_keep_last": 0, "s3_keep_daily": 0, "s3_keep_weekly": 0, "s3_keep_monthly": 0, "s3_keep_yearly": 0}"#,
         AddonOptions(s3KeepLast: 0, s3KeepDaily: 0, s3KeepWeekly: 0, s3KeepMonthly: 0, s3KeepYearly: 0)),
        // Switched off, the S3 values are kept but not checked: a half-filled section never stops the add-on.
        (#"{"s3_enabled": false, "s3_endpoint": "ftp://nas", "s3_bucket": "a", "s3_prefix": "a//b", "s3_region": "eu west"}"#,
         AddonOptions(s3Endpoint: "ftp://nas", s3Region: "eu west", s3Bucket: "a", s3Prefix: "a//b")),
    ])
    func s3OptionsAreParsed(json: String, expected: AddonOptions) throws {
        #expect(try parse(json) == expected)
    }

    /// Each bad S3 value is refused with the option's name and a message that says what is allowed;
    /// the secret access key never appears in it.
    @Test(arguments: [
        (#"{"s3_enabled": "true"}"#, "s3_enabled", "must be a boolean"),
        (#"{"s3_enabled": 1}"#, "s3_enabled", "must be a boolean"),
        (#"{"s3_path_style": "yes"}"#, "s3_path_style", "must be a boolean"),
        (#"{"require_all_destinations": 0}"#, "require_all_destinations", "must be a boolean"),
        (#"{"s3_endpoint": 9000}"#, "s3_endpoint", "must be a string"),
        (#"{"s3_enabled": true, "s3_endpoint": "s3.amazonaws.com"}"#, "s3_endpoint", "is not an http(s) URL"),
        (#"{"s3_enabled": true, "s3_endpoint": "ftp://nas.local"}"#, "s3_endpoint", "'ftp://nas.local' is not an http(s) URL"),
        (#"{"s3_enabled": true, "s3_endpoint": "https://"}"#, "s3_endpoint", "has no host name"),
        (#"{"s3_enabled": true, "s3_endpoint": "http:///bucket"}"#, "s3_endpoint", "has no host name"),
        (#"{"s3_enabled": true, "s3_endpoint": "https://s3.example.com?x=1"}"#, "s3_endpoint", "must not have a query"),
        (#"{"s3_enabled": true, "s3_endpoint": "https://s3.example.com/#top"}"#, "s3_endpoint", "or fragment"),
        (#"{"s3_enabled": true, "s3_endpoint": "https://s3 .example.com"}"#, "s3_endpoint", "is not a URL"),
        (#"{"s3_enabled": true, "s3_endpoint": "https://key:s3cr3t@minio.local:9000"}"#, "s3_endpoint", "must not contain a user name or password"),
        (#"{"s3_region": ["us-east-1"]}"#, "s3_region", "must be a string"),
        (#"{"s3_enabled": true, "s3_region": "eu central"}"#, "s3_region", "'eu central' is not a region"),
        (#"{"s3_enabled": true, "s3_region": "eu-central-1/x"}"#, "s3_region", "is not a region"),
        (#"{"s3_bucket": true}"#, "s3_bucket", "must be a string"),
        (#"{"s3_enabled": true, "s3_bucket": "ab"}"#, "s3_bucket", "'ab' is not a valid bucket name"),
        (#"{"s3_enabled": true, "s3_bucket": "my bucket"}"#, "s3_bucket", "is not a valid bucket name"),
        (#"{"s3_enabled": true, "s3_bucket": "my/bucket"}"#, "s3_bucket", "is not a valid bucket name"),
        (#"{"s3_prefix": 1}"#, "s3_prefix", "must be a string"),
        (#"{"s3_enabled": true, "s3_prefix": "a//b"}"#, "s3_prefix", "must be a folder path"),
        (#"{"s3_enabled": true, "s3_prefix": "a/../b"}"#, "s3_prefix", "must be a folder path"),
        (#"{"s3_enabled": true, "s3_prefix": "back\\slash"}"#, "s3_prefix", "must be a folder path"),
        (#"{"s3_enabled": true, "s3_prefix": "tab\there"}"#, "s3_prefix", "must be a folder path"),
        ("{\"s3_enabled\": true, \"s3_prefix\": \"\(String(repeating: "a", count: 201))\"}", "s3_prefix", "at most 200 bytes"),
        (#"{"s3_access_key_id": 12}"#, "s3_access_key_id", "must be a string"),
        (#"{"s3_enabled": true, "s3_access_key_id": "AKIA EXAMPLE"}"#, "s3_access_key_id", "must not contain spaces"),
        (#"{"s3_enabled": true, "s3_access_key_id": "AKIA/EXAMPLE"}"#, "s3_access_key_id", "'/'"),
        (#"{"s3_secret_access_key": 12345678}"#, "s3_secret_access_key", "must be a string"),
        (#"{"s3_enabled": true, "s3_secret_access_key": "abc s3cr3t"}"#, "s3_secret_access_key", "contains whitespace"),
        (#"{"s3_enabled": true, "s3_secret_access_key": "abc\ns3cr3t"}"#, "s3_secret_access_key", "contains whitespace"),
        (#"{"s3_part_size_mb": 4}"#, "s3_part_size_mb", "between 5 and 5000"),
        (#"{"s3_part_size_mb": 0}"#, "s3_part_size_mb", "between 5 and 5000"),
        (#"{"s3_part_size_mb": 5001}"#, "s3_part_size_mb", "between 5 and 5000"),
        (#"{"s3_part_size_mb": 16.5}"#, "s3_part_size_mb", "must be an integer"),
        (#"{"s3_part_size_mb": "16"}"#, "s3_part_size_mb", "must be an integer"),
        (#"{"restore_source": "minio"}"#, "restore_source", "'minio' is not one of auto, b2, s3"),
        (#"{"restore_source": "B2"}"#, "restore_source", "is not one of auto, b2, s3"),
        (#"{"restore_source": ["b2"]}"#, "restore_source", "must be a string"),
        (#"{"s3_keep_last": -1}"#, "s3_keep_last", "between 0 and 1000"),
        (#"{"s3_keep_daily": 1001}"#, "s3_keep_daily", "between 0 and 1000"),
        (#"{"s3_keep_weekly": 1.5}"#, "s3_keep_weekly", "must be an integer"),
        (#"{"s3_keep_monthly": "6"}"#, "s3_keep_monthly", "must be an integer"),
        (#"{"s3_keep_yearly": 1e30}"#, "s3_keep_yearly", "is too large; it must be between 0 and 1000"),
    ])
    func invalidS3OptionsAreNamed(json: String, option: String, message: String) {
        #expect { try parse(json) } throws: { isRefusal($0, option: option, message: message) }
    }

    @Test func s3EndpointDefaultsToAWSForTheRegion() {
        #expect(AddonOptions(s3Region: "eu-central-1").s3EndpointURL == "https://s3.eu-central-1.amazonaws.com")
        #expect(AddonOptions(s3Endpoint: "https://s3.wasabisys.com", s3Region: "eu-central-1").s3EndpointURL == "https://s3.wasabisys.com")
    }

    /// The keys that must be set while S3 is on, in option order; none while it is off.
    @Test(arguments: [
        (AddonOptions(), [String]()),
        (AddonOptions(s3Bucket: "home-backups"), []),
        (AddonOptions(s3Enabled: true), ["s3_bucket", "s3_access_key_id", "s3_secret_access_key"]),
        (AddonOptions(s3Enabled: true, s3Bucket: "home-backups"), ["s3_access_key_id", "s3_secret_access_key"]),
        (AddonOptions(s3Enabled: true, s3AccessKeyID: "AKIAEXAMPLE"), ["s3_bucket", "s3_secret_access_key"]),
        (AddonOptions(s3Enabled: true, s3Bucket: "home-backups", s3AccessKeyID: "AKIAEXAMPLE"), ["s3_secret_access_key"]),
        (AddonOptions(s3Enabled: true, s3Bucket: "home-backups", s3AccessKeyID: "AKIAEXAMPLE", s3SecretAccessKey: "x"), []),
    ])
    func missingForS3(options: AddonOptions, missing: [String]) {
        #expect(options.missingForS3 == missing)
    }

    /// Missing S3 values are listed, not refused: the add-on starts and its page says what is missing.
    @Test func missingS3ValuesAreNoParseError() throws {
        let options = try parse(#"{"s3_enabled": true, "s3_bucket": "", "s3_secret_access_key": "  "}"#)
        #expect(options.missingForS3 == ["s3_bucket", "s3_access_key_id", "s3_secret_access_key"])
    }

    @Test func s3RetentionIsOffOnlyWhenEveryS3RuleIsZero() {
        let off = AddonOptions(s3KeepLast: 0, s3KeepDaily: 0, s3KeepWeekly: 0, s3KeepMonthly: 0, s3KeepYearly: 0)
        #expect(off.s3RetentionOff && !off.retentionOff)
        #expect(!AddonOptions(s3KeepLast: 0, s3KeepDaily: 0, s3KeepWeekly: 0, s3KeepMonthly: 0, s3KeepYearly: 1).s3RetentionOff)
        #expect(!AddonOptions(keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0).s3RetentionOff)
    }

    /// The secret access key never shows, nor an endpoint with a user name and password in it
    /// (refused while S3 is on, kept unchecked while it is off).
    @Test(arguments: [true, false])
    func s3SecretsNeverShowInDescriptions(enabled: Bool) throws {
        let options = try parse(#"{"s3_enabled": \#(enabled), "s3_bucket": "home-backups", "s3_access_key_id": "AKIAEXAMPLE", "s3_secret_access_key": "wJalr-s3cr3t-EXAMPLEKEY"}"#)
        var withUserInfo = options
        withUserInfo.s3Enabled = false
        withUserInfo.s3Endpoint = "http://user:s3cr3t@minio.local:9000"
        for value in [options, withUserInfo] {
            var dumped = ""
            dump(value, to: &dumped)
            for text in ["\(value)", String(reflecting: value), dumped, "\(Mirror(reflecting: value).children.map(\.value))"] {
                #expect(!text.contains("s3cr3t"))
                #expect(text.contains("<redacted>"))
                #expect(text.contains("home-backups") && text.contains("AKIAEXAMPLE"))
            }
        }
        #expect("\(options)".contains("s3SecretAccessKey: <redacted>"))
        #expect("\(withUserInfo)".contains("s3Endpoint: <redacted>"))
        #expect("\(AddonOptions(s3Endpoint: "http://192.168.1.10:9000"))".contains(#"s3Endpoint: "http://192.168.1.10:9000""#))
        #expect("\(AddonOptions())".contains("s3SecretAccessKey: nil"))
    }

    // MARK: config.yaml and translations against the parser

    private static let addonDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardizedFileURL

    /// Every schema key is read by `AddonOptions.parse`: a value of the wrong type for every
    /// schema type (a JSON object) is refused with that key's name.
    @Test func everySchemaKeyIsParsed() throws {
        let schema = try ConfigYAML.block("schema", in: Self.addonDirectory)
        #expect(schema.count >= 57)
        for (key, _) in schema {
            #expect { try parse(#"{"\#(key)": {"wrong": "type"}}"#) } throws: { error in
                (error as? ConfigurationError)?.option == key
            }
        }
    }

    /// The defaults under `options:` parse to `AddonOptions()`; mandatory keys have one, optional keys none.
    @Test func configDefaultsMatchTheSwiftDefaults() throws {
        let schema = try ConfigYAML.block("schema", in: Self.addonDirectory)
        let options = try ConfigYAML.block("options", in: Self.addonDirectory)
        let schemaKeys = Set(schema.map(\.key))
        for (key, type) in schema {
            let optional = type.trimmingCharacters(in: CharacterSet(charactersIn: "[]\"")).hasSuffix("?") // str? or ["str?"]
            #expect(options.contains { $0.key == key } != optional, "\(key): \(optional ? "optional options must not have a default" : "needs a default under options")")
        }
        #expect(options.allSatisfy { schemaKeys.contains($0.key) })
        var json: [String: Any] = [:]
        for (key, value) in options { json[key] = ConfigYAML.value(value) }
        let data = try JSONSerialization.data(withJSONObject: json)
        #expect(try AddonOptions.parse(data) == AddonOptions())
        #expect(json["schedule_times"] as? [String] == ["03:30"]) // the reader saw the quoted list
        #expect(json["backup_name"] as? String == "B2 {date} {type}")
        #expect(json["keep_daily"] as? Int == 7 && json["local_keep_last"] as? Int == 3 && json["b2_deletion"] as? String == "delete")
        #expect(json["s3_enabled"] as? Bool == false && json["s3_part_size_mb"] as? Int == 16 && json["restore_source"] as? String == "auto")
    }

    /// `postpone_while` in config.yaml has the fields of `PostponeCondition`, `state`, `above` and `below` optional.
    @Test func postponeWhileSchemaMatchesPostponeCondition() throws {
        let schema = try ConfigYAML.block("schema", in: Self.addonDirectory)
        let type = try #require(schema.first { $0.key == "postpone_while" }?.value)
        #expect(type == #"[{entity: "str", state: "str?", above: "float?", below: "float?"}]"#)
        #expect(ConfigYAML.dictionaryKeys(type) == ["entity", "state", "above", "below"])
    }

    /// Each language names and describes every option.
    @Test(arguments: ["en", "de", "nl", "fr", "es"])
    func translationsCoverEveryOption(language: String) throws {
        let schema = try ConfigYAML.block("schema", in: Self.addonDirectory)
        let text = try String(contentsOf: Self.addonDirectory.appendingPathComponent("translations/\(language).yaml"), encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        for (key, type) in schema {
            guard let index = lines.firstIndex(of: "  \(key):") else {
                Issue.record("\(language): no entry for \(key)")
                continue
            }
            let entry = lines[(index + 1)...].prefix { $0.hasPrefix("    ") }
            #expect(entry.contains { $0.hasPrefix("    name: ") }, "\(language): \(key) has no name")
            #expect(entry.contains { $0.hasPrefix("    description: ") }, "\(language): \(key) has no description")
            // A list of dictionaries names and describes each field under `fields:`.
            for field in ConfigYAML.dictionaryKeys(type) {
                guard let at = entry.firstIndex(of: "      \(field):") else {
                    Issue.record("\(language): no entry for \(key).fields.\(field)")
                    continue
                }
                #expect(entry.contains("    fields:"), "\(language): \(key) has no fields")
                let fieldEntry = entry[(at + 1)...].prefix { $0.hasPrefix("        ") }
                #expect(fieldEntry.contains { $0.hasPrefix("        name: ") }, "\(language): \(key).\(field) has no name")
                #expect(fieldEntry.contains { $0.hasPrefix("        description: ") }, "\(language): \(key).\(field) has no description")
            }
        }
    }
}

/// Just enough YAML for config.yaml's flat `options:` and `schema:` blocks.
enum ConfigYAML {
    /// The `key: value` lines (value as written) of a top-level block, in file order.
    static func block(_ name: String, in directory: URL) throws -> [(key: String, value: String)] {
        let text = try String(contentsOf: directory.appendingPathComponent("config.yaml"), encoding: .utf8)
        var entries: [(key: String, value: String)] = []
        var inside = false
        for line in text.components(separatedBy: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if !line.hasPrefix(" ") {
                inside = line == "\(name):"
                continue
            }
            guard inside, let colon = trimmed.firstIndex(of: ":") else { continue }
            entries.append((String(trimmed[..<colon]), trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return entries
    }

    /// The keys of a flow list of one dictionary, `[{entity: "str", state: "str?"}]` → ["entity", "state"]; else [].
    static func dictionaryKeys(_ text: String) -> [String] {
        guard text.hasPrefix("[{"), text.hasSuffix("}]") else { return [] }
        return text.dropFirst(2).dropLast(2).split(separator: ",").compactMap { pair in
            pair.split(separator: ":", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    /// A flow value as JSON: true/false, integers, "quoted" or plain strings, and [flat, lists].
    static func value(_ text: String) -> Any {
        if text.hasPrefix("["), text.hasSuffix("]") {
            let inner = text.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
            return inner.isEmpty ? [Any]() : inner.split(separator: ",").map { value($0.trimmingCharacters(in: .whitespaces)) }
        }
        if text == "true" || text == "false" { return text == "true" }
        if let number = Int(text) { return number }
        if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") { return String(text.dropFirst().dropLast()) }
        return text
    }
}
