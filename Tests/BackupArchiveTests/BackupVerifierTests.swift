import BackupArchive
import Compression
import Foundation
import Synchronization
import Testing

/// A backup held in memory, for generated and deliberately damaged backups.
struct MemoryByteSource: ByteSource {
    let bytes: [UInt8]
    var size: Int64 { Int64(bytes.count) }
    func read(offset: Int64, length: Int) async throws -> [UInt8] {
        let start = Int(min(max(0, offset), size))
        return Array(bytes[start..<min(bytes.count, start + length)])
    }
}

/// Wraps a source and records every read, to hold full mode to its one-sequential-pass promise.
final class RecordingByteSource: ByteSource {
    let inner: any ByteSource
    private let log = Mutex<[(offset: Int64, requested: Int, returned: Int)]>([])
    /// Called on each read, before it returns (memory sampling).
    private let onRead: @Sendable () -> Void

    init(_ inner: any ByteSource, onRead: @escaping @Sendable () -> Void = {}) {
        self.inner = inner
        self.onRead = onRead
    }

    var size: Int64 { inner.size }
    var reads: [(offset: Int64, requested: Int, returned: Int)] { log.withLock { $0 } }

    func read(offset: Int64, length: Int) async throws -> [UInt8] {
        let bytes = try await inner.read(offset: offset, length: length)
        log.withLock { $0.append((offset, length, bytes.count)) }
        onRead()
        return bytes
    }

    /// Fails the test unless the reads cover the source once, from 0 to the end, each starting where the
    /// previous one ended, none larger than `maxRead`.
    func expectOneSequentialPass(maxRead: Int = 1 << 20, sourceLocation: SourceLocation = #_sourceLocation) {
        var expected: Int64 = 0
        for read in reads {
            #expect(read.offset == expected, "read at \(read.offset), expected \(expected): not sequential", sourceLocation: sourceLocation)
            #expect(read.requested <= maxRead, "a read of \(read.requested) bytes", sourceLocation: sourceLocation)
            expected = read.offset + Int64(read.returned)
        }
        #expect(expected == size, "the reads end at \(expected) of \(size)", sourceLocation: sourceLocation)
    }
}

/// One row of the fixtures README: a file, a mode, a password, and what the verifier must say.
struct FixtureCase: Sendable, CustomTestStringConvertible {
    let file: String
    let mode: VerificationMode
    var password: String? = nil
    let verdict: VerificationReport.Verdict
    /// A piece of text one of the problems must contain.
    var problem: String? = nil

    var testDescription: String { "\(file) \(mode.rawValue)\(password.map { " password \($0)" } ?? "") → \(verdict.rawValue)" }
}

@Suite(.serialized, .timeLimit(.minutes(5)))
struct BackupVerifierTests {
    static let right = "fixture-password-1"
    static let wrong = "fixture-password-2"

    static let cases: [FixtureCase] = {
        var cases: [FixtureCase] = []
        for mode in [VerificationMode.full, .quick] {
            cases += [
                FixtureCase(file: "full-plain.tar", mode: mode, verdict: .restorable),
                FixtureCase(file: "partial-plain.tar", mode: mode, verdict: .restorable),
                FixtureCase(file: "full-protected.tar", mode: mode, verdict: .restorable),
                FixtureCase(file: "full-protected.tar", mode: mode, password: right, verdict: .restorable),
                FixtureCase(file: "full-protected.tar", mode: mode, password: wrong, verdict: .notRestorable, problem: "password is wrong"),
                FixtureCase(file: "partial-protected-v2.tar", mode: mode, verdict: .restorable),
                FixtureCase(file: "partial-protected-v2.tar", mode: mode, password: right, verdict: .restorable),
                FixtureCase(file: "partial-protected-v2.tar", mode: mode, password: wrong, verdict: .notRestorable, problem: "password is wrong"),
                FixtureCase(file: "broken-missing-archive.tar", mode: mode, verdict: .notRestorable,
                            problem: "backup.json lists core_mosquitto but core_mosquitto.tar.gz is missing"),
                FixtureCase(file: "broken-truncated.tar", mode: mode, verdict: .notRestorable, problem: "outer tar truncated"),
                FixtureCase(file: "lying-protected.tar", mode: mode, verdict: .flagged,
                            problem: "protected is claimed but the archives are stored unencrypted"),
                FixtureCase(file: "broken-backup-json.tar", mode: mode, verdict: .notRestorable, problem: "backup.json is not valid JSON"),
            ]
        }
        // Only inflating the whole stream finds the flipped bit: quick mode cannot, and says so by passing it.
        cases.append(FixtureCase(file: "broken-inner-gzip-crc.tar", mode: .full, verdict: .notRestorable,
                                 problem: "45df7312_zigbee2mqtt.tar.gz: its gzip data is corrupt (zlib: incorrect data check)"))
        cases.append(FixtureCase(file: "broken-inner-gzip-crc.tar", mode: .quick, verdict: .restorable))
        return cases
    }()

    static func fixture(_ name: String) throws -> FileByteSource {
        try FileByteSource(path: LocalBackupIndexTests.fixtures.appendingPathComponent(name).path)
    }

    @Test(.enabled(if: LocalBackupIndexTests.fixturesAvailable, "../shared/fixtures/backups is not beside this checkout"), arguments: cases)
    func fixtureVerdicts(_ fixture: FixtureCase) async throws {
        let source = RecordingByteSource(try Self.fixture(fixture.file))
        let report = await BackupVerifier.verify(source, mode: fixture.mode, password: fixture.password)
        #expect(report.verdict == fixture.verdict, "\(report.problems)")
        #expect(report.mode == fixture.mode)
        if let problem = fixture.problem {
            #expect(report.problems.contains { $0.contains(problem) }, "\(report.problems)")
        } else {
            #expect(report.problems.isEmpty)
        }
        if fixture.mode == .full {
            source.expectOneSequentialPass()
            #expect(report.bytesRead == source.size)
        }
        #expect(report.bytesRead == source.reads.reduce(0) { $0 + Int64($1.returned) })
    }

    @Test(.enabled(if: LocalBackupIndexTests.fixturesAvailable, "../shared/fixtures/backups is not beside this checkout"))
    func fullPlainReportsEveryArchive() async throws {
        let report = await BackupVerifier.verify(try Self.fixture("full-plain.tar"), mode: .full)
        #expect(report.slug == "5efcaa2d")
        #expect(report.type == "full")
        #expect(report.protected == false)
        #expect(report.archives.map(\.name) == [
            "homeassistant.tar.gz", "core_mosquitto.tar.gz", "45df7312_zigbee2mqtt.tar.gz", "share.tar.gz",
            "addons_local.tar.gz", "ssl.tar.gz", "media.tar.gz", "supervisor.tar.gz",
        ])
        #expect(report.archives.allSatisfy { $0.ok && $0.format == "gzip" && $0.detail == nil })
    }

    @Test(.enabled(if: LocalBackupIndexTests.fixturesAvailable, "../shared/fixtures/backups is not beside this checkout"))
    func encryptedArchivesSayWhatWasChecked() async throws {
        let without = await BackupVerifier.verify(try Self.fixture("full-protected.tar"), mode: .full)
        #expect(without.protected == true)
        #expect(without.archives.count == 8)
        #expect(without.archives.allSatisfy { $0.format == "securetar-v3" && $0.ok && $0.detail?.contains("without the password") == true })
        let with = await BackupVerifier.verify(try Self.fixture("full-protected.tar"), mode: .full, password: Self.right)
        #expect(with.archives.allSatisfy { $0.format == "securetar-v3" && $0.ok && $0.detail == nil }) // content decrypted and checked
        let v2 = await BackupVerifier.verify(try Self.fixture("partial-protected-v2.tar"), mode: .full, password: Self.right)
        #expect(v2.archives.map(\.format) == ["securetar-v2", "securetar-v2"])
        #expect(v2.archives.allSatisfy { $0.ok && $0.detail == nil })
        #expect(v2.slug == "73141166")
    }

    @Test(.enabled(if: LocalBackupIndexTests.fixturesAvailable, "../shared/fixtures/backups is not beside this checkout"))
    func expectedSlugMustMatch() async throws {
        let other = await BackupVerifier.verify(try Self.fixture("full-plain.tar"), mode: .quick, expectedSlug: "fae8136f")
        #expect(other.verdict == .notRestorable)
        #expect(other.problems == ["backup.json has slug 5efcaa2d, expected fae8136f: this is another backup"])
        let same = await BackupVerifier.verify(try Self.fixture("full-plain.tar"), mode: .full, expectedSlug: "5efcaa2d")
        #expect(same.verdict == .restorable)
    }

    /// Damage inside encrypted content is found only by decrypting: the MAC (v3) or the gzip inside (v2).
    @Test(.enabled(if: LocalBackupIndexTests.fixturesAvailable, "../shared/fixtures/backups is not beside this checkout"),
          arguments: ["full-protected.tar", "partial-protected-v2.tar"])
    func damagedCiphertextIsFoundWithThePassword(_ file: String) async throws {
        var bytes = [UInt8](try Data(contentsOf: LocalBackupIndexTests.fixtures.appendingPathComponent(file)))
        // homeassistant.tar.gz is first: its header block, then data; flip a byte well past the SecureTar header.
        let members = try members(TarReader(bytes: bytes))
        let target = try #require(members.first { $0.entry.name == "homeassistant.tar.gz" }?.entry)
        bytes[Int(target.dataOffset) + 4000] ^= 0x10
        let source = MemoryByteSource(bytes: bytes)
        let damaged = await BackupVerifier.verify(source, mode: .full, password: Self.right)
        #expect(damaged.verdict == .notRestorable)
        #expect(damaged.problems.contains { $0.hasPrefix("homeassistant.tar.gz: ") }, "\(damaged.problems)")
        if file == "full-protected.tar" { #expect(damaged.problems.contains { $0.contains("fails its MAC") }) }
        // Without the password (or in a quick check) the damage cannot be seen.
        #expect(await BackupVerifier.verify(source, mode: .full).verdict == .restorable)
    }

    @Test(.enabled(if: LocalBackupIndexTests.fixturesAvailable, "../shared/fixtures/backups is not beside this checkout"),
          arguments: [VerificationMode.full, .quick])
    func truncationNamesTheArchiveCutShort(_ mode: VerificationMode) async throws {
        let report = await BackupVerifier.verify(try Self.fixture("broken-truncated.tar"), mode: mode)
        #expect(report.problems.first?.hasPrefix("outer tar truncated: share.tar.gz is cut short: 1308 of its 2616 bytes are present") == true)
        #expect(report.problems.contains("the backup has no ./backup.json"))
        #expect(report.archives.map(\.name) == ["homeassistant.tar.gz", "core_mosquitto.tar.gz", "45df7312_zigbee2mqtt.tar.gz", "share.tar.gz"])
        #expect(report.archives.map(\.ok) == [true, true, true, false])
        #expect(report.slug == nil)
    }

    // MARK: Generated backups

    /// `compressed: false` backups hold bare tars named `.tar`; full mode parses them all the same.
    @Test func uncompressedBackupsHoldBareTars() async throws {
        var inner: [UInt8] = []
        let writer = TarWriter { inner += $0 }
        try writer.add(TarEntry(name: "./", kind: .directory))
        try writer.add(TarEntry(name: "./addon.json"), contents: Array("{}".utf8))
        try writer.finish()
        let json = GeneratedBackup.manifest(protected: false, addons: ["core_ssh"])
            .replacingOccurrences(of: #""compressed":true"#, with: #""compressed":false"#)
            .replacingOccurrences(of: #""homeassistant":{"version":"2026.9.2","exclude_database":false,"size":0.0}"#, with: #""homeassistant":null"#)
        let good = try GeneratedBackup.make(archives: [("core_ssh.tar", inner)], json: json)
        let report = await BackupVerifier.verify(MemoryByteSource(bytes: good), mode: .full)
        #expect(report.verdict == .restorable, "\(report.problems)")
        #expect(report.archives.map(\.format) == ["tar"])
        var damaged = inner
        damaged[600] ^= 1 // inside the second header: its checksum no longer matches
        let bad = try GeneratedBackup.make(archives: [("core_ssh.tar", damaged)], json: json)
        let badReport = await BackupVerifier.verify(MemoryByteSource(bytes: bad), mode: .full)
        #expect(badReport.verdict == .notRestorable)
        #expect(badReport.problems.first?.hasPrefix("core_ssh.tar: its inner tar is damaged: header checksum") == true, "\(badReport.problems)")
    }

    /// A 64 MiB backup (incompressible data) verifies in 1 MiB sequential reads with memory that does
    /// not grow with it; a quick check reads a sliver of it.
    @Test func largeBackupStreamsInBoundedMemory() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("verifier-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("large.tar").path
        try GeneratedBackup.writeLarge(to: path, randomBytes: 64 << 20)

        let baseline = residentBytes()
        let peak = Mutex<Int>(baseline)
        let source = RecordingByteSource(try FileByteSource(path: path)) {
            let now = residentBytes()
            peak.withLock { $0 = max($0, now) }
        }
        #expect(source.size > 64 << 20)
        let report = await BackupVerifier.verify(source, mode: .full)
        #expect(report.verdict == .restorable, "\(report.problems)")
        #expect(report.archives.map(\.name) == ["homeassistant.tar.gz", "local_big.tar.gz"])
        source.expectOneSequentialPass()
        #expect(source.reads.count >= 64)
        let growth = peak.withLock { $0 } - baseline
        #expect(growth < 32 << 20, "resident memory grew by \(growth >> 20) MiB while verifying a 64 MiB backup")

        let quick = RecordingByteSource(try FileByteSource(path: path))
        let quickReport = await BackupVerifier.verify(quick, mode: .quick)
        #expect(quickReport.verdict == .restorable)
        #expect(quickReport.bytesRead < 512 << 10, "quick mode read \(quickReport.bytesRead) bytes")
    }

    @Test func encryptedArchiveInAnUnprotectedBackupFails() async throws {
        var header = Array("SecureTar".utf8) + [3] + [UInt8](repeating: 0, count: 6)
        header += [0, 0, 0, 0, 0, 0, 0, 10] + [UInt8](repeating: 0, count: 8) + [UInt8](repeating: 7, count: 104)
        let archive = header + [UInt8](repeating: 9, count: 10 + 17)
        let bytes = try GeneratedBackup.make(archives: [("homeassistant.tar.gz", archive)], protected: false, addons: [])
        let report = await BackupVerifier.verify(MemoryByteSource(bytes: bytes), mode: .quick)
        #expect(report.verdict == .notRestorable)
        #expect(report.problems.contains { $0.contains("homeassistant.tar.gz: it is encrypted (SecureTar) but backup.json says protected: false") })
    }

    @Test func secureTarSizeMustMatchItsHeader() async throws {
        var header = Array("SecureTar".utf8) + [3] + [UInt8](repeating: 0, count: 6)
        header += [0, 0, 0, 0, 0, 0, 0, 10] + [UInt8](repeating: 0, count: 8) + [UInt8](repeating: 7, count: 104)
        let archive = header + [UInt8](repeating: 9, count: 10 + 16) // one byte short of 136 + 10 + 17
        let bytes = try GeneratedBackup.make(archives: [("homeassistant.tar.gz", archive)], protected: true, addons: [])
        let report = await BackupVerifier.verify(MemoryByteSource(bytes: bytes), mode: .quick)
        #expect(report.verdict == .notRestorable)
        #expect(report.archives.first?.detail?.contains("makes an entry of 163 bytes, but the entry has 162") == true)
    }

    @Test func addonArchivesNeedAddonJSON() async throws {
        let inner = try GeneratedBackup.gzipTar([("./", nil), ("data/options.json", Array("{}".utf8))])
        let bytes = try GeneratedBackup.make(archives: [("homeassistant.tar.gz", try GeneratedBackup.homeAssistantArchive()),
                                                        ("core_mosquitto.tar.gz", inner)],
                                             protected: false, addons: ["core_mosquitto"])
        let full = await BackupVerifier.verify(MemoryByteSource(bytes: bytes), mode: .full)
        #expect(full.verdict == .notRestorable)
        #expect(full.problems == ["core_mosquitto.tar.gz: it has no ./addon.json, which the restore of an add-on needs"])
    }

    @Test func unknownMembersAndUnlistedArchivesOnlyWarn() async throws {
        let bytes = try GeneratedBackup.make(archives: [("homeassistant.tar.gz", try GeneratedBackup.homeAssistantArchive()),
                                                        ("notes.txt", Array("hello".utf8)),
                                                        ("leftover.tar.gz", Array("not gzip at all".utf8))],
                                             protected: false, addons: [])
        let report = await BackupVerifier.verify(MemoryByteSource(bytes: bytes), mode: .full)
        #expect(report.verdict == .restorable)
        #expect(report.problems.count == 2)
        #expect(report.problems.allSatisfy { $0.hasPrefix("warning: ") })
        #expect(report.archives.map(\.ok) == [true, false])
    }

    @Test func unsafeNamesAreNotRestorable() async throws {
        let bytes = try GeneratedBackup.make(archives: [("homeassistant.tar.gz", try GeneratedBackup.homeAssistantArchive()),
                                                        ("../evil.tar.gz", try GeneratedBackup.homeAssistantArchive())],
                                             protected: false, addons: [])
        let report = await BackupVerifier.verify(MemoryByteSource(bytes: bytes), mode: .quick)
        #expect(report.verdict == .notRestorable)
        #expect(report.problems.contains { $0.contains("unsafe member names") && $0.contains("../evil.tar.gz") })
    }

    @Test func trailingGarbageAfterGzipIsCaught() async throws {
        let archive = try GeneratedBackup.homeAssistantArchive() + [1, 2, 3]
        let bytes = try GeneratedBackup.make(archives: [("homeassistant.tar.gz", archive)], protected: false, addons: [])
        let report = await BackupVerifier.verify(MemoryByteSource(bytes: bytes), mode: .full)
        #expect(report.problems == ["homeassistant.tar.gz: it has data after the end of its gzip stream"])
    }

    @Test func backupJSONSchemaIsEnforced() async throws {
        let archive = try GeneratedBackup.homeAssistantArchive()
        for (json, problem) in [
            (#"{"slug":"a1b2c3d4","name":"x","date":"2026-01-01T00:00:00+00:00"}"#, "backup.json has no type"),
            (#"{"slug":"a1b2c3d4","name":"x","date":"d","type":"full","folders":["tmp"]}"#, "backup.json lists unknown folder tmp"),
            (#"{"slug":"a1b2c3d4","name":"x","date":"d","type":"full","protected":1}"#, "backup.json: protected is not true or false"),
            (#"[1,2]"#, "backup.json is not a JSON object"),
        ] {
            let bytes = try GeneratedBackup.make(archives: [("homeassistant.tar.gz", archive)], json: json)
            let report = await BackupVerifier.verify(MemoryByteSource(bytes: bytes), mode: .quick)
            #expect(report.verdict == .notRestorable)
            #expect(report.problems.contains(problem), "\(report.problems)")
        }
    }

    @Test func readFailuresAreReported() async throws {
        struct Failing: ByteSource {
            var size: Int64 { 10240 }
            func read(offset: Int64, length: Int) async throws -> [UInt8] { throw CocoaError(.fileReadUnknown) }
        }
        for mode in [VerificationMode.full, .quick] {
            let report = await BackupVerifier.verify(Failing(), mode: mode)
            #expect(report.verdict == .notRestorable)
            #expect(report.problems.first?.hasPrefix("cannot read the backup at byte 0") == true)
        }
    }
}

/// The resident set size of this process, from /proc (Linux).
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kib * 1024
}

/// Backups written the way the Supervisor lays them out, for cases the fixtures do not cover.
enum GeneratedBackup {
    static func gzipTar(_ members: [(name: String, data: [UInt8]?)]) throws -> [UInt8] {
        var tar: [UInt8] = []
        let writer = TarWriter { tar += $0 }
        for member in members {
            if let data = member.data {
                try writer.add(TarEntry(name: member.name), contents: data)
            } else {
                try writer.add(TarEntry(name: member.name, kind: .directory))
            }
        }
        try writer.finish()
        return try Gzip.compress(tar, level: 6)
    }

    static func homeAssistantArchive() throws -> [UInt8] {
        try gzipTar([("./", nil), ("./homeassistant.json", Array("{}".utf8)), ("data/configuration.yaml", Array("default_config:\n".utf8))])
    }

    static func manifest(protected: Bool, addons: [String]) -> String {
        let list = addons.map { #"{"slug":"\#($0)","name":"\#($0)","version":"1.0","size":0.0}"# }.joined(separator: ",")
        return #"{"slug":"a1b2c3d4","version":2,"name":"Generated","date":"2026-09-14T03:00:04.512873+00:00","type":"partial","#
            + #""supervisor_version":"2026.08.0","extra":{},"addons":[\#(list)],"repositories":[],"folders":[],"#
            + #""homeassistant":{"version":"2026.9.2","exclude_database":false,"size":0.0},"compressed":true,"protected":\#(protected)}"#
    }

    static func make(archives: [(String, [UInt8])], protected: Bool = false, addons: [String] = [], json: String? = nil) throws -> [UInt8] {
        var bytes: [UInt8] = []
        let writer = TarWriter { bytes += $0 }
        for (name, data) in archives { try writer.add(TarEntry(name: name, mtime: 1_789_000_000.5), contents: data) }
        let text = Array((json ?? manifest(protected: protected, addons: addons)).utf8)
        try writer.add(TarEntry(name: "./backup.json"), contents: text)
        try writer.finish()
        return bytes
    }

    /// A backup file whose homeassistant.tar.gz holds `randomBytes` of incompressible data, plus a small
    /// add-on archive, written to disk in pieces (the test itself must not hold it either).
    static func writeLarge(to path: String, randomBytes: Int) throws {
        let gzipPath = path + ".inner.gz"
        _ = FileManager.default.createFile(atPath: gzipPath, contents: nil)
        do {
            let out = try FileHandle(forWritingTo: URL(fileURLWithPath: gzipPath))
            defer { try? out.close() }
            let deflater = try Deflater(format: .gzip, level: 1)
            let inner = TarWriter { chunk in try out.write(contentsOf: deflater.compress(chunk)) }
            try inner.add(TarEntry(name: "./", kind: .directory))
            try inner.begin(TarEntry(name: "data/home-assistant_v2.db", size: Int64(randomBytes)))
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            for _ in 0..<(randomBytes / chunk.count) {
                chunk.withUnsafeMutableBytes { raw in
                    let words = raw.bindMemory(to: UInt64.self)
                    for index in words.indices {
                        state ^= state << 13
                        state ^= state >> 7
                        state ^= state << 17
                        words[index] = state
                    }
                }
                try inner.write(chunk)
            }
            try inner.end()
            try inner.finish()
            try out.write(contentsOf: deflater.finish())
        }
        let gzipSize = try FileManager.default.attributesOfItem(atPath: gzipPath)[.size] as! Int
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? out.close() }
        let writer = TarWriter(fileHandle: out)
        try writer.begin(TarEntry(name: "homeassistant.tar.gz", size: Int64(gzipSize), mtime: 1_789_000_000.5))
        let input = try FileHandle(forReadingFrom: URL(fileURLWithPath: gzipPath))
        while let data = try input.read(upToCount: 1 << 20), !data.isEmpty { try writer.write([UInt8](data)) }
        try input.close()
        try writer.end()
        try FileManager.default.removeItem(atPath: gzipPath)
        let addon = try gzipTar([("./", nil), ("./addon.json", Array(#"{"version":"1.0"}"#.utf8))])
        try writer.add(TarEntry(name: "local_big.tar.gz", mtime: 1_789_000_000.5), contents: addon)
        try writer.add(TarEntry(name: "./backup.json"), contents: Array(manifest(protected: false, addons: ["local_big"]).utf8))
        try writer.finish()
    }
}
