import ArgumentParser
import B2Client
import BackupArchive
import Core
import Foundation
import Logging
import Storage

/// `b2-backup verify FILE` or `--slug S`: proves a backup can be restored, without Home Assistant.
public struct Verify: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Check that a backup can be restored: a local tar file, or a backup in B2 by its slug (exit 0 restorable, 1 not, 2 flagged).")

    @Argument(help: "A backup tar file on this machine.")
    var file: String?

    @Option(help: "A backup in B2 (below the prefix), by its Home Assistant slug.")
    var slug: String?

    @Flag(help: "Read only the headers (tar, backup.json, each archive's first bytes).")
    var quick = false

    @Option(help: "The backup's password, to check protected archives (default: backup_password from the options file).")
    var password: String?

    @OptionGroup var b2: B2Options

    public init() {}

    public func validate() throws {
        guard (file == nil) != (slug == nil) else { throw ValidationError("give either a FILE or --slug") }
    }

    public func run() async throws {
        var verdict = VerificationReport.Verdict.notRestorable
        try await reportingFailures {
            let mode: VerificationMode = quick ? .quick : .full
            let options = try b2.options()
            let report: VerificationReport
            if let file {
                report = await BackupVerifier.verify(try FileByteSource(path: file), mode: mode, password: password ?? options.backupPassword)
                print(Self.describe(report, source: file, extra: []))
            } else {
                let context = try b2.context()
                let remote = B2RemoteStore(client: context.client, journal: MemoryLessJournal(), bucketName: context.bucketName, prefix: context.prefix,
                                           logger: context.logger)
                let catalog = B2Catalog(store: remote, hideInsteadOfDelete: false, manageOtherBackups: false,
                                        scratch: FileManager.default.temporaryDirectory, logger: context.logger)
                guard let entry = try await catalog.load().snapshot.entry(slug: slug!) else {
                    throw CommandFailure("no backup with slug \(slug!) below \(context.prefix.isEmpty ? "the bucket's root" : context.prefix + "/")")
                }
                let checker = RemoteRestorabilityChecker(store: remote, mode: mode, clock: SystemClock(), logger: context.logger)
                let check = await checker.check(fileName: entry.fileName, size: entry.size, sha1: entry.sha1, slug: entry.slug,
                                                password: password ?? options.backupPassword)
                report = VerificationReport(verdict: VerificationReport.Verdict(rawValue: check.verdict) ?? .notRestorable, mode: mode, slug: entry.slug,
                                            type: entry.facts.type, protected: entry.facts.protected, archives: [], problems: check.problems, bytesRead: 0)
                print(Self.describe(report, source: entry.fileName, extra: []))
            }
            verdict = report.verdict
        }
        switch verdict {
        case .restorable: return
        case .notRestorable: throw ExitCode.failure
        case .flagged: throw ExitCode(2)
        }
    }

    static func describe(_ report: VerificationReport, source: String, extra: [String]) -> String {
        var lines = ["\(source): \(report.verdict.rawValue.replacingOccurrences(of: "_", with: " ")) (\(report.mode.rawValue) check)"]
        if let slug = report.slug { lines.append("  slug \(slug), \(report.type ?? "?") backup\(report.protected == true ? ", protected" : "")") }
        for archive in report.archives {
            lines.append("  \(archive.ok ? "ok " : "BAD") \(archive.name) (\(archive.format))" + (archive.detail.map { ": \($0)" } ?? ""))
        }
        lines += report.problems.map { "  problem: \($0)" } + extra
        return lines.joined(separator: "\n")
    }
}

/// What `restore` and `pull` share: the add-on's own pipeline, from the options file and the environment.
struct PipelineCommandContext: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Folder with options.json and the state database.")
    var dataDirectory = "/data"

    @Option(name: .customLong("backup-dir"), help: "Home Assistant's local backup folder.")
    var backupDirectory = "/backup"

    @Flag(help: "Log each step to standard error.")
    var verbose = false

    func pipeline() async throws -> Pipeline {
        let data = URL(fileURLWithPath: dataDirectory)
        let options = try AddonOptions.load(from: data.appendingPathComponent("options.json"))
        let environment = try RuntimeEnvironment.from(ProcessInfo.processInfo.environment)
        var logger = Logger(label: "b2-backup")
        logger.logLevel = verbose ? .debug : .warning
        let settings = ServeSettings(dataDirectory: data, backupDirectory: URL(fileURLWithPath: backupDirectory), port: 0, ingressProxy: "",
                                     options: options, environment: environment)
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let store = try StateStore(path: data.appendingPathComponent("state.db").path, logger: logger)
        guard let pipeline = try await PipelineAssembly.make(settings: settings, store: store, logger: logger) else {
            throw CommandFailure("set b2_key_id, b2_key and b2_bucket in \(data.appendingPathComponent("options.json").path), and SUPERVISOR_TOKEN")
        }
        return pipeline
    }

    /// Runs a pull or restore job to its end and prints the outcome.
    func run(slug: String, _ options: RestoreOptions, pullOnly: Bool) async throws {
        let pipeline = try await pipeline()
        let started: Job
        do { started = try await pipeline.startRestore(slug: slug, options, pullOnly: pullOnly) } catch {
            throw CommandFailure(Self.describe(error))
        }
        let job = await pipeline.engine.wait(for: started.id) ?? started
        if let error = job.error { throw CommandFailure("\(error.step?.activity ?? "") failed: \(error.message)") }
        print(pullOnly ? "\(slug) is in Home Assistant (Settings → System → Backups)" : "restore of \(slug) finished")
    }

    static func describe(_ refusal: EngineRefusal) -> String {
        switch refusal {
        case .jobRunning(let id): "another job (\(id)) is running"
        case .invalidRequest(let error): error.message
        case .notConfigured(let missing): "missing options: \(missing.joined(separator: ", "))"
        case .notFound(let slug): "no backup with slug \(slug) in B2 or in Home Assistant"
        }
    }
}

/// `b2-backup pull SLUG`: brings a backup from B2 into Home Assistant's backup list.
public struct Pull: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Download a backup from B2 (SHA-1 checked) and hand it to Home Assistant.")

    @Argument(help: "The backup's slug (see GET /api/backups or `b2-backup verify --slug`).")
    var slug: String

    @OptionGroup var context: PipelineCommandContext

    public init() {}

    public func run() async throws {
        try await reportingFailures { try await context.run(slug: slug, RestoreOptions(), pullOnly: true) }
    }
}

/// `b2-backup restore SLUG [--partial --homeassistant --addon A --folder F]`.
public struct Restore: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Restore a backup from B2 or Home Assistant (pulled first when needed). A full restore stops this add-on too.")

    @Argument(help: "The backup's slug.")
    var slug: String

    @Flag(help: "Restore only what --homeassistant, --addon and --folder name.")
    var partial = false

    @Flag(help: "Partial: restore Home Assistant's configuration.")
    var homeassistant = false

    @Option(name: .customLong("addon"), help: "Partial: an add-on slug to restore (repeatable).")
    var addons: [String] = []

    @Option(name: .customLong("folder"), help: "Partial: ssl, share, media or addons/local (repeatable).")
    var folders: [String] = []

    @Option(help: "The backup's password (default: backup_password from the options file).")
    var password: String?

    @OptionGroup var context: PipelineCommandContext

    public init() {}

    public func run() async throws {
        let options = partial
            ? RestoreOptions(type: "partial", password: password, homeassistant: homeassistant ? true : nil, addons: addons.isEmpty ? nil : addons,
                             folders: folders.isEmpty ? nil : folders)
            : RestoreOptions(type: "full", password: password)
        try await reportingFailures { try await context.run(slug: slug, options, pullOnly: false) }
    }
}
