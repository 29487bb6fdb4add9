import BackupArchive
import Compression
import Foundation
import SupervisorSimulator
import Testing

/// The tar reader against backups the real Supervisor (Python) wrote.
@Suite struct FixtureTarTests {
    @Test(.enabled(if: Fixtures.available, "../shared/fixtures/backups is not in this checkout"))
    func readsTheFullFixtureAsPythonWroteIt() throws {
        let all = try members(of: Fixtures.url("full-plain.tar"))
        #expect(all.map(\.entry.name) == ["homeassistant.tar.gz", "core_mosquitto.tar.gz", "45df7312_zigbee2mqtt.tar.gz", "share.tar.gz",
                                          "addons_local.tar.gz", "ssl.tar.gz", "media.tar.gz", "supervisor.tar.gz", "./backup.json"])
        #expect(all.dropLast().allSatisfy { $0.entry.paxRecords["mtime"] != nil })
        #expect(all.last?.entry.paxRecords.isEmpty == true)
        let json = try JSONValue.parse(try #require(all.last?.data))
        #expect(json["slug"] == "5efcaa2d")
        #expect(json["version"] == 2)
        #expect(json["type"] == "full")
        #expect(json["date"] == "2026-09-14T03:00:04.512873+00:00")
        #expect(json["homeassistant"]?["size"] == .double(0.0))
        #expect(json["folders"] == ["share", "addons/local", "ssl", "media"])
        #expect(json["addons"]?.arrayValue?.map { $0["slug"]?.stringValue } == ["core_mosquitto", "45df7312_zigbee2mqtt"])
        #expect(json["crypto"] == nil)
        // The slug is sha1("{date} - {name}".lower())[:8].
        #expect(String(sha1(Array("2026-09-14T03:00:04.512873+00:00 - \(json["name"]!.stringValue!)".lowercased().utf8)).prefix(8)) == "5efcaa2d")
        // Inner archives: gzip with CRC, then a PAX tar with addon.json for add-ons.
        let mosquitto = try Gzip.decompress(all[1].data)
        let inner = try members(TarReader(bytes: mosquitto))
        #expect(inner.map(\.entry.normalizedName).contains("addon.json"))
        #expect(inner.first?.entry.name == "./")
        #expect(try TarReader.backupJSON(in: Fixtures.url("full-plain.tar")).flatMap { try JSONValue.parse($0)["slug"] } == "5efcaa2d")
    }

    @Test(.enabled(if: Fixtures.available, "../shared/fixtures/backups is not in this checkout"))
    func truncatedFixtureIsRefusedAndBrokenJSONStillReads() throws {
        #expect(throws: TarError.self) { _ = try members(of: Fixtures.url("broken-truncated.tar")) }
        #expect(throws: TarError.self) { _ = try TarReader.backupJSON(in: Fixtures.url("broken-truncated.tar")) }
        let json = try #require(try TarReader.backupJSON(in: Fixtures.url("broken-backup-json.tar")))
        #expect((try? JSONValue.parse(json)) == nil)
        let partial = try #require(try TarReader.backupJSON(in: Fixtures.url("partial-plain.tar")))
        #expect(try JSONValue.parse(partial)["slug"] == "fae8136f")
    }

}
