import ArgumentParser
import B2Client
import Foundation
import Glibc
import HTTPClient
import Logging
import S3Client
import Storage

/// What the transfer commands share: where credentials, bucket and prefix come from.
struct B2Options: ParsableArguments {
    @Option(help: "Bucket (default: b2_bucket from the options file).")
    var bucket: String?

    @Option(help: "Folder in the bucket (default: b2_prefix from the options file).")
    var prefix: String?

    @Option(name: .customLong("data-dir"), help: "Folder with options.json and the state database (resume journal).")
    var dataDirectory = "/data"

    @Flag(help: "Log each step to standard error.")
    var verbose = false

    /// The options file when there is one, else the defaults.
    func options() throws -> AddonOptions {
        let optionsURL = URL(fileURLWithPath: dataDirectory).appendingPathComponent("options.json")
        return FileManager.default.fileExists(atPath: optionsURL.path) ? try AddonOptions.load(from: optionsURL) : AddonOptions()
    }

    /// Credentials from `B2_APPLICATION_KEY_ID` / `B2_APPLICATION_KEY` (the b2 CLI's names), else the options file.
    func context() throws -> TransferContext {
        let environment = ProcessInfo.processInfo.environment
        let optionsURL = URL(fileURLWithPath: dataDirectory).appendingPathComponent("options.json")
        let options = try options()
        let runtime = try RuntimeEnvironment.from(environment)
        guard let keyID = environment["B2_APPLICATION_KEY_ID"].flatMap({ $0.isEmpty ? nil : $0 }) ?? options.b2KeyID,
              let key = environment["B2_APPLICATION_KEY"].flatMap({ $0.isEmpty ? nil : $0 }) ?? options.b2Key else {
            throw CommandFailure("no B2 credentials: set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY, or b2_key_id and b2_key in \(optionsURL.path)")
        }
        guard let bucket = bucket ?? options.b2Bucket else {
            throw CommandFailure("no bucket: pass --bucket or set b2_bucket in \(optionsURL.path)")
        }
        var logger = Logger(label: "b2-backup")
        logger.logLevel = verbose ? .debug : .warning
        let client = B2Client(credentials: B2Credentials(keyID: keyID, applicationKey: key), realm: runtime.b2APIURL, logger: logger)
        return TransferContext(client: client, bucketName: bucket, prefix: AddonOptions.normalizedPrefix(prefix ?? options.b2Prefix),
                               dataDirectory: URL(fileURLWithPath: dataDirectory), logger: logger)
    }
}

struct TransferContext {
    let client: B2Client
    let bucketName: String
    let prefix: String
    let dataDirectory: URL
    let logger: Logger

    /// `<prefix>/<name>`, or the bare name without a prefix.
    func objectName(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix)/\(name)" }
}

/// A one-line failure for the terminal; the exit code is 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command body and turns any failure into one line on standard error and exit code 1.
func reportingFailures(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        FileHandle.standardError.write(Data("b2-backup: error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

public struct Upload: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Upload a file to B2 (resumes an interrupted upload of the same file).")

    @Argument(help: "The file to upload.")
    var file: String

    @Option(help: "Object name below the prefix (default: the file's base name).")
    var name: String?

    @Option(help: "Parts in flight at once.")
    var concurrency = 4

    @Option(name: .customLong("part-size"), help: "Part size in bytes (default: B2's recommendation).")
    var partSize: Int64?

    @Option(name: .customLong("limit-rate"), help: "Cap on the total upload rate, bytes per second.")
    var limitRate: Int64?

    @Option(name: .customLong("info"), help: "File info KEY=VALUE stored with the file (repeatable), e.g. ha_slug=1a2b3c4d so the catalog knows a backup.")
    var info: [String] = []

    @Option(name: .customLong("to"), help: "b2, or s3 for the second destination set by the s3_* options (same prefix rules; --part-size defaults to s3_part_size_mb).")
    var destination = "b2"

    @OptionGroup var b2: B2Options

    public init() {}

    public func validate() throws {
        guard ["b2", "s3"].contains(destination) else { throw ValidationError("--to is b2 or s3") }
        guard (1...64).contains(concurrency) else { throw ValidationError("--concurrency must be between 1 and 64") }
        for item in info where !item.contains("=") || item.hasPrefix("=") { throw ValidationError("--info takes KEY=VALUE, not '\(item)'") }
        if let limitRate, limitRate <= 0 { throw ValidationError("--limit-rate must be positive") }
    }

    var fileInfo: [String: String] {
        Dictionary(info.map { item in
            let parts = item.split(separator: "=", maxSplits: 1)
            return (String(parts[0]).lowercased(), parts.count > 1 ? String(parts[1]) : "")
        }, uniquingKeysWith: { _, last in last })
    }

    public func run() async throws {
        try await reportingFailures {
            if destination == "s3" { return try await uploadToS3() }
            let context = try b2.context()
            try FileManager.default.createDirectory(at: context.dataDirectory, withIntermediateDirectories: true)
            let store = try StateStore(path: context.dataDirectory.appendingPathComponent("state.db").path, logger: context.logger)
            let engine = UploadEngine(client: context.client, journal: StoredUploadJournal(store: store), logger: context.logger)
            let bucket = try await context.client.bucket(named: context.bucketName)
            let objectName = context.objectName(name ?? URL(fileURLWithPath: file).lastPathComponent)
            let line = ProgressLine()
            let started = ContinuousClock.now
            let result = try await engine.upload(path: file, bucket: bucket, fileName: objectName,
                                                 options: UploadOptions(concurrency: concurrency, partSize: partSize, maxBytesPerSecond: limitRate,
                                                                        fileInfo: fileInfo)) { line.show($0) }
            line.finish()
            let seconds = (ContinuousClock.now - started).seconds
            let size = result.file.contentLength ?? 0
            print("uploaded \(objectName): \(size) bytes, SHA-1 \(result.sha1), \(result.partCount) part(s)"
                  + (result.resumedParts > 0 ? ", \(result.resumedParts) resumed" : "")
                  + String(format: ", %.1fs, %.1f MiB/s", seconds, seconds > 0 ? Double(size) / 1_048_576 / seconds : 0))
        }
    }
}

extension Upload {
    /// The same upload to the S3-compatible destination of the options file (resumes like the pipeline's copy).
    func uploadToS3() async throws {
        let options = try b2.options()
        guard let bucket = b2.bucket ?? options.s3Bucket, let keyID = options.s3AccessKeyID, let secret = options.s3SecretAccessKey else {
            throw CommandFailure("no S3 destination: set s3_bucket, s3_access_key_id and s3_secret_access_key in \(b2.dataDirectory)/options.json")
        }
        var logger = Logger(label: "b2-backup")
        logger.logLevel = b2.verbose ? .debug : .warning
        let client = try S3Client(configuration: .init(endpoint: options.s3EndpointURL, region: options.s3Region, bucket: bucket, accessKeyID: keyID,
                                                       secretAccessKey: secret, addressing: options.s3PathStyle ? .path : .virtualHosted),
                                  http: HTTPClient(logger: logger), logger: logger)
        let prefix = AddonOptions.normalizedPrefix(b2.prefix ?? options.s3Prefix)
        let base = name ?? URL(fileURLWithPath: file).lastPathComponent
        let key = prefix.isEmpty ? base : "\(prefix)/\(base)"
        let uploader = S3Uploader(client: client, partSize: Int(partSize ?? Int64(options.s3PartSizeMB << 20)), concurrency: concurrency,
                                  bytesPerSecond: limitRate, logger: logger)
        let started = ContinuousClock.now
        let result = try await uploader.upload(path: file, key: key, metadata: S3RemoteStore.metadata(fileInfo)) { _, _ in }
        let seconds = (ContinuousClock.now - started).seconds
        print("uploaded \(key) to S3: \(result.size) bytes, SHA-1 \(result.sha1), \(result.parts) part(s)"
              + (result.resumedParts > 0 ? ", \(result.resumedParts) resumed" : "")
              + String(format: ", %.1fs, %.1f MiB/s", seconds, seconds > 0 ? Double(result.size) / 1_048_576 / seconds : 0))
    }
}

public struct List: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the files below the prefix.")

    @OptionGroup var b2: B2Options

    public init() {}

    public func run() async throws {
        try await reportingFailures {
            let context = try b2.context()
            let bucket = try await context.client.bucket(named: context.bucketName)
            let files = try await context.client.listFileNames(bucketID: bucket.bucketId, prefix: context.prefix.isEmpty ? "" : context.prefix + "/")
            let formatter = ISO8601DateFormatter()
            for file in files where file.action == "upload" {
                let date = file.uploadTimestamp.map { formatter.string(from: Date(timeIntervalSince1970: Double($0) / 1000)) } ?? "-"
                print("\(String(file.contentLength ?? 0).leftPadded(14))  \(date)  \(file.fileName)")
            }
        }
    }
}

public struct Download: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Download a file from B2 and verify its SHA-1.")

    @Argument(help: "Object name below the prefix.")
    var name: String

    @Argument(help: "Where to write the file.")
    var destination: String

    @OptionGroup var b2: B2Options

    public init() {}

    public func run() async throws {
        try await reportingFailures {
            let context = try b2.context()
            let engine = DownloadEngine(client: context.client, logger: context.logger)
            let result = try await engine.download(.name(bucket: context.bucketName, fileName: context.objectName(name)), to: destination)
            print("downloaded \(context.objectName(name)): \(result.bytes) bytes, SHA-1 \(result.sha1) verified"
                  + (result.resumes > 0 ? ", resumed \(result.resumes) time(s)" : ""))
        }
    }
}

/// A single updating progress line, only when standard error is a terminal.
final class ProgressLine: Sendable {
    let enabled = isatty(STDERR_FILENO) == 1

    func show(_ progress: UploadProgress) {
        guard enabled else { return }
        let percent = progress.totalBytes > 0 ? Double(progress.bytesDone) * 100 / Double(progress.totalBytes) : 100
        var text = String(format: "\r%@ %5.1f%%  %@ / %@", progress.phase.rawValue, percent, Self.bytes(progress.bytesDone), Self.bytes(progress.totalBytes))
        if progress.phase == .uploading, progress.bytesPerSecond > 0 {
            text += String(format: "  %@/s", Self.bytes(Int64(progress.bytesPerSecond)))
            if let eta = progress.secondsRemaining { text += String(format: "  ETA %d:%02d", Int(eta) / 60, Int(eta) % 60) }
        }
        FileHandle.standardError.write(Data((text + "\u{1B}[K").utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
