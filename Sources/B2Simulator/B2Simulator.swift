import Foundation
import HTTPServer
import Logging
import Synchronization

/// A Backblaze B2 native-API service on 127.0.0.1 for tests and the local demo.
///
/// Three HTTP servers stand in for B2's three host kinds: the API host (`apiUrl`, JSON calls), the
/// upload pods (per-request upload URLs) and the download host (`downloadUrl`). Envelopes, status
/// codes, error codes and limits follow the B2 native API, not any client. File contents live on
/// disk under ``Configuration/storageDirectory``; uploads are streamed there and downloads streamed
/// back, so multi-GB transfers never sit in memory. Buckets are private and always versioned.
///
/// ```swift
/// let simulator = try B2Simulator(configuration: .init(storageDirectory: dir), logger: logger)
/// simulator.start()
/// // authorize at "\(simulator.realmURL)/b2api/v4/b2_authorize_account"
/// await simulator.shutdown()
/// ```
/// - SeeAlso: https://www.backblaze.com/apidocs/introduction-to-the-b2-native-api
public final class B2Simulator: Sendable {
    /// One application key.
    public struct Account: Sendable, Hashable {
        public var keyID: String
        public var applicationKey: String
        /// B2 account IDs are 12 hex digits; keys of one account share it.
        public var accountID: String
        /// nil = all buckets; else a bucket-restricted key (the bucket's name).
        public var restrictedToBucket: String?
        public var capabilities: [String]
        /// Restricts the key to file names with this prefix.
        public var namePrefix: String?

        public init(keyID: String, applicationKey: String, accountID: String = "5a9e1c0b7f3d", restrictedToBucket: String? = nil,
                    capabilities: [String] = Account.allCapabilities, namePrefix: String? = nil) {
            self.keyID = keyID
            self.applicationKey = applicationKey
            self.accountID = accountID
            self.restrictedToBucket = restrictedToBucket
            self.capabilities = capabilities
            self.namePrefix = namePrefix
        }

        /// What a master key may do.
        /// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-application-key-capabilities
        public static let allCapabilities = [
            "listKeys", "writeKeys", "deleteKeys", "listAllBucketNames", "listBuckets", "readBuckets", "writeBuckets",
            "deleteBuckets", "readBucketRetentions", "writeBucketRetentions", "readBucketEncryption", "writeBucketEncryption",
            "readBucketReplications", "writeBucketReplications", "readBucketNotifications", "writeBucketNotifications",
            "listFiles", "readFiles", "shareFiles", "writeFiles", "deleteFiles", "readFileLegalHolds", "writeFileLegalHolds",
            "readFileRetentions", "writeFileRetentions", "bypassGovernance",
        ]

        /// What the B2 web UI grants a "Read and Write" key restricted to one bucket (what HA users create).
        public static let bucketKeyCapabilities = [
            "deleteFiles", "listAllBucketNames", "listBuckets", "listFiles", "readBucketEncryption", "readBucketReplications",
            "readBuckets", "readFiles", "shareFiles", "writeBucketEncryption", "writeBucketReplications", "writeFiles",
        ]
    }

    /// Object Lock retention modes: governance can be lifted by a key with `bypassGovernance`, compliance by no one.
    /// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-object-lock
    public enum RetentionMode: String, Sendable, Hashable {
        case governance, compliance
    }

    /// A file's Object Lock retention.
    public struct Retention: Sendable, Hashable {
        public var mode: RetentionMode
        /// Milliseconds since 1970 (UTC); the lock ends then.
        public var retainUntilTimestamp: Int

        public init(mode: RetentionMode, retainUntilTimestamp: Int) {
            self.mode = mode
            self.retainUntilTimestamp = retainUntilTimestamp
        }
    }

    /// A bucket's default retention (`b2_update_bucket` `defaultRetention`), given to files uploaded without one.
    public struct DefaultRetention: Sendable, Hashable {
        public var mode: RetentionMode
        /// Counted from the upload; reported as `period {duration, unit: "days"}`.
        public var days: Int

        public init(mode: RetentionMode, days: Int) {
            self.mode = mode
            self.days = days
        }
    }

    /// Accounts, buckets and limits. The defaults are B2's published values.
    public struct Configuration: Sendable {
        public var accounts: [Account]
        /// Bucket names; each is created private (`allPrivate`) and owned by the first account's account ID.
        public var buckets: [String]
        /// Returned by `b2_authorize_account`; B2 answers 100 000 000.
        public var recommendedPartSize: Int
        /// Every part but the last must be at least this big (checked at `b2_finish_large_file`); B2 answers 5 000 000.
        public var absoluteMinimumPartSize: Int
        /// File contents live in a folder created below this one, never in memory; `shutdown()` removes that folder.
        public var storageDirectory: URL
        /// The largest `b2_upload_file` body (B2: 5 GB); parts have the same cap.
        public var maxSimpleUploadBytes: Int
        /// With `X-Bz-Test-Mode: fail_some_uploads` (or `expire_some_account_authorization_tokens`), every
        /// this-many-th such request fails. B2 fails "some" at random; a fixed interval keeps tests repeatable.
        public var testModeFailureInterval: Int
        /// Buckets (from ``buckets``) created with Object Lock enabled; only their files may carry a retention.
        public var objectLockBuckets: Set<String>
        /// Default retention of Object Lock buckets, by bucket name.
        public var defaultRetention: [String: DefaultRetention]
        /// The service's clock: upload timestamps and when retentions end. Tests move it instead of sleeping.
        public var now: @Sendable () -> Date

        public init(accounts: [Account] = [Account(keyID: "sim-master-key-id", applicationKey: "sim-master-application-key")],
                    buckets: [String] = ["sim-bucket"],
                    recommendedPartSize: Int = 100_000_000,
                    absoluteMinimumPartSize: Int = 5_000_000,
                    storageDirectory: URL = FileManager.default.temporaryDirectory,
                    maxSimpleUploadBytes: Int = 5_000_000_000,
                    testModeFailureInterval: Int = 3,
                    objectLockBuckets: Set<String> = [],
                    defaultRetention: [String: DefaultRetention] = [:],
                    now: @escaping @Sendable () -> Date = { Date() }) {
            self.accounts = accounts
            self.buckets = buckets
            self.recommendedPartSize = recommendedPartSize
            self.absoluteMinimumPartSize = absoluteMinimumPartSize
            self.storageDirectory = storageDirectory
            self.maxSimpleUploadBytes = maxSimpleUploadBytes
            self.testModeFailureInterval = testModeFailureInterval
            self.objectLockBuckets = objectLockBuckets
            self.defaultRetention = defaultRetention
            self.now = now
        }
    }

    /// The local demo's service: one bucket-restricted key for the bucket `ha-backups`.
    public static func demoConfiguration(storage: URL) -> Configuration {
        Configuration(accounts: [Account(keyID: "sim-key-id", applicationKey: "sim-application-key",
                                         restrictedToBucket: "ha-backups", capabilities: Account.bucketKeyCapabilities)],
                      buckets: ["ha-backups"], storageDirectory: storage)
    }

    public let configuration: Configuration
    /// Rules that make the next requests fail the ways B2 fails.
    public let faults: FaultInjector
    let state: SimulatorState
    private let apiServer: HTTPServer
    private let uploadServer: HTTPServer
    private let downloadServer: HTTPServer
    private let logger: Logger
    private let runDirectory: URL
    private let running = Mutex<[Task<Void, Never>]>([])

    /// Base for `b2_authorize_account`, e.g. `http://127.0.0.1:PORT` (the API server).
    public var realmURL: String { "http://127.0.0.1:\(apiServer.port)" }
    /// The `apiUrl` that `b2_authorize_account` returns (the realm: one API host here).
    public var apiURL: String { realmURL }
    /// The `downloadUrl` that `b2_authorize_account` returns.
    public var downloadURL: String { "http://127.0.0.1:\(downloadServer.port)" }
    /// The host of every upload URL.
    public var uploadBaseURL: String { "http://127.0.0.1:\(uploadServer.port)" }

    /// Binds the API, upload and download servers on 127.0.0.1 with free ports, so every URL is known
    /// (and connectable) before ``start()``.
    /// - Throws: ``B2SimulatorError`` when the configuration is inconsistent, the storage folder cannot be
    ///   created or a socket cannot be bound.
    public init(configuration: Configuration, logger: Logger) throws {
        try Self.validate(configuration)
        self.configuration = configuration
        self.logger = logger
        runDirectory = configuration.storageDirectory.appendingPathComponent("b2-simulator-\(UUID().uuidString)", isDirectory: true)
        do {
            for folder in ["tmp", "files", "parts"] {
                try FileManager.default.createDirectory(at: runDirectory.appendingPathComponent(folder, isDirectory: true), withIntermediateDirectories: true)
            }
        } catch {
            throw B2SimulatorError("cannot create the storage folder \(runDirectory.path): \(error.localizedDescription)")
        }
        let endpoints = Endpoints()
        let state = SimulatorState(configuration: configuration, storage: runDirectory, endpoints: endpoints)
        self.state = state
        let faults = FaultInjector(state: state)
        self.faults = faults
        let context = HandlerContext(state: state, faults: faults, endpoints: endpoints, configuration: configuration,
                                     temporaryDirectory: runDirectory.appendingPathComponent("tmp", isDirectory: true), logger: logger)
        // Short timeouts and grace: a test that leaves a request hanging must not stall shutdown.
        let serverConfiguration = HTTPServer.Configuration(host: "127.0.0.1", port: 0, defaultBodyLimit: APIRoutes.jsonBodyLimit,
                                                           shutdownGracePeriod: .seconds(2))
        do {
            apiServer = try HTTPServer(configuration: serverConfiguration, router: APIRoutes.router(context), logger: logger)
            uploadServer = try HTTPServer(configuration: serverConfiguration, router: UploadRoutes.router(context), logger: logger)
            downloadServer = try HTTPServer(configuration: serverConfiguration, router: DownloadRoutes.router(context), logger: logger)
        } catch {
            try? FileManager.default.removeItem(at: runDirectory)
            throw B2SimulatorError("cannot bind the simulator's servers: \(error)")
        }
        endpoints.set(api: "http://127.0.0.1:\(apiServer.port)", upload: "http://127.0.0.1:\(uploadServer.port)",
                      download: "http://127.0.0.1:\(downloadServer.port)")
    }

    private static func validate(_ configuration: Configuration) throws(B2SimulatorError) {
        guard !configuration.accounts.isEmpty else { throw B2SimulatorError("the configuration has no accounts") }
        guard Set(configuration.accounts.map(\.keyID)).count == configuration.accounts.count else {
            throw B2SimulatorError("two accounts share a key ID")
        }
        guard Set(configuration.buckets).count == configuration.buckets.count else { throw B2SimulatorError("a bucket name is listed twice") }
        for account in configuration.accounts {
            if let bucket = account.restrictedToBucket, !configuration.buckets.contains(bucket) {
                throw B2SimulatorError("key \(account.keyID) is restricted to bucket \(bucket), which is not in the configuration")
            }
        }
        guard configuration.absoluteMinimumPartSize > 0, configuration.recommendedPartSize >= configuration.absoluteMinimumPartSize else {
            throw B2SimulatorError("part sizes must satisfy 0 < absoluteMinimumPartSize <= recommendedPartSize")
        }
        guard configuration.testModeFailureInterval > 0 else { throw B2SimulatorError("testModeFailureInterval must be positive") }
        if let bucket = configuration.objectLockBuckets.first(where: { !configuration.buckets.contains($0) }) {
            throw B2SimulatorError("Object Lock bucket \(bucket) is not in the configuration")
        }
        for (bucket, retention) in configuration.defaultRetention {
            guard configuration.objectLockBuckets.contains(bucket) else { throw B2SimulatorError("bucket \(bucket) has a default retention but no Object Lock") }
            guard retention.days > 0 else { throw B2SimulatorError("the default retention of \(bucket) must be at least one day") }
        }
    }

    /// Runs the three servers in background tasks.
    public func start() {
        running.withLock { tasks in
            precondition(tasks.isEmpty, "B2Simulator.start() called twice")
            for (name, server) in [("api", apiServer), ("upload", uploadServer), ("download", downloadServer)] {
                let logger = logger
                tasks.append(Task {
                    do {
                        try await server.run()
                    } catch {
                        logger.error("B2 simulator server stopped with an error", metadata: ["b2.server": "\(name)", "error": "\(error)"])
                    }
                })
            }
        }
        logger.info("B2 simulator running", metadata: ["b2.realm": "\(realmURL)", "b2.download": "\(downloadURL)", "b2.upload": "\(uploadBaseURL)"])
    }

    /// Stops the servers, waits for them to end and deletes the stored file contents.
    public func shutdown() async {
        apiServer.shutdown()
        uploadServer.shutdown()
        downloadServer.shutdown()
        let tasks = running.withLock { $0 }
        for task in tasks { await task.value }
        try? FileManager.default.removeItem(at: runDirectory)
    }

    // MARK: Inspection for tests

    /// Every version in a bucket (by name or ID), name order, newest first per name: uploads, hide markers
    /// and unfinished large files (`start`), as `b2_list_file_versions` lists them.
    public func fileVersions(bucket: String) async -> [SimulatedFile] {
        await state.inspectVersions(bucket: bucket)
    }

    /// Large files started and neither finished nor cancelled, oldest first.
    public func unfinishedLargeFiles(bucket: String) async -> [SimulatedFile] {
        await state.inspectUnfinished(bucket: bucket)
    }

    /// The stored bytes of a finished file, for assertions on small files.
    /// - Throws: ``B2SimulatorError`` when there is no such upload or it is larger than 64 MiB.
    public func contents(fileID: String) async throws -> [UInt8] {
        let segments = try await state.segments(fileID: fileID)
        let total = segments.reduce(0) { $0 + $1.length }
        guard total <= 64 << 20 else { throw B2SimulatorError("file \(fileID) has \(total) bytes; contents(fileID:) is for small files") }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        for segment in segments {
            do {
                bytes += try Data(contentsOf: segment.path)
            } catch {
                throw B2SimulatorError("cannot read the stored contents of \(fileID): \(error.localizedDescription)")
            }
        }
        return bytes
    }

    /// How many requests an operation received, failed ones included (`"b2_upload_part"`,
    /// `"b2_download_file_by_name"`, …).
    public func requestCount(_ operation: String) async -> Int {
        await state.requestCount(operation)
    }
}

/// A file version as the simulator holds it.
public struct SimulatedFile: Sendable, Hashable {
    public enum Action: String, Sendable, Hashable {
        case upload, hide, start
    }

    public let fileID: String
    public let fileName: String
    public let bucketID: String
    public let action: Action
    public let contentType: String
    public let contentLength: Int
    /// Hex SHA-1; `"none"` for large files, `"unverified:<hex>"` after `do_not_verify`, nil for hide markers.
    public let contentSha1: String?
    public let fileInfo: [String: String]
    /// Milliseconds since 1970 (UTC).
    public let uploadTimestamp: Int
    /// Object Lock retention, its own or the bucket's default; nil when none was set.
    public let retention: B2Simulator.Retention?
}

/// Why the simulator could not be set up or inspected.
public struct B2SimulatorError: Error, Sendable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { "B2 simulator: \(message)" }
}

/// The three servers' base URLs, known only once they are bound; read by the handlers.
final class Endpoints: Sendable {
    struct URLs: Sendable {
        var api = "", upload = "", download = ""
    }

    private let urls = Mutex(URLs())

    func set(api: String, upload: String, download: String) {
        urls.withLock { $0 = URLs(api: api, upload: upload, download: download) }
    }

    var current: URLs { urls.withLock { $0 } }
}

extension B2Simulator.Configuration {
    /// ``now`` in milliseconds since 1970, B2's unit for timestamps.
    var nowMillis: Int { Int(now().timeIntervalSince1970 * 1000) }
}

/// What every handler needs.
struct HandlerContext: Sendable {
    let state: SimulatorState
    let faults: FaultInjector
    let endpoints: Endpoints
    let configuration: B2Simulator.Configuration
    let temporaryDirectory: URL
    let logger: Logger
}
