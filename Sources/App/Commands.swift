import ArgumentParser
import Foundation
import HTTPClient
import Logging

/// `b2-backup`: the add-on's executable.
public struct B2BackupCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "b2-backup",
        abstract: "Back up Home Assistant to Backblaze B2.",
        version: AddonVersion.current,
        subcommands: [Serve.self, Healthcheck.self, Upload.self, List.self, Download.self, Verify.self, Pull.self, Restore.self, Demo.self],
        defaultSubcommand: Serve.self
    )

    public init() {}
}

public struct Serve: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Run the add-on: backup engine and schedule, web page and REST API.")

    @Option(name: .customLong("data-dir"), help: "Folder with options.json and the state database.")
    var dataDirectory = "/data"

    @Option(name: .customLong("backup-dir"), help: "Home Assistant's local backup folder.")
    var backupDirectory = "/backup"

    @Option(help: "TCP port for ingress and the REST API.")
    var port = 8099

    @Option(name: .customLong("ingress-proxy"), help: "Address Home Assistant ingress requests come from (trusted without a token).")
    var ingressProxy = "172.30.32.2"

    public init() {}

    public func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
    }

    public func run() async throws {
        let data = URL(fileURLWithPath: dataDirectory)
        let options: AddonOptions
        let environment: RuntimeEnvironment
        do {
            options = try AddonOptions.load(from: data.appendingPathComponent("options.json"))
            environment = try RuntimeEnvironment.from(ProcessInfo.processInfo.environment)
        } catch {
            // Before logging is set up: plain stderr, and a non-zero exit the Supervisor shows.
            FileHandle.standardError.write(Data("b2-backup: configuration error: \(error)\n".utf8))
            throw ExitCode(78) // EX_CONFIG
        }
        let level = options.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "b2-backup")
        let settings = ServeSettings(dataDirectory: data, backupDirectory: URL(fileURLWithPath: backupDirectory), port: port,
                                     ingressProxy: ingressProxy, options: options, environment: environment)
        do {
            try await Application(settings: settings, logger: logger).run()
        } catch {
            logger.critical("B2 Backup cannot run", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
    }
}

/// The container's HEALTHCHECK: exit 0 when `/health` answers 200.
public struct Healthcheck: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(abstract: "Check that the running add-on answers on /health (exit 0 or 1).")

    @Option(help: "Port the add-on listens on.")
    var port = 8099

    @Option(help: "Seconds to wait for the answer.")
    var timeout = 4

    public init() {}

    public func run() async throws {
        let client = HTTPClient(configuration: .init(connectTimeout: .seconds(timeout)), logger: Logger(label: "healthcheck", factory: { _ in SwiftLogNoOpLogHandler() }))
        do {
            let response = try await client.send(.init(url: "http://127.0.0.1:\(port)/health", timeout: .seconds(timeout)))
            guard response.status == 200 else {
                print("unhealthy: HTTP \(response.status) \(response.text.prefix(500))")
                throw ExitCode.failure
            }
            print("healthy")
        } catch let error as HTTPClientError {
            print("unhealthy: \(error)")
            throw ExitCode.failure
        }
    }
}

/// The executable's entry point (kept here so the executable target holds one line).
public enum B2BackupEntry {
    public static func main() async { await B2BackupCommand.main() }
}
