import B2Client
import BackupArchive
import Core
import Foundation
import HTTPClient
import Logging
import S3Client
import Storage
import SupervisorClient

extension AddonOptions {
    /// The engine's view of the backup options.
    func backupSettings(timeZone: TimeZone) -> BackupSettings {
        BackupSettings(type: BackupType(rawValue: backupType) ?? .full, excludeAddons: excludeAddons, excludeFolders: excludeFolders,
                       excludeDatabase: excludeDatabase, password: backupPassword, nameTemplate: backupName, keepLocal: keepLocal,
                       upload: UploadSettings(concurrency: uploadConcurrency, bytesPerSecond: uploadLimitBytesPerSecond.map(Int64.init)),
                       timeZone: timeZone)
    }

    func schedule(timeZone: TimeZone) -> Schedule {
        Schedule(times: scheduleTimes.compactMap(TimeOfDay.init(parsing:)), days: Set(scheduleDays.compactMap(Weekday.init(rawValue:))),
                 timeZone: timeZone, enabled: scheduleEnabled, randomDelay: TimeInterval(scheduleRandomDelayMinutes * 60))
    }

    func retentionSettings(timeZone: TimeZone) -> RetentionSettings {
        RetentionSettings(remote: RetentionPolicy(keepLast: keepLast, keepDaily: keepDaily, keepWeekly: keepWeekly, keepMonthly: keepMonthly, keepYearly: keepYearly),
                          local: RetentionPolicy(keepLast: localKeepLast, keepDaily: localKeepDaily, keepWeekly: localKeepWeekly, keepMonthly: localKeepMonthly),
                          manageOtherBackups: manageOtherBackups, keepLocal: keepLocal, timeZone: timeZone)
    }

    /// The second destination's policy: its own `s3_keep_*`; Home Assistant's copies follow B2's rules only.
    func s3RetentionSettings(timeZone: TimeZone, title: String) -> RetentionSettings {
        var settings = RetentionSettings(remote: RetentionPolicy(keepLast: s3KeepLast, keepDaily: s3KeepDaily, keepWeekly: s3KeepWeekly,
                                                                 keepMonthly: s3KeepMonthly, keepYearly: s3KeepYearly),
                                         local: RetentionPolicy(), manageOtherBackups: manageOtherBackups, keepLocal: true, timeZone: timeZone)
        settings.remoteName = title
        return settings
    }

    func reporterSettings(checkInterval: TimeInterval) -> ReporterSettings {
        ReporterSettings(notifyService: notifyService, notifyOnSuccess: notifyOnSuccess, staleAfter: TimeInterval(staleAfterHours) * 3600,
                         checkInterval: checkInterval)
    }
}

/// Builds the pipeline from the settings: adapters for the Supervisor, B2, SQLite and Core, then engine,
/// scheduler and reporter. Returns nil (with the reasons) when options or the Supervisor token are missing.
enum PipelineAssembly {
    static let installedAtKey = "installed_at"

    static func make(settings: ServeSettings, store: StateStore, logger: Logger) async throws -> Pipeline? {
        try await assemble(settings: settings, store: store, logger: logger)?.pipeline
    }

    /// The pipeline and the page's setup check, which share the clients.
    static func assemble(settings: ServeSettings, store: StateStore, logger: Logger) async throws -> (pipeline: Pipeline, setupCheck: SetupChecker)? {
        let options = settings.options
        guard options.missingForBackups.isEmpty, let keyID = options.b2KeyID, let key = options.b2Key, let bucket = options.b2Bucket else { return nil }
        guard let token = settings.environment.supervisorToken else {
            logger.warning("SUPERVISOR_TOKEN is not set: backups cannot run outside Home Assistant without it")
            return nil
        }
        let http = HTTPClient(logger: logger)
        let supervisor = SupervisorClient(baseURL: settings.environment.supervisorURL, token: token, http: http, logger: logger)
        let timeZone = await homeAssistantTimeZone(supervisor, logger: logger)
        let b2 = B2Client(credentials: B2Credentials(keyID: keyID, applicationKey: key), realm: settings.environment.b2APIURL,
                          retryPolicy: settings.tuning.b2RetryPolicy, logger: logger)
        let jobs = StoredJobStore(store: store)
        let source = SupervisorBackupSource(client: supervisor, index: LocalBackupIndex(directory: settings.backupDirectory),
                                            temporaryDirectory: settings.dataDirectory.appendingPathComponent("tmp"),
                                            pollInterval: settings.tuning.supervisorPollInterval)
        let remote = B2RemoteStore(client: b2, journal: StoredUploadJournal(store: store), bucketName: bucket, prefix: options.b2Prefix,
                                   immutableDays: options.immutableDays, logger: logger)
        let catalog = B2Catalog(store: remote, hideInsteadOfDelete: options.b2Deletion == "hide", manageOtherBackups: options.manageOtherBackups,
                                scratch: settings.dataDirectory.appendingPathComponent("tmp"), logger: logger)
        let clock = settings.tuning.clock
        let reporter = HomeAssistantReporter(homeAssistant: CoreProxyHomeAssistant(client: supervisor),
                                             settings: options.reporterSettings(checkInterval: settings.tuning.reporterCheckInterval),
                                             clock: clock, logger: logger)
        let retention = RetentionService(catalog: catalog, source: source, jobs: jobs, settings: options.retentionSettings(timeZone: timeZone),
                                         clock: clock, cache: StoredCatalogCache(store: store), logger: logger)
        let verifyMode = VerificationMode(rawValue: options.verifyMode) ?? .full
        let checker = RemoteRestorabilityChecker(store: remote, mode: verifyMode, clock: clock, logger: logger)
        var secondaries: [SecondaryDestination] = []
        var missing: [String] = []
        if options.s3Enabled {
            if let s3 = s3Destination(options: options, http: http, source: source, jobs: jobs, store: store, timeZone: timeZone, clock: clock,
                                      verifyMode: verifyMode, scratch: settings.dataDirectory.appendingPathComponent("tmp"), logger: logger) {
                secondaries.append(s3)
            } else {
                // Enabled but not usable: backups refuse (not_configured) rather than quietly skip the copy the user asked for.
                missing = options.missingForS3.isEmpty ? ["s3_endpoint"] : options.missingForS3
            }
        }
        let engine = BackupEngine(source: source, remote: remote, catalog: catalog, store: jobs, observer: nil, clock: clock,
                                  settings: options.backupSettings(timeZone: timeZone), missingOptions: missing,
                                  retention: CatalogRetention(service: retention, secondaries: secondaries.map(\.retention)),
                                  checker: checker, secondaries: secondaries, requirement: options.requireAllDestinations ? .all : .any, logger: logger)
        let lastRun = try await jobs.lastBackupStart()
        let scheduler = Scheduler(schedule: options.schedule(timeZone: timeZone), clock: clock, catchUpMissed: options.catchUpMissed,
                                  lastRunStart: lastRun, logger: logger)
        let installedAt: Date
        if let stored = try await store.setting(installedAtKey), let seconds = Double(stored) {
            installedAt = Date(timeIntervalSince1970: seconds)
        } else {
            installedAt = clock.now()
            try await store.setSetting(installedAtKey, String(installedAt.timeIntervalSince1970))
        }
        logger.info("backup pipeline ready", metadata: [
            "b2.bucket": "\(bucket)", "time_zone": "\(timeZone.identifier)",
            "schedule": "\(options.scheduleEnabled ? options.scheduleTimes.joined(separator: ",") + " on " + options.scheduleDays.joined(separator: ",") : "off")",
        ])
        let pipeline = await Pipeline(engine: engine, scheduler: scheduler, reporter: reporter, retention: retention, checker: checker,
                              checkInterval: options.verifyDays > 0 ? TimeInterval(options.verifyDays) * 86_400 : nil,
                              bucket: B2BucketCatalogs(store: remote, scratch: settings.dataDirectory.appendingPathComponent("tmp"), logger: logger),
                              criticalOverrides: options.criticalAddons,
                              quietTime: options.postponeWhile.isEmpty ? nil : QuietTime(
                                  conditions: options.postponeWhile,
                                  recheck: TimeInterval(options.postponeRecheckMinutes) * 60, maxPostpone: TimeInterval(options.postponeMaxMinutes) * 60),
                              entities: CoreProxyHomeAssistant(client: supervisor),
                              store: jobs, remote: remote, clock: clock,
                              scheduleEnabled: options.scheduleEnabled, staleAfter: TimeInterval(options.staleAfterHours) * 3600,
                              installedAt: installedAt, primaryBucket: bucket, restorePreference: options.restoreSource, logger: logger)
        return (pipeline, SetupChecker(b2: b2, store: remote, supervisor: supervisor, options: options,
                                       s3: secondaries.first { $0.id == DestinationID.s3 }?.store as? S3RemoteStore))
    }

    /// The S3-compatible second destination: store, catalog (with its own cache), checker and retention.
    /// Nil (logged) when the options cannot make a client.
    static func s3Destination(options: AddonOptions, http: HTTPClient, source: any BackupSource, jobs: any JobStore, store: StateStore, timeZone: TimeZone,
                              clock: any WallClock, verifyMode: VerificationMode, scratch: URL, logger: Logger) -> SecondaryDestination? {
        guard options.missingForS3.isEmpty, let bucket = options.s3Bucket, let keyID = options.s3AccessKeyID, let secret = options.s3SecretAccessKey else {
            logger.error("s3_enabled is on but options are missing; backups will not run until they are set",
                         metadata: ["missing": "\(options.missingForS3.joined(separator: ","))"])
            return nil
        }
        let client: S3Client
        do {
            client = try S3Client(configuration: .init(endpoint: options.s3EndpointURL, region: options.s3Region, bucket: bucket, accessKeyID: keyID,
                                                       secretAccessKey: secret, addressing: options.s3PathStyle ? .path : .virtualHosted),
                                  http: http, logger: logger)
        } catch {
            logger.error("the S3 options cannot work", metadata: ["error": "\(error)"])
            return nil
        }
        let remote = S3RemoteStore(client: client, prefix: options.s3Prefix, partSize: options.s3PartSizeMB << 20, logger: logger)
        let catalog = S3Catalog(store: remote, manageOtherBackups: options.manageOtherBackups, scratch: scratch, logger: logger)
        let retention = RetentionService(catalog: catalog, source: source, jobs: jobs, settings: options.s3RetentionSettings(timeZone: timeZone, title: "S3"),
                                         clock: clock, cache: StoredCatalogCache(store: store, key: StoredCatalogCache.s3Key), logger: logger)
        logger.info("second destination ready", metadata: ["s3": "\(client.configuration)"])
        return SecondaryDestination(id: DestinationID.s3, title: remote.title, bucket: bucket, store: remote, catalog: catalog,
                                    checker: RemoteRestorabilityChecker(store: remote, mode: verifyMode, clock: clock, logger: logger), retention: retention)
    }

    /// Home Assistant's time zone from the Supervisor; else `TZ`; else UTC (logged, since schedules then run in UTC).
    /// Waits at most 10 s, so a slow Supervisor does not keep the page and the health check from starting.
    static func homeAssistantTimeZone(_ supervisor: SupervisorClient, logger: Logger) async -> TimeZone {
        let answer: Result<String, SupervisorError>? = await withTaskGroup(of: Result<String, SupervisorError>?.self) { group in
            group.addTask {
                do throws(SupervisorError) { return .success(try await supervisor.info().timezone) } catch { return .failure(error) }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch answer {
        case .success(let name):
            if let zone = TimeZone(identifier: name) { return zone }
            logger.warning("unknown time zone from the Supervisor; using TZ or UTC", metadata: ["time_zone": "\(name)"])
        case .failure(let error):
            logger.warning("cannot read Home Assistant's time zone; using TZ or UTC", metadata: ["error": "\(error)"])
        case nil:
            logger.warning("the Supervisor did not say Home Assistant's time zone within 10 s; using TZ or UTC")
        }
        return ProcessInfo.processInfo.environment["TZ"].flatMap(TimeZone.init(identifier:)) ?? .gmt
    }
}
