import ArgumentParser
import B2Simulator
import Core
import Foundation
import HTTPServer
import HTTPClient
import Logging
import S3Client
import SupervisorSimulator

/// `b2-backup demo`: the add-on against its built-in simulators of the Supervisor and of B2, with a sample
/// options file, so a newcomer can watch (and click through) complete backup cycles on one machine.
public struct Demo: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Run the add-on against built-in Supervisor and B2 simulators (for trying it out; never in production).")

    @Option(help: "Folder for the demo's state; emptied at start.")
    var directory = ".demo"

    @Option(help: "TCP port for the page and the REST API.")
    var port = 8099

    @Flag(name: .customLong("no-initial-backup"), help: "Do not start a backup right away.")
    var noInitialBackup = false

    @Option(name: .customLong("ingress-proxy"), help: "Address trusted as Home Assistant's ingress proxy (no token needed); another address makes every caller show the token.")
    var ingressProxy = "127.0.0.1"

    @Option(name: .customLong("s3-endpoint"), help: "An S3-compatible endpoint (moto, MinIO) to use as the second destination; the bucket is created.")
    var s3Endpoint: String?

    @Option(name: .customLong("s3-access-key-id"), help: "Key id for --s3-endpoint (any works for moto without authentication).")
    var s3AccessKeyID = "demo"

    @Option(name: .customLong("s3-secret-access-key"), help: "Secret for --s3-endpoint.")
    var s3SecretAccessKey = "demo-secret"

    public init() {}

    static let s3Bucket = "ha-backups-demo-copy"

    /// The second destination's options, after creating its bucket (an existing one of ours is fine).
    func s3Options(logger: Logger) async throws -> [String: Any] {
        guard let s3Endpoint else { return [:] }
        let client = try S3Client(configuration: .init(endpoint: s3Endpoint, region: "us-east-1", bucket: Self.s3Bucket, accessKeyID: s3AccessKeyID,
                                                       secretAccessKey: s3SecretAccessKey, maxAttempts: 2),
                                  http: HTTPClient(logger: logger), logger: logger)
        do throws(S3Error) { try await client.createBucket() } catch {
            guard ["BucketAlreadyOwnedByYou", "BucketAlreadyExists"].contains(error.code ?? "") else { throw error }
        }
        return ["s3_enabled": true, "s3_endpoint": s3Endpoint, "s3_bucket": Self.s3Bucket, "s3_access_key_id": s3AccessKeyID,
                "s3_secret_access_key": s3SecretAccessKey, "s3_path_style": true, "s3_part_size_mb": 5]
    }

    /// Sample credentials the B2 simulator accepts (shaped like real ones, so the options validate).
    static let keyID = "005a1b2c3d4e5f60000000001"
    static let applicationKey = "K005DemoApplicationKeyDoNotUse"
    static let bucket = "ha-backups-demo"
    static let apiToken = "demo-api-token-0123456789"

    /// Prints what the simulated Home Assistant receives (events, entity states, notifications), once a second,
    /// so the demo shows the add-on's side of Home Assistant without a Home Assistant.
    static func echoHomeAssistant(_ supervisor: SupervisorSimulator) async {
        var seen = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let calls = await supervisor.coreCalls()
            for call in calls.dropFirst(seen) where call.method == "POST" {
                let body = call.body.map { String(decoding: $0.encoded(), as: UTF8.self) } ?? ""
                print("home assistant <- \(call.path.replacingOccurrences(of: "/core/api/", with: "")) \(call.status) \(body.prefix(240))")
            }
            seen = calls.count
        }
    }

    public func run() async throws {
        let root = URL(fileURLWithPath: directory).standardizedFileURL
        try? FileManager.default.removeItem(at: root)
        let data = root.appendingPathComponent("data"), backups = root.appendingPathComponent("backup"), b2Storage = root.appendingPathComponent("b2")
        for folder in [data, backups, b2Storage] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }

        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = label.hasPrefix("simulator") ? .warning : .info
            return handler
        }
        let logger = Logger(label: "b2-backup")
        var b2Configuration = B2Simulator.demoConfiguration(storage: b2Storage)
        b2Configuration.accounts = [B2Simulator.Account(keyID: Self.keyID, applicationKey: Self.applicationKey, restrictedToBucket: nil,
                                                        capabilities: B2Simulator.Account.allCapabilities)]
        b2Configuration.buckets = [Self.bucket]
        // Parts of 5 MB so the 12 MB demo backups go up as real large files, in parallel parts.
        b2Configuration.recommendedPartSize = 5_000_000
        let b2 = try B2Simulator(configuration: b2Configuration, logger: Logger(label: "simulator.b2"))
        var supervisorConfiguration = SupervisorSimulator.demoConfiguration(backupDirectory: backups)
        supervisorConfiguration.backupPayloadBytes = 12 * 1024 * 1024
        supervisorConfiguration.notifyServices = ["mobile_app_demo_phone"]
        supervisorConfiguration.timezone = TimeZone.current.identifier == "GMT" ? "UTC" : TimeZone.current.identifier
        let supervisor = try SupervisorSimulator(configuration: supervisorConfiguration, logger: Logger(label: "simulator.supervisor"))
        b2.start()
        supervisor.start()

        let now = Date()
        let nextMinute = Calendar.current.dateComponents(in: TimeZone(identifier: supervisorConfiguration.timezone) ?? .gmt, from: now.addingTimeInterval(180))
        let soon = String(format: "%02d:%02d", nextMinute.hour ?? 0, nextMinute.minute ?? 0)
        var options: [String: Any] = [
            "b2_key_id": Self.keyID, "b2_key": Self.applicationKey, "b2_bucket": Self.bucket, "b2_prefix": "homeassistant",
            "api_token": Self.apiToken, "log_level": "info", "schedule_times": ["03:30", soon], "backup_name": "Demo {date} {time} {type}",
            "keep_local": true, "notify_on_success": true, "notify_service": "notify.mobile_app_demo_phone",
        ]
        options.merge(try await s3Options(logger: logger)) { _, s3 in s3 }
        let optionsURL = data.appendingPathComponent("options.json")
        try JSONSerialization.data(withJSONObject: options, options: [.prettyPrinted, .sortedKeys]).write(to: optionsURL)
        let environment = RuntimeEnvironment(supervisorURL: supervisor.url, supervisorToken: supervisor.configuration.token, b2APIURL: b2.realmURL)
        var tuning = ServeSettings.Tuning()
        tuning.supervisorPollInterval = .milliseconds(250)
        tuning.reporterCheckInterval = 10
        let settings = ServeSettings(dataDirectory: data, backupDirectory: backups, host: "127.0.0.1", port: port, ingressProxy: ingressProxy,
                                     options: try AddonOptions.load(from: optionsURL), environment: environment, tuning: tuning)
        let application = try await Application(settings: settings, logger: logger)
        print("""

            B2 Backup demo — everything runs on this machine; nothing leaves it.
              page:        http://127.0.0.1:\(application.server.port)/
              status:      curl http://127.0.0.1:\(application.server.port)/api/status
              back up now: curl -X POST -H 'Authorization: Bearer \(Self.apiToken)' http://127.0.0.1:\(application.server.port)/api/backups
              scheduled:   03:30 and \(soon) (\(supervisorConfiguration.timezone))\(s3Endpoint.map { "\n  second copy: bucket \(Self.s3Bucket) at \($0)" } ?? "")
              state:       \(root.path) (options.json, state.db, the backup folder and the simulated bucket)
            Stop with Ctrl-C.

            """)
        if !noInitialBackup, let pipeline = application.pipeline {
            Task {
                do throws(EngineRefusal) {
                    let job = try await pipeline.startManual(BackupRequest())
                    logger.info("demo: first backup started", metadata: ["job.id": "\(job.id)"])
                } catch {
                    logger.warning("demo: first backup not started", metadata: ["error": "\(error)"])
                }
            }
        }
        let watcher = Task { await Self.echoHomeAssistant(supervisor) }
        try await application.run()
        watcher.cancel()
        await supervisor.shutdown()
        await b2.shutdown()
    }
}
