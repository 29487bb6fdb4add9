import BackupArchive
import Core
import Foundation
import HTTPClient
import Logging
import S3Client

/// Backups in an S3-compatible bucket under `s3_prefix`: the second destination. Objects carry the same
/// catalog metadata as in B2 (`x-amz-meta-ha-slug`, …), so the catalog can be rebuilt from this bucket alone.
final class S3RemoteStore: RemoteStore {
    /// Marks our objects, like B2's `uploaded_by` file info.
    static let markerKey = "uploaded-by"
    static let markerValue = "b2-backup"

    let client: S3Client
    let prefix: String
    /// `s3_part_size_mb` in bytes.
    let partSize: Int
    let logger: Logger

    init(client: S3Client, prefix: String, partSize: Int, logger: Logger) {
        self.client = client
        self.prefix = prefix
        self.partSize = partSize
        self.logger = logger
    }

    var bucketName: String { client.configuration.bucket }
    /// "S3 (bucket at host)": how messages and the page name this destination.
    var title: String {
        let host = URLComponents(string: client.configuration.endpoint)?.host ?? client.configuration.endpoint
        return "S3 (\(bucketName) at \(host))"
    }

    func objectName(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix)/\(name)" }
    var listingPrefix: String { prefix.isEmpty ? "" : prefix + "/" }

    func upload(path: String, name: String, info: [String: String], settings: UploadSettings,
                progress: @escaping @Sendable (Int64, Int64) -> Void) async throws(PortError) -> RemoteObject {
        let key = objectName(name)
        var metadata = Self.metadata(info)
        metadata[Self.markerKey] = Self.markerValue
        do throws(S3Error) {
            // After a restart between "uploaded" and "saved": the same job's finished object is taken as it is.
            // (A failed look-up is no reason to stop: the upload below says what is wrong, with S3's own words,
            // which a HEAD answer has no body for.)
            if let done = try? await existing(key: key, path: path, jobID: info["job_id"]) { return done }
            let uploader = S3Uploader(client: client, partSize: partSize, concurrency: settings.concurrency, bytesPerSecond: settings.bytesPerSecond,
                                      logger: logger)
            let result = try await uploader.upload(path: path, key: key, metadata: metadata, progress: progress)
            if result.resumedParts > 0 {
                logger.info("S3 upload resumed", metadata: ["s3.key": "\(key)", "parts.resumed": "\(result.resumedParts)", "parts": "\(result.parts)"])
            }
            return RemoteObject(fileID: result.key, name: result.key, size: result.size, sha1: result.sha1, parts: result.parts)
        } catch {
            throw Self.port(error)
        }
    }

    /// The object, when this job already finished uploading it (same size, same job, a SHA-1 recorded).
    private func existing(key: String, path: String, jobID: String?) async throws(S3Error) -> RemoteObject? {
        guard let jobID, let size = SupervisorBackupSource.size(of: path) else { return nil }
        let info: S3ObjectInfo
        do { info = try await client.headObject(key: key) } catch where error.status == 404 { return nil }
        guard info.size == size, info.metadata["job-id"] == jobID, let sha1 = info.metadata["sha1"] else { return nil }
        return RemoteObject(fileID: key, name: key, size: size, sha1: sha1, parts: 0)
    }

    func facts(fileID: String) async throws(PortError) -> RemoteFileFacts {
        do {
            let info = try await client.headObject(key: fileID)
            return RemoteFileFacts(size: info.size, sha1: info.metadata["sha1"])
        } catch {
            throw Self.port(error)
        }
    }

    func summary() async throws(PortError) -> RemoteSummary {
        do {
            let objects = try await client.listObjects(prefix: listingPrefix).filter { $0.key.hasSuffix(".tar") }
            return RemoteSummary(backups: objects.count, bytes: objects.reduce(0) { $0 + $1.size })
        } catch {
            throw Self.port(error)
        }
    }

    /// The engine's info keys as S3 metadata names: `-` for `_` (proxies in front of S3-compatible stores
    /// often drop headers with underscores). Values are percent-encoded beyond plain ASCII, as B2's file
    /// info is: a header carries a backup name such as "Sicherung für Zürich" only garbled (or refused).
    static func metadata(_ info: [String: String]) -> [String: String] {
        Dictionary(info.map { ($0.key.replacingOccurrences(of: "_", with: "-"), $0.value.addingPercentEncoding(withAllowedCharacters: metadataSafe) ?? $0.value) },
                   uniquingKeysWith: { first, _ in first })
    }

    /// Left as they are in metadata values; everything else (with `%`) is percent-encoded.
    static let metadataSafe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,:;/+=@()!*'~")

    /// The metadata as the engine wrote it (decoded).
    static func info(_ metadata: [String: String]) -> [String: String] {
        metadata.mapValues { $0.removingPercentEncoding ?? $0 }
    }

    /// S3's failures turned into the pipeline's codes; the message names S3, the bucket and the cause.
    static func port(_ error: S3Error) -> PortError {
        let code: String
        switch error {
        case .service(_, _, let status, let s3Code, _):
            code = switch s3Code {
            case "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken": "s3_auth_failed"
            case "AccessDenied", "AllAccessDisabled": "s3_access_denied"
            case "NoSuchBucket": "s3_no_such_bucket"
            case "QuotaExceeded", "StorageQuotaExceeded": "s3_quota_exceeded"
            default: status == 403 ? "s3_access_denied" : "s3_error"
            }
        case .transport: code = "s3_unreachable"
        case .retriesExhausted: code = "s3_unavailable"
        case .integrity: code = "verify_mismatch"
        case .invalidResponse: code = "s3_invalid_response"
        case .invalidConfiguration: code = "s3_invalid_configuration"
        case .localFile: code = "local_storage"
        }
        return PortError(code: code, message: error.description)
    }
}

/// The cloud catalog in the S3 bucket: the same index object as in B2 (`<s3_prefix>/b2-backup-index.json`),
/// checked against one listing; objects the index lacks are described from their metadata.
final class S3Catalog: RemoteCatalog {
    let store: S3RemoteStore
    let manageOtherBackups: Bool
    let scratch: URL
    let logger: Logger

    init(store: S3RemoteStore, manageOtherBackups: Bool, scratch: URL, logger: Logger) {
        self.store = store
        self.manageOtherBackups = manageOtherBackups
        self.scratch = scratch
        self.logger = logger
    }

    var client: S3Client { store.client }
    var indexKey: String { store.objectName(B2Catalog.indexName) }

    func load() async throws(PortError) -> CatalogLoad {
        do throws(S3Error) {
            let index = try await readIndex()
            let objects = try await client.listObjects(prefix: store.listingPrefix).filter { $0.key.hasSuffix(".tar") }
            let known = Dictionary((index?.backups ?? []).map { ($0.fileName, $0) }, uniquingKeysWith: { first, _ in first })
            var entries: [CatalogEntry] = []
            var rebuilt = index == nil
            for object in objects {
                if let entry = known[object.key], entry.size == object.size {
                    entries.append(entry)
                } else {
                    entries.append(Self.entry(key: object.key, info: try await client.headObject(key: object.key), lastModified: object.lastModified))
                    rebuilt = true
                }
            }
            return B2Catalog.load(entries: entries, index: index, rebuilt: rebuilt)
        } catch {
            throw S3RemoteStore.port(error)
        }
    }

    /// The index, or nil when it is missing or unreadable (then it is rebuilt from the listing).
    private func readIndex() async throws(S3Error) -> CatalogSnapshot? {
        let path = B2Catalog.scratchFile(in: scratch)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try await client.getObject(key: indexKey, to: ResponseFile(path: path))
        } catch {
            if error.status == 404 { return nil }
            throw error
        }
        return B2Catalog.decodeIndex(path: path, storeName: "S3", logger: logger)
    }

    func save(_ snapshot: CatalogSnapshot) async throws(PortError) {
        let data: Data
        do { data = try B2Catalog.encoder.encode(snapshot) } catch {
            throw PortError(code: "internal", message: "cannot encode the catalog index: \(error)")
        }
        do {
            _ = try await client.putObject(key: indexKey, bytes: [UInt8](data), contentType: "application/json")
        } catch {
            throw S3RemoteStore.port(error)
        }
    }

    func delete(_ entry: CatalogEntry) async throws(PortError) {
        do { try await client.deleteObject(key: entry.fileName) } catch where error.status == 404 {} catch {
            throw S3RemoteStore.port(error)
        }
    }

    func cancelUnfinishedUploads(startedBefore date: Date) async throws(PortError) -> Int {
        do {
            let aborted = try await client.abortUploads(prefix: store.listingPrefix, initiatedBefore: date)
            if aborted > 0 { logger.info("aborted stale unfinished S3 uploads", metadata: ["count": "\(aborted)"]) }
            return aborted
        } catch {
            throw S3RemoteStore.port(error)
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
        do {
            let bytes = try await client.download(key: fileName, to: path, expectedSize: size, sha1: sha1, progress: progress)
            return LocalCopy(path: path, size: bytes, temporary: true)
        } catch {
            throw S3RemoteStore.port(error)
        }
    }

    /// A catalog entry from an object's metadata (written at upload), for objects the index does not know.
    static func entry(key: String, info: S3ObjectInfo, lastModified: String) -> CatalogEntry {
        let meta = S3RemoteStore.info(info.metadata)
        let base = String(key.split(separator: "/").last ?? Substring(key))
        let uploaded = B2Catalog.parseDate(lastModified) ?? Self.parseFractional(lastModified) ?? Date()
        let ours = meta[S3RemoteStore.markerKey] == S3RemoteStore.markerValue
        let facts = BackupFacts(date: meta["ha-date"].flatMap(B2Catalog.parseDate) ?? uploaded, type: meta["ha-type"] ?? "full",
                                protected: meta["ha-protected"] == "true", homeAssistantVersion: meta["ha-version"],
                                addons: meta["ha-addons"].map { $0.split(separator: ",").map(String.init) } ?? [], folders: [])
        let sha1 = meta["sha1"]
        // Ours with a SHA-1: the upload checked every part's MD5 and the whole object before it was recorded.
        return CatalogEntry(slug: meta["ha-slug"] ?? "file:" + base, name: meta["ha-name"] ?? base, facts: facts, size: info.size, sha1: sha1,
                            fileName: key, fileID: key, uploadedAt: uploaded, verifiedAt: ours && sha1 != nil ? uploaded : nil, madeByAddon: ours,
                            lockedUntil: nil)
    }

    static func parseFractional(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }
}

extension RemoteRestorabilityChecker {
    /// Reads from S3 with ranged GETs.
    init(store: S3RemoteStore, mode: VerificationMode, clock: any WallClock, logger: Logger) {
        self.init(storeName: "S3", mode: mode, clock: clock, logger: logger) { [client = store.client] key in
            { range in
                do throws(S3Error) { return try await client.readObject(key: key, range: range) } catch { throw S3RemoteStore.port(error) }
            }
        }
    }
}
