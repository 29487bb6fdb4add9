import Foundation
import Logging
@testable import Storage
import Testing

@Suite struct StorageTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A fresh directory per test, removed afterwards.
    func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("storage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(directory)
    }

    @Test func freshFileDatabaseIsMigratedAndInWALMode() async throws {
        try await withTemporaryDirectory { directory in
            let store = try StateStore(path: directory.appendingPathComponent("state.db").path, logger: logger)
            #expect(try await store.schemaVersion() == Migrations.all.last!.version)
            #expect(try await store.journalMode() == "wal")
            try await store.setSetting("install_id", "abc")
            try await store.setSetting("install_id", "def")
            #expect(try await store.setting("install_id") == "def")
            #expect(try await store.setting("missing") == nil)
        }
    }

    @Test func reopeningKeepsDataAndAppliesNothingTwice() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("state.db").path
            do {
                let store = try StateStore(path: path, logger: logger)
                try await store.setSetting("k", "v")
            }
            let connection = try SQLiteConnection(path: path)
            #expect(try Migrator.migrate(connection).isEmpty)
            #expect(try connection.query("SELECT COUNT(*) AS n FROM schema_migrations").first?["n"]?.int == Int64(Migrations.all.count))
            let store = try StateStore(path: path, logger: logger)
            #expect(try await store.setting("k") == "v")
        }
    }

    @Test func aFailingStepIsRolledBackAndNamed() throws {
        let connection = try SQLiteConnection(path: ":memory:")
        let steps = Migrations.all + [
            Migration(version: 100, name: "half-broken", sql: "CREATE TABLE partial (x INTEGER); INSERT INTO nowhere VALUES (1);"),
        ]
        #expect { try Migrator.migrate(connection, migrations: steps) } throws: { error in
            guard case .stepFailed(let version, let name, _) = error as? Migrator.Failure else { return false }
            return version == 100 && name == "half-broken"
        }
        // The good steps stay; the broken one left nothing behind.
        #expect(try Migrator.version(connection) == Migrations.all.last!.version)
        #expect(try connection.query("SELECT name FROM sqlite_master WHERE name = 'partial'").isEmpty)
    }

    @Test func aDatabaseFromANewerReleaseIsRefused() throws {
        let connection = try SQLiteConnection(path: ":memory:")
        try Migrator.migrate(connection, migrations: Migrations.all + [Migration(version: 99, name: "future", sql: "SELECT 1")])
        #expect { try Migrator.migrate(connection) } throws: { error in
            if case .newerThanSupported(99, _) = error as? Migrator.Failure { return true }
            return false
        }
    }

    @Test(arguments: [SQLValue.null, .integer(-42), .real(2.5), .text("héllo ✓"), .blob([0, 1, 255]), .blob([])])
    func valuesRoundTrip(value: SQLValue) throws {
        let connection = try SQLiteConnection(path: ":memory:")
        try connection.execute("CREATE TABLE t (v)")
        try connection.query("INSERT INTO t VALUES (?)", [value])
        let read = try connection.query("SELECT v FROM t").first?["v"]
        #expect(read == value)
    }

    @Test func errorsNameTheStatementButNotItsArguments() throws {
        let connection = try SQLiteConnection(path: ":memory:")
        #expect { try connection.query("SELECT * FROM missing_table WHERE secret = ?", [.text("hunter2")]) } throws: { error in
            let text = "\(error)"
            return text.contains("no such table: missing_table") && text.contains("SELECT * FROM missing_table") && !text.contains("hunter2")
        }
    }

    @Test func unopenableFileGivesAClearError() {
        #expect { try SQLiteConnection(path: "/nonexistent-dir/state.db") } throws: { error in
            "\(error)".contains("unable to open")
        }
    }
}

@Suite struct LargeUploadJournalTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func upload(_ id: String, name: String = "homeassistant/a.tar") -> StoredLargeUpload {
        StoredLargeUpload(fileID: id, bucketID: "bucket1", fileName: name, localPath: "/backup/a.tar", fileSize: 250_000_000,
                          modifiedMillis: 1_700_000_000_000, partSize: 100_000_000, sha1: String(repeating: "a", count: 40),
                          partSHA1s: [String(repeating: "1", count: 40), String(repeating: "2", count: 40), String(repeating: "3", count: 40)])
    }

    @Test func recordPartsAndRemoveSurviveReopening() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString).db").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let store = try StateStore(path: path, logger: logger)
            try await store.saveLargeUpload(upload("f1"))
            try await store.confirmLargeUploadPart(fileID: "f1", partNumber: 2, sha1: String(repeating: "2", count: 40))
        }
        let reopened = try StateStore(path: path, logger: logger)
        #expect(try await reopened.largeUpload(bucketID: "bucket1", fileName: "homeassistant/a.tar") == upload("f1"))
        #expect(try await reopened.confirmedLargeUploadParts(fileID: "f1") == [2: String(repeating: "2", count: 40)])
        // A new upload of the same name replaces the old record and its parts.
        try await reopened.saveLargeUpload(upload("f2"))
        #expect(try await reopened.largeUploads().map(\.fileID) == ["f2"])
        #expect(try await reopened.confirmedLargeUploadParts(fileID: "f1").isEmpty)
        try await reopened.removeLargeUpload(fileID: "f2")
        #expect(try await reopened.largeUpload(bucketID: "bucket1", fileName: "homeassistant/a.tar") == nil)
    }
}
