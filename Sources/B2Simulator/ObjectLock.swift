import HTTPServer

/// Object Lock: retentions on files of buckets created with it, and the deletes and changes they refuse.
///
/// Where B2's exact answer is undocumented the simulator keeps B2's documented status families (400
/// `bad_request` for a request B2 cannot honour, 403 `access_denied` for what a lock forbids) and says so.
/// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-object-lock, https://www.backblaze.com/apidocs/b2-update-file-retention
enum ObjectLock {
    typealias Retention = B2Simulator.Retention

    static let modeHeader = "X-Bz-File-Retention-Mode"
    static let untilHeader = "X-Bz-File-Retention-Retain-Until-Timestamp"
    /// With retention headers the name plus info may take 2048 bytes, not 7000.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-upload-file
    static let maxInfoBytes = 2048

    // MARK: Requests

    /// The retention `b2_upload_file` headers ask for; nil when they set none.
    static func parse(_ headers: HTTPHeaders) throws(B2Error) -> Retention? {
        try parse(mode: headers[modeHeader], until: headers[untilHeader], names: "\(modeHeader) and \(untilHeader)")
    }

    /// `fileRetention {mode, retainUntilTimestamp}` of `b2_start_large_file` and `b2_update_file_retention`; a null
    /// mode (what b2sdk sends for "none") sets none.
    static func parse(_ json: JSON?) throws(B2Error) -> Retention? {
        guard let json, json != .null else { return nil }
        guard case .object = json else { throw B2Error.badRequest("fileRetention must be a JSON object") }
        let mode: String?
        switch json["mode"] {
        case nil, .null?: mode = nil
        case .string(let text)?: mode = text
        default: throw B2Error.badRequest("fileRetention.mode must be a string")
        }
        let until: String?
        switch json["retainUntilTimestamp"] {
        case nil, .null?: until = nil
        case .int(let value)?: until = String(value)
        default: throw B2Error.badRequest("fileRetention.retainUntilTimestamp must be milliseconds since 1970")
        }
        return try parse(mode: mode, until: until, names: "fileRetention.mode and fileRetention.retainUntilTimestamp")
    }

    private static func parse(mode: String?, until: String?, names: String) throws(B2Error) -> Retention? {
        switch (mode, until) {
        case (nil, nil):
            return nil
        case (let mode?, let until?):
            guard let parsed = B2Simulator.RetentionMode(rawValue: mode) else {
                throw B2Error.badRequest("retention mode must be governance or compliance: \(mode)")
            }
            guard let timestamp = Int(until) else { throw B2Error.badRequest("retainUntilTimestamp must be milliseconds since 1970: \(until)") }
            return Retention(mode: parsed, retainUntilTimestamp: timestamp)
        default:
            throw B2Error.badRequest("\(names) must be given together")
        }
    }

    /// Whether `account` may give a new file in `bucket` this retention at `now` (ms).
    static func checkNew(_ retention: Retention?, bucket: SimulatorState.Bucket, account: B2Simulator.Account, now: Int) throws(B2Error) {
        guard let retention else { return }
        guard account.capabilities.contains("writeFileRetentions") else {
            throw B2Error.unauthorized("application key \(account.keyID) does not have the writeFileRetentions capability")
        }
        guard bucket.objectLock else { throw notEnabled(bucket) }
        guard retention.retainUntilTimestamp > now else {
            throw B2Error.badRequest("retainUntilTimestamp \(retention.retainUntilTimestamp) is not in the future")
        }
    }

    /// B2 refuses retentions outside Object Lock buckets with a 400; the exact code and wording are unverified.
    static func notEnabled(_ bucket: SimulatorState.Bucket) -> B2Error {
        B2Error.badRequest("Object Lock (file lock) is not enabled on bucket \(bucket.name)")
    }

    /// A new file's retention: its own, else the bucket's default counted from the upload.
    static func effective(_ retention: Retention?, bucket: SimulatorState.Bucket, uploadTimestamp: Int) -> Retention? {
        retention ?? bucket.defaultRetention.map { Retention(mode: $0.mode, retainUntilTimestamp: uploadTimestamp + $0.days * 86_400_000) }
    }

    /// Refuses deleting a version whose retention has not ended: compliance always, governance unless the call says
    /// `bypassGovernance` and the key has that capability. Unfinished large files hold no data and may be cancelled.
    /// B2 answers 403 `access_denied` (b2sdk: AccessDenied); that this case uses 403 is unverified.
    static func checkDelete(_ version: SimulatorState.Version, bypassGovernance: Bool, caller: SimulatorState.Caller, now: Int) throws(B2Error) {
        guard version.action == .upload, let retention = version.retention, retention.retainUntilTimestamp > now else { return }
        if retention.mode == .governance, bypassGovernance, caller.can("bypassGovernance") { return }
        let remedy = retention.mode == .governance ? "; deleting it needs bypassGovernance and a key with the bypassGovernance capability" : ""
        throw B2Error(403, "access_denied", "file \(version.name) (\(version.id)) is locked by Object Lock in \(retention.mode.rawValue) mode until \(retention.retainUntilTimestamp)\(remedy)")
    }

    /// `b2_update_file_retention`: compliance may only be extended; governance may be shortened or removed only with
    /// `bypassGovernance` and that capability. A retention that has ended no longer restricts anything.
    static func checkUpdate(from old: Retention?, to new: Retention?, bypassGovernance: Bool, caller: SimulatorState.Caller, now: Int) throws(B2Error) {
        guard let old, old.retainUntilTimestamp > now else { return }
        let weaker = new.map { $0.retainUntilTimestamp < old.retainUntilTimestamp } ?? true
        switch old.mode {
        case .compliance where weaker || new?.mode != .compliance:
            throw B2Error(403, "access_denied", "a compliance retention can only be extended; it lasts until \(old.retainUntilTimestamp)")
        case .governance where weaker && !(bypassGovernance && caller.can("bypassGovernance")):
            throw B2Error(403, "access_denied", "shortening or removing a governance retention needs bypassGovernance and a key with the bypassGovernance capability")
        default:
            return
        }
    }

    // MARK: Responses

    /// `fileRetention.value` of a file object.
    static func json(_ retention: Retention?) -> JSON {
        .object([("mode", .optional(retention?.mode.rawValue)), ("retainUntilTimestamp", retention.map { .int($0.retainUntilTimestamp) } ?? .null)])
    }

    /// `fileLockConfiguration.value` of a bucket.
    static func bucketJSON(_ bucket: SimulatorState.Bucket) -> JSON {
        let period: JSON = bucket.defaultRetention.map { .object([("duration", .int($0.days)), ("unit", .string("days"))]) } ?? .null
        return .object([
            ("defaultRetention", .object([("mode", .optional(bucket.defaultRetention?.mode.rawValue)), ("period", period)])),
            ("isFileLockEnabled", .bool(bucket.objectLock)),
        ])
    }

    /// Download headers of a file in an Object Lock bucket; a key without `readFileRetentions` is told what it may not read.
    static func downloadHeaders(_ version: SimulatorState.Version, bucket: SimulatorState.Bucket, caller: SimulatorState.Caller) -> [(String, String)] {
        guard bucket.objectLock else { return [] }
        guard caller.can("readFileRetentions") else { return [("X-Bz-Client-Unauthorized-To-Read", "\(modeHeader),\(untilHeader)")] }
        guard let retention = version.retention else { return [] }
        return [(modeHeader, retention.mode.rawValue), (untilHeader, String(retention.retainUntilTimestamp))]
    }
}
