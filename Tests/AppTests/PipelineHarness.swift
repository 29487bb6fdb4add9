import B2Client
import B2Simulator
import Core
import Foundation
import HTTPClient
import HTTPServer
import Logging
import Synchronization
import Storage
import SupervisorSimulator
import Testing
import WebAPI
@testable import App

let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Both simulators, a state database and the add-on's options, in a temporary folder. `pipeline()` builds the
/// add-on's pipeline the way `serve` does; calling it again is a restart on the same database and bucket.
final class PipelineHarness: Sendable {
    static let keyID = "0041234567890ab0000000001"
    static let applicationKey = "K004TestApplicationKey"
    static let bucket = "ha-backups"
    static let apiToken = "a-long-test-api-token-42"
    /// A Sunday morning in Amsterdam: 2026-11-29 10:00 local.
    static let start = Date(timeIntervalSince1970: 1_795_942_800)

    let directory: URL
    let b2: B2Simulator
    let supervisor: SupervisorSimulator
    let clock: ManualClock
    let options: AddonOptions
    let backupDirectory: URL
    /// The port of the web app `withWebApp` runs, for raw-socket tests.
    let webPort = Mutex(0)

    /// - Parameter objectLock: the bucket has Object Lock, and the key may read and write file retentions.
    init(options configure: (inout AddonOptions) -> Void = { _ in }, supervisor tune: (inout SupervisorSimulator.Configuration) -> Void = { _ in },
         objectLock: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-\(UUID().uuidString)")
        backupDirectory = directory.appendingPathComponent("backup")
        let storage = directory.appendingPathComponent("b2")
        for folder in [backupDirectory, storage, directory.appendingPathComponent("data")] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        let capabilities = B2Simulator.Account.bucketKeyCapabilities + (objectLock ? ["readBucketRetentions", "readFileRetentions", "writeFileRetentions"] : [])
        let account = B2Simulator.Account(keyID: Self.keyID, applicationKey: Self.applicationKey, restrictedToBucket: Self.bucket, capabilities: capabilities)
        // Small parts, so a 1 MiB backup is a large file of several parts.
        var b2Configuration = B2Simulator.Configuration(accounts: [account], buckets: [Self.bucket], recommendedPartSize: 300_000,
                                                        absoluteMinimumPartSize: 100_000, storageDirectory: storage)
        if objectLock { b2Configuration.objectLockBuckets = [Self.bucket] }
        b2 = try B2Simulator(configuration: b2Configuration, logger: quiet)
        var configuration = SupervisorSimulator.Configuration(backupDirectory: backupDirectory, backupPayloadBytes: 1 << 20, jobDuration: .milliseconds(20))
        tune(&configuration)
        supervisor = try SupervisorSimulator(configuration: configuration, logger: quiet)
        b2.start()
        supervisor.start()
        clock = ManualClock(Self.start)
        var options = AddonOptions(b2KeyID: Self.keyID, b2Key: Self.applicationKey, b2Bucket: Self.bucket, apiToken: Self.apiToken)
        // Pipeline tests make several backups a day; the default policy (one per day) would prune them.
        // Retention tests set their own policy.
        options.keepLast = 10
        configure(&options)
        self.options = options
    }

    func settings(port: Int = 0, ingressProxy: String = "10.255.255.254", options: AddonOptions? = nil, token: String? = nil) -> ServeSettings {
        var tuning = ServeSettings.Tuning()
        tuning.clock = clock
        tuning.supervisorPollInterval = .milliseconds(10)
        tuning.b2RetryPolicy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(5), maxDelay: .milliseconds(20))
        return ServeSettings(dataDirectory: directory.appendingPathComponent("data"), backupDirectory: backupDirectory, host: "127.0.0.1", port: port,
                             ingressProxy: ingressProxy, options: options ?? self.options,
                             environment: RuntimeEnvironment(supervisorURL: supervisor.url, supervisorToken: token ?? supervisor.configuration.token,
                                                             b2APIURL: b2.realmURL),
                             tuning: tuning)
    }

    /// A fresh connection to the state database (a restarted add-on opens it again).
    func store() throws -> StateStore {
        try StateStore(path: directory.appendingPathComponent("data/state.db").path, logger: quiet)
    }

    func pipeline(options: AddonOptions? = nil, store: StateStore? = nil) async throws -> Pipeline {
        try #require(try await PipelineAssembly.make(settings: settings(options: options), store: store ?? self.store(), logger: quiet))
    }

    /// Backup objects in the bucket (uploads of `.tar` files; the catalog index is not one).
    func objects() async -> [SimulatedFile] {
        await b2.fileVersions(bucket: Self.bucket).filter { $0.action == .upload && $0.fileName.hasSuffix(".tar") }
    }

    /// Downloads an object through the real client and returns its bytes.
    func download(_ name: String) async throws -> Data {
        let client = B2Client(credentials: B2Credentials(keyID: Self.keyID, applicationKey: Self.applicationKey), realm: b2.realmURL, logger: quiet)
        let path = directory.appendingPathComponent("download-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        _ = try await client.download(.name(bucket: Self.bucket, fileName: name), range: nil, into: ResponseFile(path: path))
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    func events(_ type: String) async -> [JSONValue] {
        await supervisor.coreCalls().filter { $0.method == "POST" && $0.path == "/core/api/events/\(type)" && (200..<300).contains($0.status) }.compactMap(\.body)
    }

    func shutdown() async {
        await b2.shutdown()
        await supervisor.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Runs `body` with a harness and always shuts it down.
func withHarness<T>(options: (inout AddonOptions) -> Void = { _ in }, supervisor: (inout SupervisorSimulator.Configuration) -> Void = { _ in },
                    objectLock: Bool = false, _ body: (PipelineHarness) async throws -> T) async throws -> T {
    let harness = try PipelineHarness(options: options, supervisor: supervisor, objectLock: objectLock)
    do {
        let result = try await body(harness)
        await harness.shutdown()
        return result
    } catch {
        await harness.shutdown()
        throw error
    }
}

/// The web app of a pipeline on a real socket (port 0).
func withWebApp<T>(_ harness: PipelineHarness, pipeline: Pipeline?, ingressProxy: String = "10.255.255.254", setupCheck: (any SetupChecking)? = nil,
                   _ body: (String, HTTPClient) async throws -> T) async throws -> T {
    let app = WebApp(version: AddonVersion.current, access: APIAccess(ingressProxy: ingressProxy, apiToken: PipelineHarness.apiToken),
                     health: FixedHealthProbe(), setup: SetupStatus(bucket: PipelineHarness.bucket, prefix: "homeassistant", missingOptions: [], apiTokenSet: true),
                     pipeline: pipeline, setupCheck: setupCheck, keepAliveInterval: .milliseconds(200))
    let server = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0), router: app.router(), logger: quiet)
    harness.webPort.withLock { $0 = server.port }
    let running = Task { try await server.run() }
    do {
        let result = try await body("http://127.0.0.1:\(server.port)", HTTPClient(logger: quiet))
        server.shutdown()
        try await running.value
        return result
    } catch {
        server.shutdown()
        _ = try? await running.value
        throw error
    }
}

struct FixedHealthProbe: HealthProbe {
    func checks() async -> [String: String] { ["database": "ok"] }
}
