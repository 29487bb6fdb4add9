import B2Client
import Foundation
import S3Client
import SupervisorClient
import WebAPI

/// The page's setup check: does what the options name actually work, before the first night?
struct SetupChecker: SetupChecking {
    let b2: B2Client
    let store: B2RemoteStore
    let supervisor: SupervisorClient
    let options: AddonOptions
    /// The second destination, when `s3_enabled` made one.
    var s3: S3RemoteStore?

    /// What the add-on calls; a key without one of these fails somewhere in a backup or a restore.
    static let neededCapabilities = ["listBuckets", "listFiles", "readFiles", "writeFiles", "deleteFiles"]
    static let lockCapabilities = ["readBucketRetentions", "readFileRetentions", "writeFileRetentions"]

    func run() async -> [SetupCheckResult] {
        var results: [SetupCheckResult] = []
        let auth: B2Authorization
        do {
            auth = try await b2.authorize()
        } catch {
            return [SetupCheckResult(id: "key", ok: false, title: "Backblaze key", detail: error.description,
                                     fix: "Check b2_key_id and b2_key: copy both again from Backblaze → Application Keys (the key is shown only once; create a new one if needed).")]
        }
        let needed = Self.neededCapabilities + (options.immutableDays > 0 ? Self.lockCapabilities : [])
        let missing = needed.filter { !auth.capabilities.contains($0) }
        results.append(SetupCheckResult(id: "key", ok: missing.isEmpty, title: "Backblaze key",
                                        detail: missing.isEmpty ? "the key works and has every capability the add-on uses" : "the key lacks: \(missing.joined(separator: ", "))",
                                        fix: missing.isEmpty ? "" : "Create a key with Read and Write access to the bucket (see Documentation: Creating a bucket-restricted application key)."))
        let bucket: B2Bucket
        do {
            bucket = try await store.resolvedBucket()
            results.append(SetupCheckResult(id: "bucket", ok: true, title: "Bucket", detail: "\(bucket.bucketName) is reachable (\(bucket.bucketType ?? "private"))"))
        } catch {
            results.append(SetupCheckResult(id: "bucket", ok: false, title: "Bucket", detail: error.description,
                                            fix: "Check b2_bucket: the bucket must exist and the key must be allowed to use it."))
            return results + (await s3Checks()) + [await supervisorCheck()]
        }
        if let keyPrefix = auth.namePrefix, !keyPrefix.isEmpty, !(store.prefix + "/").hasPrefix(keyPrefix) {
            results.append(SetupCheckResult(id: "prefix", ok: false, title: "Folder", detail: "the key may only use names starting with \(keyPrefix)",
                                            fix: "Set b2_prefix inside \(keyPrefix), or use a key without a file name prefix."))
        } else {
            results.append(SetupCheckResult(id: "prefix", ok: true, title: "Folder", detail: store.prefix.isEmpty ? "backups go to the bucket's top level" : "backups go to \(store.prefix)/"))
        }
        if options.immutableDays > 0 {
            results.append(SetupCheckResult(id: "object_lock", ok: bucket.fileLockEnabled, title: "Object Lock",
                                            detail: bucket.fileLockEnabled ? "uploads are locked for \(options.immutableDays) days" : "immutable_days is set but the bucket has no Object Lock (or the key may not read it)",
                                            fix: bucket.fileLockEnabled ? "" : "Enable Object Lock on the bucket at Backblaze, or set immutable_days to 0."))
        } else {
            results.append(SetupCheckResult(id: "object_lock", ok: true, title: "Object Lock",
                                            detail: bucket.fileLockEnabled ? "the bucket has Object Lock; set immutable_days to protect uploads" : "not used (immutable_days is 0)"))
        }
        results.append(lifecycleCheck(bucket))
        do {
            let unfinished = try await b2.listUnfinishedLargeFiles(bucketID: bucket.bucketId, prefix: store.prefix.isEmpty ? nil : store.prefix + "/")
            results.append(SetupCheckResult(id: "unfinished", ok: true, title: "Unfinished uploads",
                                            detail: unfinished.isEmpty ? "none" : "\(unfinished.count) (ours are cancelled by retention after a day; they still cost storage until then)"))
        } catch {
            results.append(SetupCheckResult(id: "unfinished", ok: false, title: "Unfinished uploads", detail: error.description,
                                            fix: "The key needs the listFiles capability."))
        }
        return results + (await s3Checks()) + [await supervisorCheck()]
    }

    /// The second destination: reachable, and the key may list, write and delete under the prefix, and list
    /// multipart uploads (resume and clean-up need that). A small probe object is written and deleted.
    func s3Checks() async -> [SetupCheckResult] {
        guard options.s3Enabled else { return [] }
        guard let s3 else {
            let missing = options.missingForS3
            return [SetupCheckResult(id: "s3", ok: false, title: "S3 destination",
                                     detail: missing.isEmpty ? "the S3 options cannot make a client (see the log)" : "s3_enabled is on but these are not set: \(missing.joined(separator: ", "))",
                                     fix: "Fill in the S3 options, or set s3_enabled to false.")]
        }
        var results: [SetupCheckResult] = []
        do {
            _ = try await s3.client.listObjectsPage(prefix: s3.listingPrefix, maxKeys: 1)
            results.append(SetupCheckResult(id: "s3", ok: true, title: "S3 destination", detail: "\(s3.title) answers; backups go to \(s3.listingPrefix.isEmpty ? "the top level" : s3.listingPrefix)"))
        } catch {
            return [SetupCheckResult(id: "s3", ok: false, title: "S3 destination", detail: error.description,
                                     fix: "Check s3_endpoint, s3_region, s3_bucket and the key; with MinIO or an IP address, turn on s3_path_style.")]
        }
        let probe = s3.objectName(".b2-backup-setup-check")
        do {
            _ = try await s3.client.putObject(key: probe, bytes: Array("setup check".utf8), contentType: "text/plain")
            try await s3.client.deleteObject(key: probe)
            results.append(SetupCheckResult(id: "s3_write", ok: true, title: "S3 write and delete", detail: "a probe object was written and deleted"))
        } catch {
            results.append(SetupCheckResult(id: "s3_write", ok: false, title: "S3 write and delete", detail: error.description,
                                            fix: "Give the key s3:PutObject and s3:DeleteObject on the bucket (see Documentation: A second destination)."))
        }
        do {
            let unfinished = try await s3.client.listMultipartUploads(prefix: s3.listingPrefix)
            results.append(SetupCheckResult(id: "s3_multipart", ok: true, title: "S3 unfinished uploads",
                                            detail: unfinished.isEmpty ? "none" : "\(unfinished.count) (resumed by the next run, or aborted by retention after a day)"))
        } catch {
            results.append(SetupCheckResult(id: "s3_multipart", ok: false, title: "S3 unfinished uploads", detail: error.description,
                                            fix: "Give the key s3:ListBucketMultipartUploads, s3:ListMultipartUploadParts and s3:AbortMultipartUpload."))
        }
        return results
    }

    /// Rules under our prefix that hide uploads delete backups behind the add-on's back; with b2_deletion:
    /// hide, something must delete hidden files.
    func lifecycleCheck(_ bucket: B2Bucket) -> SetupCheckResult {
        let ours = bucket.lifecycleRules.filter { rule in (store.prefix + "/").hasPrefix(rule.fileNamePrefix) || rule.fileNamePrefix.hasPrefix(store.prefix) }
        if let hiding = ours.first(where: { ($0.daysFromUploadingToHiding ?? 0) > 0 }) {
            return SetupCheckResult(id: "lifecycle", ok: false, title: "Lifecycle rules",
                                    detail: "a rule hides files under '\(hiding.fileNamePrefix)' \(hiding.daysFromUploadingToHiding!) days after upload, whatever the retention options say",
                                    fix: "Remove daysFromUploadingToHiding from that rule at Backblaze; the add-on's retention decides what to keep.")
        }
        if options.b2Deletion == "hide", !ours.contains(where: { $0.daysFromHidingToDeleting != nil }) {
            return SetupCheckResult(id: "lifecycle", ok: false, title: "Lifecycle rules", detail: "b2_deletion is hide, but no rule deletes hidden files: they are kept (and billed) forever",
                                    fix: "Add a lifecycle rule with daysFromHidingToDeleting for the prefix, or set b2_deletion to delete.")
        }
        return SetupCheckResult(id: "lifecycle", ok: true, title: "Lifecycle rules",
                                detail: ours.isEmpty ? "none for the prefix; retention alone decides" : "\(ours.count) rule(s) for the prefix, none hides backups early")
    }

    func supervisorCheck() async -> SetupCheckResult {
        do {
            let info = try await supervisor.info()
            return SetupCheckResult(id: "supervisor", ok: true, title: "Home Assistant",
                                    detail: "the Supervisor answers (Home Assistant \(info.homeassistant ?? "?"), time zone \(info.timezone))")
        } catch {
            return SetupCheckResult(id: "supervisor", ok: false, title: "Home Assistant", detail: error.description,
                                    fix: "The add-on needs hassio_api with the backup role; reinstall or update the add-on.")
        }
    }
}
