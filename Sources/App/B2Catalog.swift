import B2Client
import Core
import Foundation
import HTTPClient
import Logging
import Synchronization

/// The cloud catalog in a B2 bucket: the index object `<prefix>/b2-backup-index.json` beside the backups,
/// checked against one `b2_list_file_names` of the prefix. Backups the index lacks are described from
/// their own file info (`ha_*`, written at upload), so the catalog survives a lost index or data folder.
final class B2Catalog: RemoteCatalog {
    static let indexName = "b2-backup-index.json"

    let store: B2RemoteStore
    /// `delete` removes every version; `hide` adds a hide marker for the bucket's lifecycle rules.
    let hideInsteadOfDelete: Bool
    let manageOtherBackups: Bool
    let scratch: URL
    let logger: Logger

    init(store: B2RemoteStore, hideInsteadOfDelete: Bool, manageOtherBackups: Bool, scratch: URL, logger: Logger) {
        self.store = store
        self.hideInsteadOfDelete = hideInsteadOfDelete
        self.manageOtherBackups = manageOtherBackups
        self.scratch = scratch
        self.logger = logger
    }

    var indexObjectName: String { store.objectName(Self.indexName) }
    var listingPrefix: String { store.prefix.isEmpty ? "" : store.prefix + "/" }

    func load() async throws(PortError) -> CatalogLoad {
        do throws(B2Error) {
            let bucket = try await store.resolvedBucket()
            let index = try await readIndex()
            let files = try await store.client.listFileNames(bucketID: bucket.bucketId, prefix: listingPrefix)
                .filter { $0.fileName.hasSuffix(".tar") && ($0.action ?? "upload") == "upload" && $0.fileId != nil }
            let known = Dictionary((index?.backups ?? []).map { ($0.fileID, $0) }, uniquingKeysWith: { first, _ in first })
            var entries: [CatalogEntry] = []
            var rebuilt = index == nil
            for file in files {
                if var entry = known[file.fileId!] {
                    entry.lockedUntil = file.retention?.retainUntil ?? entry.lockedUntil
                    entries.append(entry)
                } else {
                    entries.append(Self.entry(from: file))
                    rebuilt = true
                }
            }
            return Self.load(entries: entries, index: index, rebuilt: rebuilt)
        } catch {
            throw B2RemoteStore.port(error)
        }
    }

    /// The index, or nil when it is missing or unreadable (then it is rebuilt from the listing).
    private func readIndex() async throws(B2Error) -> CatalogSnapshot? {
        let path = Self.scratchFile(in: scratch)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try await store.client.download(.name(bucket: store.bucketName, fileName: indexObjectName), range: nil, into: ResponseFile(path: path))
        } catch {
            if error.status == 404 { return nil }
            throw error
        }
        return Self.decodeIndex(path: path, storeName: "B2", logger: logger)
    }

    /// An empty file for an index download; the caller removes it.
    static func scratchFile(in scratch: URL) -> String {
        try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let path = scratch.appendingPathComponent("index-\(UUID().uuidString).json").path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        return path
    }

    /// The downloaded index, or nil when it is unreadable (then it is rebuilt from the listing).
    static func decodeIndex(path: String, storeName: String, logger: Logger) -> CatalogSnapshot? {
        do {
            return try decoder.decode(CatalogSnapshot.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            logger.warning("the catalog index is unreadable; rebuilding it", metadata: ["store": "\(storeName)", "error": "\(error)"])
            return nil
        }
    }

    /// The catalog from the listing's entries and the index's pins and check date.
    static func load(entries: [CatalogEntry], index: CatalogSnapshot?, rebuilt: Bool) -> CatalogLoad {
        // Backups deleted outside the add-on make the index stale too.
        let rebuilt = rebuilt || entries.count != (index?.backups.count ?? 0)
        // Pins are kept even without an entry: a pin may name a backup that is only in Home Assistant.
        var snapshot = CatalogSnapshot(updatedAt: index?.updatedAt ?? Date(), backups: entries, pins: index?.pins ?? [])
        snapshot.lastScheduledCheck = index?.lastScheduledCheck
        return CatalogLoad(snapshot: snapshot, rebuilt: rebuilt)
    }

    func save(_ snapshot: CatalogSnapshot) async throws(PortError) {
        let path = scratch.appendingPathComponent("index-\(UUID().uuidString).json").path
        do {
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            try Self.encoder.encode(snapshot).write(to: URL(fileURLWithPath: path))
        } catch {
            throw PortError(code: "local_storage", message: "cannot write the catalog index: \(error.localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        do throws(B2Error) {
            let bucket = try await store.resolvedBucket()
            let uploaded = try await store.engine.upload(path: path, bucket: bucket, fileName: indexObjectName,
                                                         options: UploadOptions(concurrency: 1, contentType: "application/json"))
            // Each save is a new version; older ones are only clutter.
            for version in try await store.client.listFileVersions(bucketID: bucket.bucketId, prefix: indexObjectName)
            where version.fileName == indexObjectName && version.fileId != uploaded.file.fileId {
                if let id = version.fileId { try? await store.client.deleteFileVersion(fileName: version.fileName, fileID: id) }
            }
        } catch {
            throw B2RemoteStore.port(error)
        }
    }

    func delete(_ entry: CatalogEntry) async throws(PortError) {
        do throws(B2Error) {
            let bucket = try await store.resolvedBucket()
            if hideInsteadOfDelete {
                do {
                    _ = try await store.client.hideFile(bucketID: bucket.bucketId, fileName: entry.fileName)
                } catch where error.code == "already_hidden" {}
                return
            }
            // Every version of the name, hide markers included: a hidden file still costs storage.
            let versions = try await store.client.listFileVersions(bucketID: bucket.bucketId, prefix: entry.fileName).filter { $0.fileName == entry.fileName }
            for version in versions {
                guard let id = version.fileId else { continue }
                do {
                    try await store.client.deleteFileVersion(fileName: version.fileName, fileID: id)
                } catch where error.code == "file_not_present" {}
            }
        } catch {
            throw B2RemoteStore.port(error)
        }
    }

    func cancelUnfinishedUploads(startedBefore date: Date) async throws(PortError) -> Int {
        do throws(B2Error) {
            let bucket = try await store.resolvedBucket()
            var cancelled = 0
            for file in try await store.client.listUnfinishedLargeFiles(bucketID: bucket.bucketId, prefix: listingPrefix) {
                guard let id = file.fileId, let started = file.uploadTimestamp, Double(started) / 1000 < date.timeIntervalSince1970,
                      manageOtherBackups || file.fileInfo?[UploadEngine.markerKey] == UploadEngine.markerValue else { continue }
                try await store.client.cancelLargeFile(fileID: id)
                cancelled += 1
                logger.info("cancelled a stale unfinished upload", metadata: ["b2.file_name": "\(file.fileName)"])
            }
            return cancelled
        } catch {
            throw B2RemoteStore.port(error)
        }
    }

    func download(fileName: String, sha1: String?, size: Int64?,
                  progress: @escaping @Sendable (Int64, Int64) -> Void) async throws(PortError) -> LocalCopy {
        let base = String(fileName.split(separator: "/").last ?? Substring(fileName))
        let path = scratch.appendingPathComponent(base).path
        do {
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        } catch {
            throw PortError(code: "local_storage", message: "cannot create \(scratch.path): \(error.localizedDescription)")
        }
        do throws(B2Error) {
            let result = try await DownloadEngine(client: store.client, logger: logger)
                .download(.name(bucket: store.bucketName, fileName: fileName), to: path, expectedSHA1: sha1)
            progress(result.bytes, result.bytes)
            if let size, result.bytes != size {
                try? FileManager.default.removeItem(atPath: path)
                throw B2Error.integrity("B2 sent \(result.bytes) bytes of \(fileName), the catalog says \(size)")
            }
            return LocalCopy(path: path, size: result.bytes, temporary: true)
        } catch {
            throw B2RemoteStore.port(error)
        }
    }

    /// A catalog entry from a file's own info (written at upload), for files the index does not know.
    static func entry(from file: B2File) -> CatalogEntry {
        let info = file.fileInfo ?? [:]
        let base = String(file.fileName.split(separator: "/").last ?? Substring(file.fileName))
        let uploaded = Date(timeIntervalSince1970: Double(file.uploadTimestamp ?? 0) / 1000)
        let ours = info[UploadEngine.markerKey] == UploadEngine.markerValue
        let facts = BackupFacts(date: info["ha_date"].flatMap(parseDate) ?? uploaded, type: info["ha_type"] ?? "full",
                                protected: info["ha_protected"] == "true", homeAssistantVersion: info["ha_version"],
                                addons: info["ha_addons"].map { $0.split(separator: ",").map(String.init) } ?? [], folders: [])
        // Ours and with a SHA-1: B2 checked every byte against it on receipt, and our verify step ran before
        // the index was lost. Others' files were never verified by us.
        let sha1 = file.sha1
        return CatalogEntry(slug: info["ha_slug"] ?? "file:" + base, name: info["ha_name"] ?? base, facts: facts,
                            size: file.contentLength ?? 0, sha1: sha1, fileName: file.fileName, fileID: file.fileId ?? "",
                            uploadedAt: uploaded, verifiedAt: ours && sha1 != nil ? uploaded : nil, madeByAddon: ours,
                            lockedUntil: file.retention?.retainUntil)
    }

    static func parseDate(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    /// Top-level folders of the bucket (one listing with a delimiter).
    static func prefixes(of store: B2RemoteStore) async throws(PortError) -> [String] {
        do throws(B2Error) {
            let bucket = try await store.resolvedBucket()
            return try await store.client.listFileNames(bucketID: bucket.bucketId, delimiter: "/")
                .filter { $0.action == "folder" }.map { String($0.fileName.dropLast()) }
        } catch {
            throw B2RemoteStore.port(error)
        }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

/// Other prefixes of the same bucket, read-only: listed and restored from, never pruned.
struct B2BucketCatalogs: BucketCatalogs {
    let store: B2RemoteStore
    let scratch: URL
    let logger: Logger

    func prefixes() async throws(PortError) -> [String] { try await B2Catalog.prefixes(of: store) }

    func catalog(prefix: String) -> any RemoteCatalog {
        let other = B2RemoteStore(client: store.client, journal: MemoryLessJournal(), bucketName: store.bucketName,
                                  prefix: AddonOptions.normalizedPrefix(prefix), logger: logger)
        return B2Catalog(store: other, hideInsteadOfDelete: true, manageOtherBackups: false, scratch: scratch, logger: logger)
    }
}
