import BackupArchive
import Foundation
import Testing

@Suite struct LocalBackupIndexTests {
    final class Folder {
        let url: URL
        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("index-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(at: url) }
        func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    }

    /// A backup tar as the Supervisor lays it out: inner archives first, `./backup.json` last.
    func writeBackup(_ path: String, slug: String, name: String, protected: String = "false") throws {
        var bytes: [UInt8] = []
        let writer = TarWriter { bytes += $0 }
        try writer.add(TarEntry(name: "homeassistant.tar.gz", size: 3), contents: [1, 2, 3])
        let json = #"{"slug":"\#(slug)","version":2,"name":"\#(name)","date":"2026-11-30T03:30:00.000001+00:00","type":"partial","protected":\#(protected),"compressed":true,"homeassistant":{"version":"2026.11.2","exclude_database":false,"size":0.0},"folders":["share"],"addons":[{"slug":"core_mosquitto","name":"Mosquitto broker","version":"6.5.1","size":0.0}],"repositories":[],"extra":{}}"#
        try writer.add(TarEntry(name: "./backup.json", size: Int64(json.utf8.count)), contents: Array(json.utf8))
        try writer.finish()
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func findsBackupsByTheirOwnSlugNotTheFileName() async throws {
        let folder = try Folder()
        try writeBackup(folder.path("Automatic_backup_2026.11.2_2026-11-30_03.30_00000001.tar"), slug: "a1b2c3d4", name: "Automatic backup")
        try writeBackup(folder.path("deadbeef.tar"), slug: "0f0f0f0f", name: "Named by slug, but another one", protected: #""aes128""#)
        try Data("not a tar at all".utf8).write(to: URL(fileURLWithPath: folder.path("junk.tar")))
        try Data().write(to: URL(fileURLWithPath: folder.path("upload.tar.partial")))
        let index = LocalBackupIndex(directory: folder.url)
        let scan = await index.scan()
        #expect(Set(scan.backups.map(\.metadata.slug)) == ["a1b2c3d4", "0f0f0f0f"])
        #expect(scan.problems.map { URL(fileURLWithPath: $0.path).lastPathComponent } == ["junk.tar"])
        let found = try #require(await index.backup(slug: "a1b2c3d4"))
        #expect(found.path.hasSuffix("Automatic_backup_2026.11.2_2026-11-30_03.30_00000001.tar"))
        #expect(found.metadata.addons.map(\.slug) == ["core_mosquitto"])
        #expect(found.metadata.folders == ["share"])
        #expect(await index.backup(slug: "0f0f0f0f")?.metadata.protected == true) // v1 stores a string here
        #expect(await index.backup(slug: "ffffffff") == nil)
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/fixtures/backups").standardizedFileURL
    static var fixturesAvailable: Bool { FileManager.default.fileExists(atPath: fixtures.appendingPathComponent("full-plain.tar").path) }

    /// The real-format fixtures: good backups are indexed, broken ones are reported with a reason.
    @Test(.enabled(if: fixturesAvailable, "../shared/fixtures/backups is not beside this checkout"))
    func indexesTheSharedFixtures() async throws {
        let scan = await LocalBackupIndex(directory: Self.fixtures).scan()
        let slugs = Set(scan.backups.map(\.metadata.slug))
        #expect(slugs.contains("5efcaa2d")) // full-plain.tar
        #expect(slugs.contains("fae8136f")) // partial-plain.tar
        let broken = Set(scan.problems.map { URL(fileURLWithPath: $0.path).lastPathComponent })
        #expect(broken.contains("broken-truncated.tar"))
        #expect(broken.contains("broken-backup-json.tar"))
        #expect(scan.backups.first { $0.metadata.slug == "5efcaa2d" }?.metadata.type == "full")
    }

    @Test func filesAreReadOncePerSizeAndModificationTime() async throws {
        let folder = try Folder()
        let path = folder.path("one.tar")
        try writeBackup(path, slug: "11111111", name: "first")
        let index = LocalBackupIndex(directory: folder.url)
        _ = await index.scan()
        _ = await index.scan()
        #expect(await index.filesRead == 1)
        // Replaced in place (same name, new content and time): read again.
        try writeBackup(path, slug: "22222222", name: "second, longer name")
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: path)
        #expect(await index.scan().backups.map(\.metadata.slug) == ["22222222"])
        #expect(await index.filesRead == 2)
        try FileManager.default.removeItem(atPath: path)
        #expect(await index.scan().backups.isEmpty)
    }
}
