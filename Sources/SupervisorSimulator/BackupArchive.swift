import BackupArchive
import Compression
import Foundation

/// Writes a backup file the way Supervisor 2026.08 does (`Backup.create`, `store_homeassistant`,
/// `_app_save`, `_folder_save`, `_create_finalize`): a PAX outer tar written in place at its final path,
/// one inner archive per part (`homeassistant.tar.gz`, `<addon>.tar.gz`, `<folder with / → _>.tar.gz`,
/// names without `./`), then `./backup.json` last; two zero blocks, padded to 10240 bytes.
///
/// Each inner archive is a PAX tar, gzip-compressed as Python's `gzip` does it (level 6, FNAME = the
/// name without `.gz`, OS byte 255) unless the backup is uncompressed. The contents are small stand-ins
/// (`addon.json`, `homeassistant.json`, a few files) plus ``payloadBytes`` of random data in Home
/// Assistant's archive, so backups of a chosen size can be made.
///
/// A protected backup (``protection`` set) has every inner archive encrypted as securetar 2026.4.1 does it
/// for the Supervisor: the gzip stream (level 9, FNAME flag with an empty name, as Python's `tarfile`
/// stream writes it), or the tar when uncompressed, behind a SecureTar header: v3 (136-byte header,
/// XChaCha20-Poly1305 secretstream in 1 MiB chunks) when Core is 2026.3.0 or newer, else v2 (AES-128-CBC).
/// All archives share the one ``SecureTarBackupKey`` (root salt, validation salt and key); each gets its
/// own derivation salt and stream header.
///
/// Used by one job at a time; every call is awaited before the next, hence `@unchecked Sendable`.
final class BackupArchiveWriter: @unchecked Sendable {
    private let destination: URL
    private let scratchDirectory: URL
    private let handle: FileHandle
    private let outer: TarWriter
    private let protection: SecureTarBackupKey?
    private var closed = false

    static let chunkSize = 256 * 1024

    /// Creates the backup file. The caller has checked that no file of that name exists.
    /// - Parameter protection: the backup's key when it has a password (derived once: Argon2id for v3).
    init(destination: URL, scratchDirectory: URL, protection: SecureTarBackupKey? = nil) throws(SupervisorSimulatorError) {
        self.destination = destination
        self.scratchDirectory = scratchDirectory
        self.protection = protection
        guard FileManager.default.createFile(atPath: destination.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: destination.path) else {
            throw SupervisorSimulatorError("cannot create the backup file \(destination.path)")
        }
        self.handle = handle
        outer = TarWriter(fileHandle: handle)
    }

    deinit { if !closed { try? handle.close() } }

    /// Time as Python's `time.time()` gives it, to microseconds: written as PAX `mtime` records.
    static func now() -> Double { (Date().timeIntervalSince1970 * 1_000_000).rounded() / 1_000_000 }

    func addHomeAssistant(version: String, excludeDatabase: Bool, payloadBytes: Int, compressed: Bool) throws {
        let mtime = Self.now()
        try addInner(base: "homeassistant", compressed: compressed, mtime: mtime) { tar in
            try Self.addRoot(tar, mtime: mtime)
            let settings: JSONValue = [
                "version": .string(version), "boot": true, "port": 8123, "ssl": false, "watchdog": true,
                "image": "ghcr.io/home-assistant/generic-x86-64-homeassistant", "backups_exclude_database": .bool(excludeDatabase),
            ]
            try Self.addFile(tar, "./homeassistant.json", settings.encoded(), mode: 0o600, mtime: mtime)
            try tar.add(Self.directory("data/", mtime: mtime))
            try Self.addFile(tar, "data/.HA_VERSION", Array(version.utf8), mtime: mtime)
            try Self.addFile(tar, "data/configuration.yaml", Array("default_config:\n\nhomeassistant:\n  name: Simulated Home\n".utf8), mtime: mtime)
            if !excludeDatabase {
                // A database stand-in that starts like SQLite; dropped with homeassistant_exclude_database.
                try Self.addFile(tar, "data/home-assistant_v2.db", Array("SQLite format 3\0".utf8) + [UInt8](repeating: 0, count: 4080), mtime: mtime)
            }
            try tar.begin(TarEntry(name: "data/backup-payload.bin", size: Int64(payloadBytes), mtime: mtime, userName: "root", groupName: "root"))
            var generator = SystemRandomNumberGenerator()
            var left = payloadBytes
            while left > 0 {
                let count = min(left, 64 * 1024)
                var chunk = [UInt8](repeating: 0, count: count)
                chunk.withUnsafeMutableBytes { raw in
                    var offset = 0
                    while offset + 8 <= count {
                        raw.storeBytes(of: generator.next() as UInt64, toByteOffset: offset, as: UInt64.self)
                        offset += 8
                    }
                    while offset < count {
                        raw[offset] = UInt8.random(in: 0...255, using: &generator)
                        offset += 1
                    }
                }
                try tar.write(chunk)
                left -= count
            }
            try tar.end()
        }
    }

    func addAddon(slug: String, name: String, version: String, compressed: Bool) throws {
        let mtime = Self.now()
        try addInner(base: slug, compressed: compressed, mtime: mtime) { tar in
            try Self.addRoot(tar, mtime: mtime)
            // `addon.json` is required by the restore (`{user, system, version, state}`).
            let shortSlug = slug.split(separator: "_", maxSplits: 1).last.map(String.init) ?? slug
            let addonJSON: JSONValue = [
                "user": ["version": .string(version), "options": [:], "auto_update": false, "boot": "auto", "protected": true],
                "system": ["name": .string(name), "version": .string(version), "slug": .string(shortSlug), "arch": ["aarch64", "amd64"]],
                "version": .string(version), "state": "started",
            ]
            try Self.addFile(tar, "./addon.json", addonJSON.encoded(), mode: 0o600, mtime: mtime)
            try tar.add(Self.directory("data/", mtime: mtime))
            try Self.addFile(tar, "data/options.json", Array("{}".utf8), mode: 0o600, mtime: mtime)
        }
    }

    func addFolder(_ folder: String, compressed: Bool) throws {
        let mtime = Self.now()
        try addInner(base: folder.replacingOccurrences(of: "/", with: "_"), compressed: compressed, mtime: mtime) { tar in
            try tar.add(Self.directory("./", mtime: mtime, mode: 0o755))
            if folder == "share" || folder == "media" {
                try tar.add(Self.directory("notes/", mtime: mtime))
                try Self.addFile(tar, "notes/readme.txt", Array("Written by the Supervisor simulator.\n".utf8), mtime: mtime)
            }
        }
    }

    /// Writes `./backup.json` as the last member, ends the archive and closes the file; returns its size.
    func finish(metadata: BackupMetadata) throws -> Int64 {
        let json = metadata.encoded()
        // `_create_finalize` uses an integer mtime: no PAX header for backup.json.
        try outer.add(TarEntry(name: "./backup.json", size: Int64(json.count), mtime: Date().timeIntervalSince1970.rounded(.down)), contents: json)
        try outer.finish()
        closed = true
        try handle.close()
        return outer.bytesWritten
    }

    /// Stops writing and deletes the partial file.
    func abandon() {
        if !closed {
            closed = true
            try? handle.close()
        }
        try? FileManager.default.removeItem(at: destination)
    }

    // MARK: Inner archives

    /// Builds one inner archive in a scratch file (its size must be in the outer header first), then
    /// copies it into the outer tar, encrypting it on the way when the backup is protected.
    private func addInner(base: String, compressed: Bool, mtime: Double, _ build: (TarWriter) throws -> Void) throws {
        let tarName = "\(base).tar"
        let memberName = compressed ? "\(tarName).gz" : tarName
        let scratch = scratchDirectory.appendingPathComponent("\(UUID().uuidString)-\(memberName)")
        guard FileManager.default.createFile(atPath: scratch.path, contents: nil), let scratchHandle = FileHandle(forWritingAtPath: scratch.path) else {
            throw SupervisorSimulatorError("cannot create a scratch file in \(scratchDirectory.path)")
        }
        defer { try? FileManager.default.removeItem(at: scratch) }
        do {
            defer { try? scratchHandle.close() }
            if compressed {
                // Unprotected: Python's gzip module (level 6, the name). Protected: tarfile's `w|gz` stream
                // inside securetar (level 9, an empty name).
                let gzip = try GzipMemberWriter(fileName: protection == nil ? tarName : "", mtime: UInt32(truncatingIfNeeded: Int(mtime)),
                                                level: protection == nil ? 6 : 9) { try scratchHandle.write(contentsOf: $0) }
                let inner = TarWriter { try gzip.write($0) }
                try build(inner)
                try inner.finish()
                try gzip.finish()
            } else {
                let inner = TarWriter(fileHandle: scratchHandle)
                try build(inner)
                try inner.finish()
            }
        }
        let size = (try FileManager.default.attributesOfItem(atPath: scratch.path)[.size] as? NSNumber)?.int64Value ?? 0
        let reader = try FileHandle(forReadingFrom: scratch)
        defer { try? reader.close() }
        if let protection {
            try outer.begin(TarEntry(name: memberName, size: SecureTarWriter.entrySize(plaintextSize: size, version: protection.version), mode: 0o644, mtime: mtime))
            let outer = outer
            let secure = try SecureTarWriter(key: protection, plaintextSize: size) { try outer.write($0) }
            while let data = try reader.read(upToCount: Self.chunkSize), !data.isEmpty {
                try secure.write([UInt8](data))
            }
            try secure.finish()
        } else {
            try outer.begin(TarEntry(name: memberName, size: size, mode: 0o644, mtime: mtime))
            while let data = try reader.read(upToCount: Self.chunkSize), !data.isEmpty {
                try outer.write([UInt8](data))
            }
        }
        try outer.end()
    }

    private static func addRoot(_ tar: TarWriter, mtime: Double) throws {
        try tar.add(directory("./", mtime: mtime, mode: 0o700))
    }

    private static func directory(_ name: String, mtime: Double, mode: Int = 0o755) -> TarEntry {
        TarEntry(name: name, kind: .directory, mode: mode, mtime: mtime, userName: "root", groupName: "root")
    }

    private static func addFile(_ tar: TarWriter, _ name: String, _ contents: [UInt8], mode: Int = 0o644, mtime: Double) throws {
        try tar.add(TarEntry(name: name, size: Int64(contents.count), mode: mode, mtime: mtime, userName: "root", groupName: "root"), contents: contents)
    }
}

/// One gzip member (RFC 1952) as Python's `gzip.GzipFile` writes it: FNAME set, OS 255, XFL 0 at level 6
/// (2 at level 9), raw deflate, then CRC-32 and ISIZE. An empty `fileName` keeps the FNAME flag with just
/// the terminating zero, as `tarfile`'s stream mode writes it. The Compression module's gzip mode writes no file name, so the
/// header and trailer are written here around raw deflate data.
/// - SeeAlso: https://www.rfc-editor.org/rfc/rfc1952#section-2.3
final class GzipMemberWriter {
    private let deflater: Deflater
    private let sink: ([UInt8]) throws -> Void
    private var crc = CRC32()
    private var length: UInt32 = 0

    init(fileName: String?, mtime: UInt32, level: Int32 = 6, sink: @escaping ([UInt8]) throws -> Void) throws {
        deflater = try Deflater(format: .raw, level: level)
        self.sink = sink
        var header: [UInt8] = [0x1F, 0x8B, 0x08, fileName == nil ? 0 : 0x08]
        header += withUnsafeBytes(of: mtime.littleEndian, Array.init)
        header.append(level == 9 ? 2 : level == 1 ? 4 : 0)
        header.append(0xFF)
        if let fileName { header += Array(fileName.utf8) + [0] }
        try sink(header)
    }

    func write(_ bytes: [UInt8]) throws {
        crc.update(bytes)
        length &+= UInt32(truncatingIfNeeded: bytes.count)
        let out = try deflater.compress(bytes)
        if !out.isEmpty { try sink(out) }
    }

    func finish() throws {
        try sink(try deflater.finish() + withUnsafeBytes(of: crc.value.littleEndian, Array.init) + withUnsafeBytes(of: length.littleEndian, Array.init))
    }
}

@available(*, unavailable)
extension GzipMemberWriter: Sendable {}
