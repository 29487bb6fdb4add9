import B2Client
import Core
import Dispatch
import Foundation
import Glibc
import HTTPServer
import Logging
import Storage
import WebAPI

/// The release of this build; equal to `version` in config.yaml (a test checks it).
public enum AddonVersion {
    public static let current = "0.1.0"
}

/// Everything `serve` needs, from flags, the options file and the environment.
public struct ServeSettings: Sendable {
    public var dataDirectory: URL
    public var backupDirectory: URL
    public var host: String
    public var port: Int
    public var ingressProxy: String
    public var options: AddonOptions
    public var environment: RuntimeEnvironment
    public var tuning: Tuning

    /// Intervals and the clock; tests and the demo shorten them.
    public struct Tuning: Sendable {
        public var clock: any WallClock = SystemClock()
        public var supervisorPollInterval: Duration = .seconds(1)
        public var reporterCheckInterval: TimeInterval = 60
        /// B2's retry rules; tests shorten the waits.
        public var b2RetryPolicy = RetryPolicy()
        public init() {}
    }

    public init(dataDirectory: URL, backupDirectory: URL, host: String = "0.0.0.0", port: Int, ingressProxy: String, options: AddonOptions,
                environment: RuntimeEnvironment, tuning: Tuning = Tuning()) {
        self.dataDirectory = dataDirectory
        self.backupDirectory = backupDirectory
        self.host = host
        self.port = port
        self.ingressProxy = ingressProxy
        self.options = options
        self.environment = environment
        self.tuning = tuning
    }
}

/// Health of the pieces the app owns.
struct AppHealth: HealthProbe {
    let store: StateStore
    func checks() async -> [String: String] {
        do {
            try await store.check()
            return ["database": "ok"]
        } catch {
            return ["database": "\(error)"]
        }
    }
}

/// Wires the graph and runs it: state database, backup pipeline, web app, HTTP server. No business logic here.
public final class Application: Sendable {
    public let settings: ServeSettings
    public let server: HTTPServer
    public let store: StateStore
    /// nil until the B2 options and the Supervisor token are there.
    public let pipeline: Pipeline?
    let logger: Logger

    public init(settings: ServeSettings, logger: Logger) async throws {
        self.settings = settings
        self.logger = logger
        try FileManager.default.createDirectory(at: settings.dataDirectory, withIntermediateDirectories: true)
        store = try StateStore(path: settings.dataDirectory.appendingPathComponent("state.db").path, logger: logger)
        let assembled = try await PipelineAssembly.assemble(settings: settings, store: store, logger: logger)
        pipeline = assembled?.pipeline
        let app = WebApp(version: AddonVersion.current,
                         access: APIAccess(ingressProxy: settings.ingressProxy, apiToken: settings.options.apiToken),
                         health: AppHealth(store: store),
                         setup: SetupStatus(bucket: settings.options.b2Bucket, prefix: settings.options.b2Prefix,
                                            missingOptions: settings.options.missingForBackups, apiTokenSet: settings.options.apiToken != nil),
                         pipeline: pipeline, setupCheck: assembled?.setupCheck)
        server = try HTTPServer(configuration: .init(host: settings.host, port: settings.port), router: app.router(), logger: logger)
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    public func run() async throws {
        logger.info("B2 Backup starting", metadata: [
            "version": "\(AddonVersion.current)", "http.port": "\(server.port)",
            "data_dir": "\(settings.dataDirectory.path)", "backup_dir": "\(settings.backupDirectory.path)",
            "b2.bucket": "\(settings.options.b2Bucket ?? "(not set)")", "b2.prefix": "\(settings.options.b2Prefix)",
        ])
        if !settings.options.missingForBackups.isEmpty {
            logger.warning("backups need these options before they can run", metadata: ["missing": "\(settings.options.missingForBackups.joined(separator: ", "))"])
        }
        let signals = SignalWatcher(signals: [SIGTERM, SIGINT]) { [server, logger, pipeline] signal in
            logger.info("received signal, shutting down", metadata: ["signal": "\(signal)"])
            server.shutdown()
            Task { await pipeline?.events.close() } // event streams end now rather than after the grace period
        }
        defer { signals.cancel() }
        let background = Task { [pipeline] in await pipeline?.run() }
        do {
            try await server.run()
        } catch {
            background.cancel()
            await pipeline?.engine.suspend()
            throw error
        }
        // A running job stays unfinished at its step and continues at the next start.
        background.cancel()
        await pipeline?.engine.suspend()
        _ = await background.value
        logger.info("B2 Backup stopped")
    }
}

/// Turns SIGTERM/SIGINT into a callback (Dispatch sources, so no async-signal-safety concerns).
final class SignalWatcher {
    private let sources: [any DispatchSourceSignal]

    init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        sources = signals.map { number in
            signal(number, SIG_IGN) // the default action would kill the process before the source sees it
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    func cancel() { sources.forEach { $0.cancel() } }
}
