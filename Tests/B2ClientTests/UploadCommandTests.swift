import B2Client
import B2Simulator
import Foundation
import Glibc
import Logging
import Storage
import Testing
import TestSupport

/// The real `b2-backup` binary against the simulator: kill -9 mid-upload, resume, memory bound.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct UploadCommandTests {
    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.build/debug/b2-backup").standardizedFileURL.path

    func launch(_ arguments: [String], simulator: B2Simulator) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        process.environment = ["B2_API_URL": simulator.realmURL, "B2_APPLICATION_KEY_ID": keyID, "B2_APPLICATION_KEY": applicationKey, "PATH": "/usr/bin:/bin"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        return (process, output)
    }

    func output(_ pipe: Pipe) -> String { String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }

    @Test func aKilledUploadResumesWithOnlyTheMissingParts() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build the executable first (swift build)")
        try await withSimulator { simulator, client, directory in
            let source = directory.path("backup.tar")
            try writeRandomFile(source, size: 8_000_000, seed: 11)
            let data = directory.path("data")
            let arguments = ["upload", source, "--bucket", bucketName, "--prefix", "homeassistant", "--data-dir", data, "--concurrency", "1"]
            // Slow enough (1 MB/s for 8 parts of 1 MB) that the kill lands in the middle.
            let (first, firstOutput) = try launch(arguments + ["--limit-rate", "1000000"], simulator: simulator)
            while await simulator.requestCount("b2_upload_part") < 3 { try await Task.sleep(for: .milliseconds(20)) }
            kill(first.processIdentifier, SIGKILL)
            await first.exited()
            #expect(first.terminationReason == .uncaughtSignal)
            _ = output(firstOutput)
            let sentBeforeKill = await simulator.requestCount("b2_upload_part")
            let journal = try StateStore(path: data + "/state.db", logger: quietLogger)
            let pending = try await journal.largeUploads()
            #expect(pending.count == 1)
            #expect(await simulator.unfinishedLargeFiles(bucket: bucketName).count == 1)

            let (second, secondOutput) = try launch(arguments, simulator: simulator)
            await second.exited()
            let text = output(secondOutput)
            #expect(second.terminationStatus == 0, "\(text)")
            #expect(text.contains("resumed"))
            let sentAfterResume = await simulator.requestCount("b2_upload_part") - sentBeforeKill
            // Only the missing parts: every part sent before the kill may have been confirmed (under load the
            // last one often is), so the resume sends between 8 - sent and 8 - sent + 1 parts, never all 8.
            #expect(sentAfterResume < 8 && sentAfterResume >= 8 - sentBeforeKill && sentAfterResume <= 8 - sentBeforeKill + 1)
            #expect(try await journal.largeUploads().isEmpty)
            #expect(await simulator.unfinishedLargeFiles(bucket: bucketName).isEmpty)
            #expect(await simulator.requestCount("b2_start_large_file") == 1) // the same large file, not a new one
            let copy = directory.path("copy.tar")
            _ = try await DownloadEngine(client: client, logger: quietLogger).download(.name(bucket: bucketName, fileName: "homeassistant/backup.tar"), to: copy)
            #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == Data(contentsOf: URL(fileURLWithPath: source)))
        }
    }

    @Test func memoryStaysFarBelowThePartSize() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build the executable first (swift build)")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/time"), "install GNU time (apt-get install time)")
        try await withSimulator(recommendedPartSize: 100_000_000, minimumPartSize: 5_000_000) { simulator, _, directory in
            let source = directory.path("big.tar")
            try writeRandomFile(source, size: 220_000_000, seed: 2)
            let run = try await spawnMeasured(["upload", source, "--bucket", bucketName, "--prefix", "p", "--data-dir", directory.path("data")],
                                              environment: ["B2_API_URL": simulator.realmURL, "B2_APPLICATION_KEY_ID": keyID, "B2_APPLICATION_KEY": applicationKey],
                                              output: directory.path("upload.log"))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("3 part(s)"))
            // Parts of 100 MB, four in flight: held in memory they would need 300+ MB. The bound is the buffers.
            #expect(run.maxRSSKiB < 64 * 1024, "peak RSS \(run.maxRSSKiB) KiB")
        }
    }

    @Test func failuresAreOneLineWithExitCode1() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build the executable first (swift build)")
        try await withSimulator { simulator, _, directory in
            let (process, pipe) = try launch(["upload", directory.path("missing.tar"), "--bucket", bucketName, "--data-dir", directory.path("data")], simulator: simulator)
            await process.exited()
            let text = output(pipe)
            #expect(process.terminationStatus == 1)
            #expect(text.hasPrefix("b2-backup: error: "))
            #expect(text.split(separator: "\n").count == 1)
            #expect(!text.contains(applicationKey))
        }
    }

    @Test func listAndDownloadCommands() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build the executable first (swift build)")
        try await withSimulator { simulator, _, directory in
            let source = directory.path("one.tar")
            try writeRandomFile(source, size: 12_345)
            let common = ["--bucket", bucketName, "--prefix", "homes/main", "--data-dir", directory.path("data")]
            let (upload, _) = try launch(["upload", source, "--name", "first.tar"] + common, simulator: simulator)
            await upload.exited()
            #expect(upload.terminationStatus == 0)
            let (list, listOutput) = try launch(["ls"] + common, simulator: simulator)
            await list.exited()
            let listing = output(listOutput)
            #expect(listing.contains("12345  ") && listing.contains("homes/main/first.tar"), "\(listing)")
            let copy = directory.path("copy.tar")
            let (download, downloadOutput) = try launch(["download", "first.tar", copy] + common, simulator: simulator)
            await download.exited()
            #expect(download.terminationStatus == 0)
            #expect(output(downloadOutput).contains("verified"))
            #expect(try sha1(ofFile: copy) == (try sha1(ofFile: source)))
        }
    }
}

/// Runs the binary under GNU time and returns its own peak RSS. (`wait4` after posix_spawn would not do:
/// Linux carries the spawning process's high-water mark across vfork+exec, so it reports the test's memory.)
func spawnMeasured(_ arguments: [String], environment: [String: String], output: String) async throws -> (status: Int32, maxRSSKiB: Int, output: String) {
    let report = output + ".rss"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/time")
    process.arguments = ["-f", "%M", "-o", report, UploadCommandTests.binary] + arguments
    process.environment = environment
    _ = FileManager.default.createFile(atPath: output, contents: nil)
    let log = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
    process.standardOutput = log
    process.standardError = log
    try process.run()
    await process.exited()
    try log.close()
    let rss = Int(((try? String(contentsOfFile: report, encoding: .utf8)) ?? "").split(separator: "\n").last ?? "") ?? Int.max
    return (process.terminationStatus, rss, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
}
