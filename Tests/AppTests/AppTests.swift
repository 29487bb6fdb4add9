import Foundation
import HTTPClient
import Logging
@testable import App
import Testing
import TestSupport

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
    func listeningPort(_ output: Pipe) async throws -> Int {
        return try await onOwnThread { try Self.readPort(output) }
    }

    static func readPort(_ output: Pipe) throws -> Int {
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
        let port = try await listeningPort(output)
        let client = HTTPClient(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let health = try await client.send(.init(url: "http://127.0.0.1:\(port)/health"))
        #expect(health.status == 200)
        #expect(health.text.contains("\"database\":\"ok\""))
        let check = try run(["healthcheck", "--port", "\(port)"]).0
        await check.exited()
        #expect(check.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: data.appendingPathComponent("state.db").path))
        process.terminate() // SIGTERM
        await process.exited()
        #expect(process.terminationStatus == 0)
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("B2 Backup stopped"))
        #expect(!log.contains("do-not-log-me"))
        // With the server gone the health check fails.
        let after = try run(["healthcheck", "--port", "\(port)", "--timeout", "1"]).0
        await after.exited()
        #expect(after.terminationStatus == 1)
    }

    @Test func invalidOptionsStopWithANamedError() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            Issue.record("build the executable first (swift build): \(Self.binary.path)")
            return
        }
        let data = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: data) }
        try Data(#"{"log_level": "loud"}"#.utf8).write(to: data.appendingPathComponent("options.json"))
        let (process, output) = try run(["serve", "--data-dir", data.path, "--port", "0"])
        await process.exited()
        #expect(process.terminationStatus == 78)
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("option 'log_level': 'loud' is not one of"))
    }
}
