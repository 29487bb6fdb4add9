import Compression
import Foundation
import BackupArchive
import Testing

/// The ustar/PAX writer and reader on their own, and against backups Python wrote.
@Suite(.timeLimit(.minutes(1)))
struct TarTests {
    private func archive(_ build: (TarWriter) throws -> Void) throws -> [UInt8] {
        var out: [UInt8] = []
        let writer = TarWriter { out += $0 }
        try build(writer)
        try writer.finish()
        return out
    }

    @Test(arguments: [0, 1, 511, 512, 513, 10_000, 70_000])
    func roundTripOfSizes(size: Int) throws {
        let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let bytes = try archive { try $0.add(TarEntry(name: "data/file.bin", mtime: 1_700_000_000), contents: data) }
        #expect(bytes.count % 10240 == 0)
        // Header, data padded to 512, then at least two zero blocks.
        let used = 512 + (size + 511) / 512 * 512
        #expect(bytes.count >= used + 1024)
        #expect(bytes[used...].allSatisfy { $0 == 0 })
        let reader = TarReader(bytes: bytes)
        let all = try members(reader)
        #expect(all.count == 1)
        #expect(all[0].entry.name == "data/file.bin")
        #expect(all[0].entry.size == Int64(size))
        #expect(all[0].entry.mode == 0o644)
        #expect(all[0].entry.mtime == 1_700_000_000)
        #expect(all[0].entry.paxRecords.isEmpty)
        #expect(all[0].data == data)
        #expect(reader.sawEndOfArchive)
    }

    @Test func longAndNonASCIINamesUsePAX() throws {
        let long = "homeassistant/" + String(repeating: "deep/", count: 30) + "automations.yaml"
        #expect(long.utf8.count > 100)
        let unicode = "media/Geräusche/türklingel.mp3"
        let bytes = try archive { writer in
            try writer.add(TarEntry(name: long), contents: Array("a: 1\n".utf8))
            try writer.add(TarEntry(name: unicode), contents: [1, 2, 3])
            try writer.add(TarEntry(name: "empty.txt"))
            try writer.add(TarEntry(name: "dir/", kind: .directory))
        }
        // The first header is Python's PAX header name with a path record.
        #expect(Array(bytes[0..<14]) == Array("././@PaxHeader".utf8))
        #expect(bytes[156] == UInt8(ascii: "x"))
        #expect(String(decoding: bytes[512..<1024], as: UTF8.self).contains(" path=\(long)\n"))
        let all = try members(TarReader(bytes: bytes))
        #expect(all.map(\.entry.name) == [long, unicode, "empty.txt", "dir/"])
        #expect(all.map(\.entry.kind) == [.file, .file, .file, .directory])
        #expect(all[0].data == Array("a: 1\n".utf8))
        #expect(all[1].data == [1, 2, 3])
        #expect(all[2].entry.size == 0)
        #expect(all[3].entry.normalizedName == "dir")
        #expect(all[3].entry.mode == 0o755)
    }

    @Test func fractionalTimesBecomePAXRecords() throws {
        let bytes = try archive { try $0.add(TarEntry(name: "a", mtime: 1789354804.862873), contents: [0]) }
        #expect(String(decoding: bytes[512..<1024], as: UTF8.self).hasPrefix("27 mtime=1789354804.862873\n"))
        let entry = try #require(try TarReader(bytes: bytes).next())
        #expect(entry.mtime == 1789354804.862873)
        #expect(entry.paxRecords["mtime"] == "1789354804.862873")
    }

    @Test func streamedMembersMustMatchTheirDeclaredSize() throws {
        var out: [UInt8] = []
        let writer = TarWriter { out += $0 }
        try writer.begin(TarEntry(name: "x", size: 4))
        try writer.write([1, 2])
        #expect(throws: TarError.self) { try writer.end() }
        #expect(throws: TarError.self) { try writer.write([3, 4, 5]) }
        try writer.write([3, 4])
        try writer.end()
        try writer.finish()
        #expect(try members(TarReader(bytes: out)).first?.data == [1, 2, 3, 4])
    }

    @Test func readerHonoursPAXSizeAndPathOverTheUstarFields() throws {
        // A hand-made PAX header whose records override a ustar header that says size 0 and a short name.
        let data = Array("payload!".utf8)
        let records = Array("18 path=real-name\n".utf8) + Array("10 size=8\n".utf8)
        var bytes = header(name: "././@PaxHeader", size: records.count, flag: "x") + padded(records)
        bytes += header(name: "short", size: 0, flag: "0") + padded(data)
        bytes += [UInt8](repeating: 0, count: 1024)
        let all = try members(TarReader(bytes: bytes))
        #expect(all.count == 1)
        #expect(all[0].entry.name == "real-name")
        #expect(all[0].entry.size == 8)
        #expect(all[0].data == data)
    }

    @Test func readerTakesGNULongNamesAndUstarPrefixes() throws {
        let longName = String(repeating: "n", count: 150)
        var bytes = header(name: "././@LongLink", size: longName.utf8.count + 1, flag: "L") + padded(Array(longName.utf8) + [0])
        bytes += header(name: "truncated", size: 1, flag: "0") + padded([7])
        bytes += header(name: "file.txt", size: 0, flag: "0", prefix: "some/prefix")
        bytes += [UInt8](repeating: 0, count: 1024)
        let all = try members(TarReader(bytes: bytes))
        #expect(all.map(\.entry.name) == [longName, "some/prefix/file.txt"])
        #expect(all[0].data == [7])
    }

    @Test func damagedArchivesAreRefused() throws {
        var bytes = try archive { try $0.add(TarEntry(name: "a.txt"), contents: Array(repeating: 65, count: 1000)) }
        // Cut inside the data.
        let cut = Array(bytes[0..<900])
        #expect(throws: TarError.self) { _ = try members(TarReader(bytes: cut)) }
        // Flip a byte of the header: the checksum no longer matches.
        bytes[10] ^= 0x01
        do {
            _ = try TarReader(bytes: bytes).next()
            Issue.record("a bad checksum was accepted")
        } catch {
            #expect(error.code == .badChecksum)
        }
        // A clean stop at a member boundary ends the iteration without the end marker.
        let unterminated = try archive { try $0.add(TarEntry(name: "b"), contents: [1]) }.prefix(1024)
        let reader = TarReader(bytes: Array(unterminated))
        #expect(try members(reader).count == 1)
        #expect(!reader.sawEndOfArchive)
    }

    @Test func unsafeNamesAreFlagged() {
        #expect(TarEntry(name: "/etc/passwd").hasUnsafePath)
        #expect(TarEntry(name: "data/../../x").hasUnsafePath)
        #expect(!TarEntry(name: "./data/x..y").hasUnsafePath)
        #expect(TarEntry(name: "./backup.json").normalizedName == "backup.json")
        #expect(TarEntry(name: "./", kind: .directory).normalizedName == ".")
    }

    @Test func backupJSONIsFoundWhereverItIs() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tar-\(UUID().uuidString).tar")
        defer { try? FileManager.default.removeItem(at: url) }
        // Pre-2024 layout: a `./` entry first, members in name order, backup.json among them.
        let bytes = try archive { writer in
            try writer.add(TarEntry(name: "./", kind: .directory))
            try writer.add(TarEntry(name: "./a0d7b954_vscode.tar.gz"), contents: [1, 2])
            try writer.add(TarEntry(name: "./backup.json"), contents: Array("{\"slug\":\"x\"}".utf8))
            try writer.add(TarEntry(name: "./homeassistant.tar.gz"), contents: [3])
        }
        try Data(bytes).write(to: url)
        #expect(try TarReader.backupJSON(in: url) == Array("{\"slug\":\"x\"}".utf8))
        let none = try archive { try $0.add(TarEntry(name: "other.json"), contents: [1]) }
        try Data(none).write(to: url)
        #expect(try TarReader.backupJSON(in: url) == nil)
    }

    // MARK: Hand-made headers

    private func header(name: String, size: Int, flag: Character, prefix: String = "") -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, _ offset: Int) { for (index, byte) in text.utf8.enumerated() { block[offset + index] = byte } }
        put(name, 0)
        put("0000644", 100)
        put("0000000", 108)
        put("0000000", 116)
        let octal = String(size, radix: 8)
        put(String(repeating: "0", count: 11 - octal.count) + octal, 124)
        put("00000000000", 136)
        block[156] = flag.asciiValue!
        put("ustar", 257)
        put("00", 263)
        put(prefix, 345)
        for index in 148..<156 { block[index] = 0x20 }
        let sum = String(block.reduce(0) { $0 + Int($1) }, radix: 8)
        put(String(repeating: "0", count: 6 - sum.count) + sum, 148)
        block[154] = 0
        return block
    }

    private func padded(_ data: [UInt8]) -> [UInt8] {
        data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }
}
