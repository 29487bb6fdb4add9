import Foundation
import Hashing

/// Everything the simulated service knows: keys and tokens, buckets, file versions, unfinished large
/// files and their parts, upload URLs. One actor, so requests on the three servers never race.
///
/// File contents are on disk; this actor only moves finished temporary files into place and deletes
/// them, which is quick. Operations throw ``B2Error`` with the status and code B2 uses.
actor SimulatorState {
    typealias Account = B2Simulator.Account

    struct Bucket: Sendable {
        let id: String
        let name: String
        let accountID: String
        var objectLock = false
        var defaultRetention: B2Simulator.DefaultRetention?
    }

    /// A stretch of a file's contents: a whole small file, or one part of a finished large file.
    struct Segment: Sendable {
        let path: URL
        let length: Int
    }

    struct Version: Sendable {
        let id: String
        let bucketID: String
        let accountID: String
        let name: String
        var action: SimulatedFile.Action
        let contentType: String
        var contentLength: Int
        let contentSha1: String
        let fileInfo: [String: String]
        let uploadTimestamp: Int
        var segments: [Segment]
        var retention: B2Simulator.Retention?
    }

    struct Part: Sendable {
        let number: Int
        let length: Int
        let sha1: String
        let path: URL
        let uploadTimestamp: Int
    }

    /// The key behind an account authorization token.
    struct Caller: Sendable {
        let token: String
        let account: Account
        func can(_ capability: String) -> Bool { account.capabilities.contains(capability) }
    }

    enum UploadTarget: Sendable, Equatable {
        case bucket(String)
        case largeFile(String)
    }

    /// An upload URL with its token: one request at a time, retired after a 5xx.
    private struct UploadEndpoint {
        let token: String
        let target: UploadTarget
        let account: Account
        var expired = false
        var retired = false
        var inUse = false
    }

    /// A claimed upload URL, held while one request streams its body.
    struct UploadTicket: Sendable {
        let uploadID: String
        let token: String
        let target: UploadTarget
        let account: Account
        let bucket: Bucket
    }

    private let configuration: B2Simulator.Configuration
    private let storage: URL
    private let endpoints: Endpoints
    private let buckets: [Bucket]
    private var versions: [String: Version] = [:]
    private var parts: [String: [Int: Part]] = [:]
    private var accountTokens: [String: (account: Account, expired: Bool)] = [:]
    private var uploadEndpoints: [String: UploadEndpoint] = [:]
    private var sequence = 0
    private var counts: [String: Int] = [:]
    private var testModeCounters: [String: Int] = [:]

    /// B2's limit on a file name plus its custom info, in bytes.
    static let maxInfoBytes = 7000
    static let maxPartNumber = 10_000

    init(configuration: B2Simulator.Configuration, storage: URL, endpoints: Endpoints) {
        self.configuration = configuration
        self.storage = storage
        self.endpoints = endpoints
        let owner = configuration.accounts[0].accountID
        // Bucket IDs are 24 hex digits like B2's, derived from the name so runs are repeatable.
        buckets = configuration.buckets.map { name in
            Bucket(id: String(StreamingDigest.sha1Hex(Array("bucket:\(name)".utf8)).prefix(24)), name: name, accountID: owner,
                   objectLock: configuration.objectLockBuckets.contains(name), defaultRetention: configuration.defaultRetention[name])
        }
    }

    // MARK: Bookkeeping

    func count(_ operation: String) { counts[operation, default: 0] += 1 }
    func requestCount(_ operation: String) -> Int { counts[operation] ?? 0 }

    /// True on every n-th request that carries the given `X-Bz-Test-Mode`.
    func testModeTriggers(_ mode: String) -> Bool {
        let seen = testModeCounters[mode, default: 0] + 1
        testModeCounters[mode] = seen
        return seen % configuration.testModeFailureInterval == 0
    }

    func expireAllTokens() {
        for token in accountTokens.keys { accountTokens[token]?.expired = true }
        for id in uploadEndpoints.keys { uploadEndpoints[id]?.expired = true }
    }

    func expire(token: String) { accountTokens[token]?.expired = true }

    private func nextSequence() -> Int {
        sequence += 1
        return sequence
    }

    private func now() -> Int { configuration.nowMillis }

    private static func padded(_ digits: String, _ width: Int) -> String {
        String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    private static func randomHex(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return Hex.encode((0..<(count + 1) / 2).map { _ in UInt8.random(in: 0...255, using: &generator) }).prefix(count).description
    }

    /// File IDs sort newest-first within a bucket (a count-down in fixed-width hex), so listings can
    /// order and resume by `(fileName, fileId)` alone.
    private func newFileID(bucket: Bucket) -> String {
        let countdown = String(0xFFFF_FFFF_FFFF - nextSequence(), radix: 16)
        return "4_z\(bucket.id)_f\(Self.padded(countdown, 12))_c000_v0001000_t0001"
    }

    // MARK: Authorization

    /// `b2_authorize_account`: a new account token for a key ID (or the account ID of a master key).
    func authorizeAccount(keyID: String, applicationKey: String) throws(B2Error) -> Caller {
        let account = configuration.accounts.first { $0.keyID == keyID }
            ?? configuration.accounts.first { $0.accountID == keyID && $0.restrictedToBucket == nil && $0.namePrefix == nil }
        guard let account, account.applicationKey == applicationKey else {
            throw B2Error.unauthorized("invalid application key ID or application key")
        }
        let token = "4_\(account.accountID)_\(Self.padded(String(nextSequence(), radix: 16), 8))_\(Self.randomHex(6))_acct_\(Self.randomHex(28))="
        accountTokens[token] = (account, false)
        return Caller(token: token, account: account)
    }

    /// The key behind an `Authorization` header on an API call or download.
    func authenticate(_ header: String?) throws(B2Error) -> Caller {
        guard let token = header?.trimmingCharacters(in: .whitespaces), !token.isEmpty else {
            throw B2Error(401, "bad_auth_token", "Authorization header is missing")
        }
        guard let entry = accountTokens[token] else { throw B2Error.badAuthToken }
        guard !entry.expired else { throw B2Error.expiredAuthToken }
        return Caller(token: token, account: entry.account)
    }

    /// The bucket `authorizeAccount` reports for a restricted key.
    func allowedBucket(_ account: Account) -> Bucket? {
        account.restrictedToBucket.flatMap { name in buckets.first { $0.name == name } }
    }

    private func require(_ capability: String, _ caller: Caller) throws(B2Error) {
        guard caller.can(capability) else {
            throw B2Error.unauthorized("application key \(caller.account.keyID) does not have the \(capability) capability")
        }
    }

    /// The bucket a call names, checked against the key's bucket restriction.
    private func bucket(id: String, for caller: Caller) throws(B2Error) -> Bucket {
        let found = buckets.first { $0.id == id && $0.accountID == caller.account.accountID }
        if let restricted = caller.account.restrictedToBucket, found?.name != restricted {
            throw B2Error.unauthorized("application key \(caller.account.keyID) is restricted to bucket \(restricted)")
        }
        guard let found else { throw B2Error(400, "bad_bucket_id", "Invalid bucketId: \(id)") }
        return found
    }

    private func checkRestriction(_ bucket: Bucket, _ caller: Caller) throws(B2Error) {
        if let restricted = caller.account.restrictedToBucket, bucket.name != restricted {
            throw B2Error.unauthorized("application key \(caller.account.keyID) is restricted to bucket \(restricted)")
        }
    }

    private func checkNamePrefix(_ name: String, _ caller: Caller) throws(B2Error) {
        if let prefix = caller.account.namePrefix, !name.hasPrefix(prefix) {
            throw B2Error.unauthorized("application key \(caller.account.keyID) is restricted to file names starting with \(prefix)")
        }
    }

    // MARK: Buckets

    /// `b2_list_buckets`. A bucket-restricted key must name its bucket, as on B2.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-list-buckets
    func listBuckets(_ caller: Caller, accountID: String, bucketID: String?, bucketName: String?, bucketTypes: [String]?) throws(B2Error) -> JSON {
        try require("listBuckets", caller)
        guard accountID == caller.account.accountID else {
            throw B2Error.unauthorized("application key \(caller.account.keyID) does not belong to account \(accountID)")
        }
        if let restricted = caller.account.restrictedToBucket {
            let restrictedID = allowedBucket(caller.account)?.id
            let named = (bucketName != nil && bucketName == restricted) || (bucketID != nil && bucketID == restrictedID)
            guard named else {
                throw B2Error.unauthorized("application key \(caller.account.keyID) is restricted to bucket \(restricted); pass its bucketName or bucketId")
            }
        }
        let types = bucketTypes ?? ["all"]
        let listed = buckets.filter { bucket in
            bucket.accountID == accountID
                && (bucketID == nil || bucket.id == bucketID)
                && (bucketName == nil || bucket.name == bucketName)
                && (types.contains("all") || types.contains("allPrivate"))
        }
        return .object([("buckets", .array(listed.sorted { $0.name < $1.name }.map { bucketJSON($0, caller) }))])
    }

    private func bucketJSON(_ bucket: Bucket, _ caller: Caller) -> JSON {
        let readEncryption = caller.can("readBucketEncryption")
        let readRetentions = caller.can("readBucketRetentions")
        let readReplication = caller.can("readBucketReplications")
        return .object([
            ("accountId", .string(bucket.accountID)),
            ("bucketId", .string(bucket.id)),
            ("bucketInfo", .object([])),
            ("bucketName", .string(bucket.name)),
            ("bucketType", .string("allPrivate")),
            ("corsRules", .array([])),
            ("defaultServerSideEncryption", .object([
                ("isClientAuthorizedToRead", .bool(readEncryption)),
                ("value", readEncryption ? Self.sseB2 : .null),
            ])),
            ("fileLockConfiguration", .object([
                ("isClientAuthorizedToRead", .bool(readRetentions)),
                ("value", readRetentions ? ObjectLock.bucketJSON(bucket) : .null),
            ])),
            ("lifecycleRules", .array([])),
            ("options", .array([.string("s3")])),
            ("replicationConfiguration", .object([("isClientAuthorizedToRead", .bool(readReplication)), ("value", .null)])),
            ("revision", .int(2)),
        ])
    }

    /// New buckets use SSE-B2 unless told otherwise, so every stored file reports it.
    /// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-server-side-encryption-with-the-native-api
    static let sseB2 = JSON.object([("algorithm", .string("AES256")), ("mode", .string("SSE-B2"))])

    // MARK: File objects

    private func fileJSON(_ version: Version, _ caller: Caller?) -> JSON {
        let readRetention = caller?.can("readFileRetentions") ?? true
        let readLegalHold = caller?.can("readFileLegalHolds") ?? true
        var pairs: [(String, JSON)] = [
            ("accountId", .string(version.accountID)),
            ("action", .string(version.action.rawValue)),
            ("bucketId", .string(version.bucketID)),
            ("contentLength", .int(version.contentLength)),
            // "The value is null when the action is hide or folder."
            ("contentSha1", version.action == .hide ? .null : .string(version.contentSha1)),
            ("contentType", .string(version.contentType)),
            ("fileId", .string(version.id)),
            ("fileInfo", .map(version.fileInfo)),
            ("fileName", .string(version.name)),
            ("fileRetention", .object([
                ("isClientAuthorizedToRead", .bool(readRetention)),
                ("value", readRetention ? ObjectLock.json(version.retention) : .null),
            ])),
            ("legalHold", .object([("isClientAuthorizedToRead", .bool(readLegalHold)), ("value", .null)])),
            ("replicationStatus", .null),
        ]
        if version.action != .hide { pairs.append(("serverSideEncryption", Self.sseB2)) }
        pairs.append(("uploadTimestamp", .int(version.uploadTimestamp)))
        return .object(pairs)
    }

    private func simulated(_ version: Version) -> SimulatedFile {
        SimulatedFile(fileID: version.id, fileName: version.name, bucketID: version.bucketID, action: version.action,
                      contentType: version.contentType, contentLength: version.contentLength,
                      contentSha1: version.action == .hide ? nil : version.contentSha1,
                      fileInfo: version.fileInfo, uploadTimestamp: version.uploadTimestamp, retention: version.retention)
    }

    /// A bucket's versions in listing order: name (UTF-8 bytes), then newest first.
    private func sortedVersions(bucketID: String) -> [Version] {
        versions.values.filter { $0.bucketID == bucketID }.sorted { lhs, rhs in
            lhs.name == rhs.name ? lhs.id < rhs.id : utf8Less(lhs.name, rhs.name)
        }
    }

    /// The newest upload of a name unless a newer hide marker hides it; unfinished large files do not count.
    private func currentVersion(bucketID: String, name: String) -> Version? {
        let candidates = versions.values.filter { $0.bucketID == bucketID && $0.name == name && $0.action != .start }
        guard let newest = candidates.min(by: { $0.id < $1.id }), newest.action == .upload else { return nil }
        return newest
    }

    // MARK: Uploads

    /// `b2_get_upload_url`: an upload URL on the upload server with its own token.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-get-upload-url
    func getUploadURL(_ caller: Caller, apiVersion: String, bucketID: String) throws(B2Error) -> JSON {
        try require("writeFiles", caller)
        let bucket = try bucket(id: bucketID, for: caller)
        let (url, token) = newUploadEndpoint(kind: "b2_upload_file", pathTarget: bucket.id, target: .bucket(bucket.id), caller, apiVersion)
        return .object([("authorizationToken", .string(token)), ("bucketId", .string(bucket.id)), ("uploadUrl", .string(url))])
    }

    /// `b2_get_upload_part_url`.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-get-upload-part-url
    func getUploadPartURL(_ caller: Caller, apiVersion: String, fileID: String) throws(B2Error) -> JSON {
        try require("writeFiles", caller)
        let file = try activeLargeFile(fileID, caller)
        let (url, token) = newUploadEndpoint(kind: "b2_upload_part", pathTarget: file.id, target: .largeFile(file.id), caller, apiVersion)
        return .object([("authorizationToken", .string(token)), ("fileId", .string(file.id)), ("uploadUrl", .string(url))])
    }

    private func newUploadEndpoint(kind: String, pathTarget: String, target: UploadTarget, _ caller: Caller, _ apiVersion: String) -> (url: String, token: String) {
        let uploadID = "c000_v0001000_t\(Self.padded(String(nextSequence()), 4))"
        let token = "4_\(caller.account.accountID)_\(Self.randomHex(8))_upld_\(Self.randomHex(28))="
        uploadEndpoints[uploadID] = UploadEndpoint(token: token, target: target, account: caller.account)
        return ("\(endpoints.current.upload)/b2api/\(apiVersion)/\(kind)/\(pathTarget)/\(uploadID)", token)
    }

    /// Claims an upload URL for one request. Fails when the token is wrong, expired, retired after a
    /// 5xx, or already streaming another upload (`auth_token_limit`).
    func beginUpload(uploadID: String, pathTarget: String, authorization: String?) throws(B2Error) -> UploadTicket {
        guard var endpoint = uploadEndpoints[uploadID] else {
            throw B2Error(401, "bad_auth_token", "Invalid upload URL: get a new one with b2_get_upload_url or b2_get_upload_part_url")
        }
        let pathMatches = switch endpoint.target {
        case .bucket(let id), .largeFile(let id): id == pathTarget
        }
        guard let authorization, !authorization.isEmpty else { throw B2Error(401, "bad_auth_token", "Authorization header is missing") }
        guard pathMatches, authorization == endpoint.token else { throw B2Error.badAuthToken }
        guard !endpoint.expired else { throw B2Error.expiredAuthToken }
        guard !endpoint.retired else {
            throw B2Error(503, "service_unavailable", "This upload URL is no longer accepting uploads; get a new upload URL")
        }
        guard !endpoint.inUse else { throw B2Error(400, "auth_token_limit", "more than one upload using auth token \(endpoint.token)") }
        let bucketID: String
        switch endpoint.target {
        case .bucket(let id): bucketID = id
        case .largeFile(let fileID):
            guard let file = versions[fileID], file.action == .start else { throw B2Error.noActiveUpload(fileID) }
            bucketID = file.bucketID
        }
        guard let bucket = buckets.first(where: { $0.id == bucketID }) else { throw B2Error(400, "bad_bucket_id", "Invalid bucketId: \(bucketID)") }
        endpoint.inUse = true
        uploadEndpoints[uploadID] = endpoint
        return UploadTicket(uploadID: uploadID, token: endpoint.token, target: endpoint.target, account: endpoint.account, bucket: bucket)
    }

    /// Retires an upload URL that was answered with a 5xx before it was claimed (an injected failure).
    func retireUpload(uploadID: String) {
        uploadEndpoints[uploadID]?.retired = true
    }

    /// Releases an upload URL; `retire` after a 5xx, after which B2 expects the client to get a new URL.
    func endUpload(_ ticket: UploadTicket, retire: Bool) {
        uploadEndpoints[ticket.uploadID]?.inUse = false
        if retire { uploadEndpoints[ticket.uploadID]?.retired = true }
    }

    /// Stores a finished `b2_upload_file` body (already verified) as a new version.
    func commitFile(_ ticket: UploadTicket, name: String, contentType: String, sha1: String, length: Int,
                    fileInfo: [String: String], retention: B2Simulator.Retention?, temporary: URL) throws(B2Error) -> JSON {
        let caller = Caller(token: ticket.token, account: ticket.account)
        do {
            try checkNamePrefix(name, caller)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        let id = newFileID(bucket: ticket.bucket)
        let path = storage.appendingPathComponent("files/\(id)")
        try move(temporary, to: path)
        let uploaded = now()
        let version = Version(id: id, bucketID: ticket.bucket.id, accountID: ticket.bucket.accountID, name: name, action: .upload,
                              contentType: contentType, contentLength: length, contentSha1: sha1, fileInfo: fileInfo,
                              uploadTimestamp: uploaded, segments: [Segment(path: path, length: length)],
                              retention: ObjectLock.effective(retention, bucket: ticket.bucket, uploadTimestamp: uploaded))
        versions[id] = version
        return fileJSON(version, caller)
    }

    /// Stores a verified part; a part number uploaded again replaces the earlier part.
    func commitPart(_ ticket: UploadTicket, partNumber: Int, sha1: String, length: Int, temporary: URL) throws(B2Error) -> JSON {
        guard case .largeFile(let fileID) = ticket.target, let file = versions[fileID], file.action == .start else {
            try? FileManager.default.removeItem(at: temporary)
            if case .largeFile(let fileID) = ticket.target { throw B2Error.noActiveUpload(fileID) }
            throw B2Error.badRequest("this upload URL is not for parts")
        }
        let folder = storage.appendingPathComponent("parts/\(file.id)", isDirectory: true)
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("\(partNumber)-\(nextSequence())")
        try move(temporary, to: path)
        let part = Part(number: partNumber, length: length, sha1: sha1, path: path, uploadTimestamp: now())
        if let previous = parts[file.id]?[partNumber] { try? FileManager.default.removeItem(at: previous.path) }
        parts[file.id, default: [:]][partNumber] = part
        return partJSON(part, fileID: file.id)
    }

    private func partJSON(_ part: Part, fileID: String) -> JSON {
        .object([
            ("contentLength", .int(part.length)),
            ("contentSha1", .string(part.sha1)),
            ("fileId", .string(fileID)),
            ("partNumber", .int(part.number)),
            ("serverSideEncryption", Self.sseB2),
            ("uploadTimestamp", .int(part.uploadTimestamp)),
        ])
    }

    private func move(_ source: URL, to destination: URL) throws(B2Error) {
        do {
            try FileManager.default.moveItem(at: source, to: destination)
        } catch {
            try? FileManager.default.removeItem(at: source)
            throw B2Error(500, "internal_error", "the simulator could not store the upload: \(error.localizedDescription)")
        }
    }

    // MARK: Large files

    private func activeLargeFile(_ fileID: String, _ caller: Caller) throws(B2Error) -> Version {
        guard let file = versions[fileID], file.action == .start,
              let bucket = buckets.first(where: { $0.id == file.bucketID }), bucket.accountID == caller.account.accountID else {
            throw B2Error.noActiveUpload(fileID)
        }
        try checkRestriction(bucket, caller)
        return file
    }

    /// `b2_start_large_file`: the file info (including `large_file_sha1`) and the retention are fixed here.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-start-large-file
    func startLargeFile(_ caller: Caller, bucketID: String, fileName: String, contentType: String, fileInfo: [String: String],
                        retention: B2Simulator.Retention? = nil) throws(B2Error) -> JSON {
        try require("writeFiles", caller)
        let bucket = try bucket(id: bucketID, for: caller)
        try FileRules.validate(name: fileName)
        try checkNamePrefix(fileName, caller)
        let info = try FileRules.normalizedInfo(fileInfo, fileName: fileName, withRetention: retention != nil)
        let started = now()
        try ObjectLock.checkNew(retention, bucket: bucket, account: caller.account, now: started)
        let version = Version(id: newFileID(bucket: bucket), bucketID: bucket.id, accountID: bucket.accountID, name: fileName, action: .start,
                              contentType: FileRules.resolveContentType(contentType, fileName: fileName), contentLength: 0,
                              contentSha1: "none", fileInfo: info, uploadTimestamp: started, segments: [],
                              retention: ObjectLock.effective(retention, bucket: bucket, uploadTimestamp: started))
        versions[version.id] = version
        parts[version.id] = [:]
        return fileJSON(version, caller)
    }

    /// `b2_finish_large_file`: the parts become one file, in part-number order.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-finish-large-file
    func finishLargeFile(_ caller: Caller, fileID: String, partSha1Array: [String]) throws(B2Error) -> JSON {
        try require("writeFiles", caller)
        var file = try activeLargeFile(fileID, caller)
        let uploaded = parts[fileID] ?? [:]
        var ordered: [Part] = []
        for number in partSha1Array.indices.map({ $0 + 1 }) {
            guard let part = uploaded[number] else { throw B2Error(400, "missing_part", "Part number \(number) has not been uploaded for \(fileID)") }
            ordered.append(part)
        }
        if let extra = uploaded.keys.filter({ $0 > partSha1Array.count }).min() {
            throw B2Error(400, "part_sha1_mismatch", "Part number \(extra) was uploaded but partSha1Array has only \(partSha1Array.count) entries")
        }
        for (part, claimed) in zip(ordered, partSha1Array) where part.sha1 != claimed.lowercased() {
            throw B2Error(400, "part_sha1_mismatch", "Part number \(part.number) has SHA-1 \(part.sha1), not \(claimed)")
        }
        guard ordered.count >= 2 else { throw B2Error.badRequest("large files must have at least 2 parts") }
        for part in ordered.dropLast() where part.length < configuration.absoluteMinimumPartSize {
            throw B2Error.badRequest("Part number \(part.number) is \(part.length) bytes; every part but the last must be at least \(configuration.absoluteMinimumPartSize) bytes")
        }
        file.action = .upload
        file.contentLength = ordered.reduce(0) { $0 + $1.length }
        file.segments = ordered.map { Segment(path: $0.path, length: $0.length) }
        versions[fileID] = file
        parts[fileID] = nil
        return fileJSON(file, caller)
    }

    /// `b2_cancel_large_file`: the parts are deleted.
    func cancelLargeFile(_ caller: Caller, fileID: String) throws(B2Error) -> JSON {
        try require("writeFiles", caller)
        let file = try activeLargeFile(fileID, caller)
        discard(file)
        return .object([("accountId", .string(file.accountID)), ("bucketId", .string(file.bucketID)),
                        ("fileId", .string(file.id)), ("fileName", .string(file.name))])
    }

    /// Removes a version and its stored bytes (parts too, for an unfinished large file).
    private func discard(_ file: Version) {
        versions[file.id] = nil
        for segment in file.segments { try? FileManager.default.removeItem(at: segment.path) }
        if parts.removeValue(forKey: file.id) != nil {
            try? FileManager.default.removeItem(at: storage.appendingPathComponent("parts/\(file.id)", isDirectory: true))
        }
    }

    /// `b2_list_parts`, in part-number order from `startPartNumber`.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-list-parts
    func listParts(_ caller: Caller, fileID: String, startPartNumber: Int?, maxPartCount: Int?) throws(B2Error) -> JSON {
        try require("writeFiles", caller)
        _ = try activeLargeFile(fileID, caller)
        let start = startPartNumber ?? 1
        guard (1...Self.maxPartNumber).contains(start) else { throw B2Error.badRequest("startPartNumber out of range: \(start)") }
        let limit = try Self.pageSize(maxPartCount, name: "maxPartCount", maximum: 1000)
        let all = (parts[fileID] ?? [:]).values.filter { $0.number >= start }.sorted { $0.number < $1.number }
        let page = all.prefix(limit)
        let next: JSON = all.count > limit ? .int(all[limit].number) : .null
        return .object([("nextPartNumber", next), ("parts", .array(page.map { partJSON($0, fileID: fileID) }))])
    }

    /// `b2_list_unfinished_large_files`, oldest first.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-list-unfinished-large-files
    func listUnfinishedLargeFiles(_ caller: Caller, bucketID: String, namePrefix: String?, startFileID: String?, maxFileCount: Int?) throws(B2Error) -> JSON {
        try require("listFiles", caller)
        let bucket = try bucket(id: bucketID, for: caller)
        if let keyPrefix = caller.account.namePrefix, !(namePrefix ?? "").hasPrefix(keyPrefix) {
            throw B2Error.unauthorized("application key \(caller.account.keyID) may only list names starting with \(keyPrefix)")
        }
        let limit = try Self.pageSize(maxFileCount, name: "maxFileCount", maximum: 100)
        // IDs count down, so descending ID order is start order.
        let all = versions.values
            .filter { $0.bucketID == bucket.id && $0.action == .start && $0.name.hasPrefix(namePrefix ?? "") && (startFileID == nil || $0.id <= startFileID!) }
            .sorted { $0.id > $1.id }
        let next: JSON = all.count > limit ? .string(all[limit].id) : .null
        return .object([("files", .array(all.prefix(limit).map { fileJSON($0, caller) })), ("nextFileId", next)])
    }

    // MARK: Listing

    private static func pageSize(_ requested: Int?, name: String, maximum: Int, default defaultSize: Int = 100) throws(B2Error) -> Int {
        guard let requested, requested != 0 else { return min(defaultSize, maximum) }
        guard requested > 0, requested <= maximum else { throw B2Error.badRequest("\(name) must be between 1 and \(maximum): \(requested)") }
        return requested
    }

    /// `b2_list_file_names` (`versions: false`) and `b2_list_file_versions` (`versions: true`): name order,
    /// newest first within a name, at most `maxFileCount` entries, and where the next page starts.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-list-file-versions
    func listFiles(_ caller: Caller, versions allVersions: Bool, bucketID: String, startFileName: String?, startFileID: String?,
                   maxFileCount: Int?, prefix: String?, delimiter: String?) throws(B2Error) -> JSON {
        try require("listFiles", caller)
        let bucket = try bucket(id: bucketID, for: caller)
        let prefix = prefix ?? ""
        if let keyPrefix = caller.account.namePrefix, !prefix.hasPrefix(keyPrefix) {
            throw B2Error.unauthorized("application key \(caller.account.keyID) may only list names starting with \(keyPrefix)")
        }
        if startFileID != nil && startFileName == nil { throw B2Error.badRequest("startFileId requires startFileName") }
        let limit = try Self.pageSize(maxFileCount, name: "maxFileCount", maximum: 10_000)
        let delimiter = delimiter.flatMap { $0.isEmpty ? nil : $0 }

        // Candidates: every version (versions call) or each name's current upload (names call).
        var candidates: [Version] = []
        var previousName: String?
        for version in sortedVersions(bucketID: bucket.id) where version.name.hasPrefix(prefix) {
            if allVersions {
                candidates.append(version)
            } else if version.name != previousName, version.action != .start {
                // The first non-start version of a name decides whether the name is visible.
                previousName = version.name
                if version.action == .upload { candidates.append(version) }
            }
        }

        enum Entry { case file(Version), folder(String) }
        var entries: [Entry] = []
        var lastFolder: String?
        for version in candidates {
            if let startFileName {
                if utf8Less(version.name, startFileName) { continue }
                if version.name == startFileName, let startFileID, version.id < startFileID { continue }
            }
            if let delimiter, let range = version.name.dropFirst(prefix.count).range(of: delimiter) {
                let folder = String(version.name[..<range.upperBound])
                if folder == lastFolder { continue }
                // A folder before the start name was listed on an earlier page.
                if let startFileName, utf8Less(folder, startFileName) { continue }
                lastFolder = folder
                entries.append(.folder(folder))
            } else {
                entries.append(.file(version))
            }
            if entries.count > limit { break }
        }

        var nextName: JSON = .null
        var nextID: JSON = .null
        if entries.count > limit {
            switch entries.removeLast() {
            case .file(let version):
                nextName = .string(version.name)
                if allVersions { nextID = .string(version.id) }
            case .folder(let folder):
                nextName = .string(folder)
            }
        }
        let files: [JSON] = entries.map { entry in
            switch entry {
            case .file(let version): fileJSON(version, caller)
            case .folder(let folder):
                .object([("action", .string("folder")), ("contentLength", .int(0)), ("contentSha1", .null), ("contentType", .null),
                         ("fileId", .null), ("fileInfo", .object([])), ("fileName", .string(folder)), ("uploadTimestamp", .int(0))])
            }
        }
        var result: [(String, JSON)] = [("files", .array(files)), ("nextFileName", nextName)]
        if allVersions { result.append(("nextFileId", nextID)) }
        return .object(result)
    }

    // MARK: Hide, delete, info

    /// `b2_hide_file`: adds a hide marker, so the name drops out of `b2_list_file_names` and downloads by name.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-hide-file
    func hideFile(_ caller: Caller, bucketID: String, fileName: String) throws(B2Error) -> JSON {
        try require("writeFiles", caller)
        let bucket = try bucket(id: bucketID, for: caller)
        try checkNamePrefix(fileName, caller)
        let existing = versions.values.filter { $0.bucketID == bucket.id && $0.name == fileName && $0.action != .start }
        guard let newest = existing.min(by: { $0.id < $1.id }) else { throw B2Error(400, "no_such_file", "File not present: \(fileName)") }
        guard newest.action != .hide else { throw B2Error(400, "already_hidden", "File already hidden: \(fileName)") }
        let marker = Version(id: newFileID(bucket: bucket), bucketID: bucket.id, accountID: bucket.accountID, name: fileName, action: .hide,
                             contentType: "application/x-bz-hide-marker", contentLength: 0, contentSha1: "none", fileInfo: [:],
                             uploadTimestamp: now(), segments: [])
        versions[marker.id] = marker
        return fileJSON(marker, caller)
    }

    /// `b2_delete_file_version`: removes one version; an unfinished large file is cancelled. Object Lock may refuse.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-delete-file-version
    func deleteFileVersion(_ caller: Caller, fileName: String, fileID: String, bypassGovernance: Bool = false) throws(B2Error) -> JSON {
        try require("deleteFiles", caller)
        guard let file = versions[fileID], file.name == fileName,
              let bucket = buckets.first(where: { $0.id == file.bucketID }), bucket.accountID == caller.account.accountID else {
            throw B2Error(400, "file_not_present", "File not present: \(fileName) \(fileID)")
        }
        try checkRestriction(bucket, caller)
        try checkNamePrefix(fileName, caller)
        try ObjectLock.checkDelete(file, bypassGovernance: bypassGovernance, caller: caller, now: now())
        discard(file)
        return .object([("fileId", .string(fileID)), ("fileName", .string(fileName))])
    }

    /// `b2_update_file_retention`: sets, extends, shortens or removes (mode null) a file's retention.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-update-file-retention
    func updateFileRetention(_ caller: Caller, fileName: String, fileID: String, retention: B2Simulator.Retention?,
                             bypassGovernance: Bool) throws(B2Error) -> JSON {
        try require("writeFileRetentions", caller)
        guard var file = versions[fileID], file.name == fileName, file.action == .upload,
              let bucket = buckets.first(where: { $0.id == file.bucketID }), bucket.accountID == caller.account.accountID else {
            throw B2Error(400, "file_not_present", "File not present: \(fileName) \(fileID)")
        }
        try checkRestriction(bucket, caller)
        try checkNamePrefix(fileName, caller)
        guard bucket.objectLock else { throw ObjectLock.notEnabled(bucket) }
        let current = now()
        try ObjectLock.checkNew(retention, bucket: bucket, account: caller.account, now: current)
        try ObjectLock.checkUpdate(from: file.retention, to: retention, bypassGovernance: bypassGovernance, caller: caller, now: current)
        file.retention = retention
        versions[fileID] = file
        return .object([("fileId", .string(fileID)), ("fileName", .string(fileName)), ("fileRetention", ObjectLock.json(retention))])
    }

    /// `b2_get_file_info`: any version, including hide markers and unfinished large files.
    func getFileInfo(_ caller: Caller, fileID: String) throws(B2Error) -> JSON {
        try require("readFiles", caller)
        guard let file = versions[fileID], let bucket = buckets.first(where: { $0.id == file.bucketID }),
              bucket.accountID == caller.account.accountID else {
            throw B2Error(404, "not_found", "File not present: \(fileID)")
        }
        try checkRestriction(bucket, caller)
        return fileJSON(file, caller)
    }

    // MARK: Downloads

    /// The version a download by name serves: the newest upload that is not hidden.
    func downloadTarget(_ caller: Caller, bucketName: String, fileName: String) throws(B2Error) -> (Version, Bucket) {
        try require("readFiles", caller)
        guard let bucket = buckets.first(where: { $0.name == bucketName && $0.accountID == caller.account.accountID }) else {
            if caller.account.restrictedToBucket != nil { try checkRestriction(Bucket(id: "", name: bucketName, accountID: ""), caller) }
            throw B2Error(404, "not_found", "Bucket \(bucketName) does not exist")
        }
        try checkRestriction(bucket, caller)
        try checkNamePrefix(fileName, caller)
        guard let version = currentVersion(bucketID: bucket.id, name: fileName) else {
            throw B2Error(404, "not_found", "File with such name does not exist: \(fileName)")
        }
        return (version, bucket)
    }

    /// The version a download by ID serves: only finished uploads have contents.
    func downloadTarget(_ caller: Caller, fileID: String) throws(B2Error) -> (Version, Bucket) {
        try require("readFiles", caller)
        guard let version = versions[fileID], version.action == .upload,
              let bucket = buckets.first(where: { $0.id == version.bucketID }), bucket.accountID == caller.account.accountID else {
            throw B2Error(404, "not_found", "File not present: \(fileID)")
        }
        try checkRestriction(bucket, caller)
        try checkNamePrefix(version.name, caller)
        return (version, bucket)
    }

    // MARK: Inspection

    private func bucketMatching(_ nameOrID: String) -> Bucket? {
        buckets.first { $0.name == nameOrID } ?? buckets.first { $0.id == nameOrID }
    }

    func inspectVersions(bucket: String) -> [SimulatedFile] {
        guard let bucket = bucketMatching(bucket) else { return [] }
        return sortedVersions(bucketID: bucket.id).map(simulated)
    }

    func inspectUnfinished(bucket: String) -> [SimulatedFile] {
        guard let bucket = bucketMatching(bucket) else { return [] }
        return versions.values.filter { $0.bucketID == bucket.id && $0.action == .start }.sorted { $0.id > $1.id }.map(simulated)
    }

    func segments(fileID: String) throws(B2SimulatorError) -> [Segment] {
        guard let version = versions[fileID] else { throw B2SimulatorError("no file version \(fileID)") }
        guard version.action == .upload else { throw B2SimulatorError("file version \(fileID) is a \(version.action.rawValue) entry without contents") }
        return version.segments
    }
}
