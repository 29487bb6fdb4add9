import Foundation
import Logging

/// What a caller asks to restore (`POST /api/backups/{slug}/restore`).
public struct RestoreOptions: Sendable, Hashable, Codable {
    /// `full` or `partial`.
    public var type: String
    /// For encrypted backups; defaults to the `backup_password` option.
    public var password: String?
    public var homeassistant: Bool?
    public var addons: [String]?
    public var folders: [String]?
    /// Where to download from first: `auto`, `b2` or `s3`; nil for the `restore_source` option.
    public var source: String?

    public init(type: String = "full", password: String? = nil, homeassistant: Bool? = nil, addons: [String]? = nil, folders: [String]? = nil,
                source: String? = nil) {
        self.source = source
        self.type = type
        self.password = password
        self.homeassistant = homeassistant
        self.addons = addons
        self.folders = folders
    }

    enum CodingKeys: String, CodingKey { case type, password, homeassistant, addons, folders, source }

    /// Every field optional; `type` defaults to full.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        type = try container.decodeIfPresent(String.self, forKey: .type) ?? "full"
        password = try container.decodeIfPresent(String.self, forKey: .password)
        homeassistant = try container.decodeIfPresent(Bool.self, forKey: .homeassistant)
        addons = try container.decodeIfPresent([String].self, forKey: .addons)
        folders = try container.decodeIfPresent([String].self, forKey: .folders)
        source = try container.decodeIfPresent(String.self, forKey: .source)
    }

    public func validate() throws(JobError) {
        if let source, !["auto", DestinationID.b2, DestinationID.s3].contains(source) {
            throw JobError(code: "invalid_request", message: "'source' is auto, b2 or s3")
        }
        guard type == "full" || type == "partial" else { throw JobError(code: "invalid_request", message: "'type' is full or partial") }
        if type == "full", homeassistant != nil || addons != nil || folders != nil {
            throw JobError(code: "invalid_request", message: "a full restore takes no 'homeassistant', 'addons' or 'folders'; use type partial")
        }
        if type == "partial", homeassistant != true, (addons ?? []).isEmpty, (folders ?? []).isEmpty {
            throw JobError(code: "invalid_request", message: "a partial restore needs 'homeassistant': true, 'addons' or 'folders'")
        }
        if let addons, let bad = addons.first(where: { !BackupRequest.isAddonSlug($0) }) {
            throw JobError(code: "invalid_request", message: "'addons' has '\(bad)', which is not an add-on slug")
        }
        if let folders, let unknown = folders.first(where: { !BackupSettings.folders.contains($0) }) {
            throw JobError(code: "invalid_request", message: "'folders' has '\(unknown)'; folders are \(BackupSettings.folders.joined(separator: ", "))")
        }
    }
}

extension BackupEngine {
    /// Starts a pull (B2 → Home Assistant) or a restore job for a backup the caller found in the catalog or
    /// in Home Assistant. The password is held in memory only until the Supervisor has the restore.
    public func startRestore(_ spec: RestoreSpec, name: String, restore: Bool, password: String?, trigger: JobTrigger = .manual)
        async throws(EngineRefusal) -> Job {
        try refuseWhileRunning()
        guard catalog != nil || spec.locations.isEmpty else {
            throw .notConfigured(missing: ["b2_key_id", "b2_key", "b2_bucket"])
        }
        let plan = BackupPlan(name: name, filename: spec.locations.first.map { String($0.fileName.split(separator: "/").last ?? Substring($0.fileName)) } ?? "\(spec.slug).tar",
                              type: spec.partial ? .partial : .full, excludeAddons: [], excludeFolders: [], excludeDatabase: false,
                              protected: password != nil)
        var job = Job(id: Self.newID(), trigger: trigger, plan: plan, startedAt: clock.now())
        job.kind = restore ? .restore : .pull
        job.restore = spec
        job.slug = spec.slug
        job.step = .pull
        if let password = password ?? settings.password { restorePasswords[job.id] = password }
        launch(job, isNew: true)
        return job
    }

    /// pull → handover → restore; a pull job stops after the handover.
    func performRestoreStep(_ job: inout Job) async throws {
        guard let spec = job.restore else { throw JobError(code: "internal", message: "a restore job without its spec") }
        switch job.step {
        case .pull:
            if try await source.homeAssistantBackups().contains(where: { $0.slug == spec.slug }) {
                advance(&job, to: job.kind == .restore ? .restore : .done) // already in Home Assistant: nothing to move
                return
            }
            let local = try await download(spec, job: &job)
            job.local = local
            job.bytesDone = local.size
            job.bytesTotal = local.size
            advance(&job, to: .handover)
        case .handover:
            guard let local = job.local else { throw JobError(code: "internal", message: "nothing to hand over") }
            let slug = try await source.uploadBackup(path: local.path, filename: job.plan.filename)
            await cleanUpTemporary(&job)
            guard slug == spec.slug else {
                throw JobError(code: "slug_mismatch", message: "Home Assistant read slug \(slug) from the file, but the catalog lists it as \(spec.slug)")
            }
            advance(&job, to: job.kind == .restore ? .restore : .done)
        case .restore:
            if job.supervisorJobID == nil {
                // Kept beside the backups before asking: a full restore stops this add-on and may replace its data.
                await source.saveRestoreIntent(job)
                let id = try await source.startRestore(spec, password: restorePasswords[job.id])
                restorePasswords[job.id] = nil
                job.supervisorJobID = id
                advance(&job, to: .restore)
                await save(job)
                await source.saveRestoreIntent(job)
            }
            try await source.waitForRestore(jobID: job.supervisorJobID!)
            await source.removeRestoreIntent(id: job.id)
            advance(&job, to: .done)
        default:
            throw JobError(code: "internal", message: "step \(job.step.rawValue) is not a restore step")
        }
    }

    /// Downloads from the first destination that delivers a whole, SHA-1-checked copy, in the order the
    /// request chose; a destination that is down or holds a damaged copy hands over to the next.
    private func download(_ spec: RestoreSpec, job: inout Job) async throws -> LocalCopy {
        let sources = spec.locations
        guard !sources.isEmpty else {
            throw JobError(code: "not_found", message: "backup \(spec.slug) is neither in Home Assistant nor in a backup destination")
        }
        var failures: [(code: String, message: String)] = []
        for source in sources {
            guard let catalog = catalog(of: source.destination) else {
                failures.append(("not_configured", "\(title(of: source.destination)) is not configured"))
                continue
            }
            do {
                let local = try await catalog.download(fileName: source.fileName, sha1: source.sha1, size: source.size, progress: progressReporter(for: job.id))
                // Worth a word when it is not the usual place (B2), or when a destination let us down.
                if source.destination != DestinationID.b2 || !failures.isEmpty {
                    job.warnings.append("downloaded from \(title(of: source.destination))"
                                        + (failures.isEmpty ? "" : " because " + failures.map(\.message).joined(separator: "; ")))
                }
                return local
            } catch {
                if Task.isCancelled { throw CancellationError() }
                failures.append((error.code, "\(title(of: source.destination)): \(error.message)"))
                logger.warning("download failed; trying the next destination", metadata: ["job.id": "\(job.id)", "destination": "\(source.destination)",
                                                                                          "error": "\(error.message)"])
            }
        }
        throw JobError(code: failures.last?.code ?? "not_found",
                       message: "no destination could deliver backup \(spec.slug): " + failures.map(\.message).joined(separator: "; "))
    }
}
