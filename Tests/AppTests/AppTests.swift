import Foundation
import HTTPClient
import Logging
@testable import App
import Testing

@Suite struct AddonOptionsTests {
    private func parse(_ json: String) throws(ConfigurationError) -> AddonOptions {
        try AddonOptions.parse(Data(json.utf8))
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
}

/// The real `b2-backup` binary: options file in, health out, SIGTERM → exit 0.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ServeProcessTests {
    static var binary: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/b2-backup").standardizedFileURL
    }

    func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Reads the process's log until the server says where it listens; no polling, no sleeps.
    func listeningPort(_ output: Pipe) throws -> Int {
        var text = ""
        while true {
            let data = output.fileHandleForReading.availableData
            guard !data.isEmpty else { throw CocoaError(.fileReadUnknown) } // the process ended without listening
            text += String(decoding: data, as: UTF8.self)
            if let range = text.range(of: #"http\.port=(\d+)"#, options: .regularExpression) {
                return Int(text[range].dropFirst("http.port=".count))!
            }
        }
    }

    func run(_ arguments: [String]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        let output = Pipe()
        process.standardError = output
        process.standardOutput = output
        try process.run()
        return (process, output)
    }

    @Test func servesHealthThenExitsZeroOnSIGTERM() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            Issue.record("build the executable first (swift build): \(Self.binary.path)")
            return
        }
        let data = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: data) }
        try Data(#"{"b2_prefix": "homeassistant", "log_level": "debug", "b2_key": "K001-do-not-log-me"}"#.utf8).write(to: data.appendingPathComponent("options.json"))
        let (process, output) = try run(["serve", "--data-dir", data.path, "--backup-dir", data.path, "--port", "0"])
        let port = try listeningPort(output)
        let client = HTTPClient(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let health = try await client.send(.init(url: "http://127.0.0.1:\(port)/health"))
        #expect(health.status == 200)
        #expect(health.text.contains("\"database\":\"ok\""))
        let check = try run(["healthcheck", "--port", "\(port)"]).0
        check.waitUntilExit()
        #expect(check.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: data.appendingPathComponent("state.db").path))
        process.terminate() // SIGTERM
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("B2 Backup stopped"))
        #expect(!log.contains("do-not-log-me"))
        // With the server gone the health check fails.
        let after = try run(["healthcheck", "--port", "\(port)", "--timeout", "1"]).0
        after.waitUntilExit()
        #expect(after.terminationStatus == 1)
    }

    @Test func invalidOptionsStopWithANamedError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            Issue.record("build the executable first (swift build): \(Self.binary.path)")
            return
        }
        let data = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: data) }
        try Data(#"{"log_level": "loud"}"#.utf8).write(to: data.appendingPathComponent("options.json"))
        let (process, output) = try run(["serve", "--data-dir", data.path, "--port", "0"])
        process.waitUntilExit()
        #expect(process.terminationStatus == 78)
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("option 'log_level': 'loud' is not one of"))
    }
}
