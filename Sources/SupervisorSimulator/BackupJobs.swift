import BackupArchive
import Foundation
import Logging

/// What a backup contains.
struct BackupPlan: Sendable {
    /// backup.json without `addons` (they are added as they are saved, as `_app_save` does).
    var metadata: BackupMetadata
    var addons: [SupervisorSimulator.InstalledAddon]
    var payloadBytes: Int
}

/// A backup the API asked for, after validation.
struct BackupOrder: Sendable {
    var kind: SupervisorState.JobKind
    var name: String
    var fileName: String?
    var password: String?
    var compressed: Bool
    var excludeDatabase: Bool
    var extra: JSONObject
    var homeassistant: Bool
    var addons: [SupervisorSimulator.InstalledAddon]
    var folders: [String]
}

/// A restore the API asked for, after validation.
struct RestoreOrder: Sendable {
    var kind: SupervisorState.JobKind
    var slug: String
    var password: String?
    var location: String?
    var homeassistant: Bool
    var addons: [String]
    var folders: [String]
}

/// Backup, restore and freeze jobs as `BackupManager` runs them (`backups/manager.py`): the job is created,
/// the system freezes, the API call returns the job ID (with `background: true`) and the work goes on.
enum BackupJobs {
    /// Where the Supervisor keeps local backups, as its messages name them.
    static let supervisorBackupPath = "/data/backup"

    // MARK: Backup

    /// Starts a backup job; returns once the system froze, as `_background_backup_task` does. The task's
    /// value is the slug on success, nil on failure (the job then carries the error).
    static func startBackup(_ order: BackupOrder, _ context: Context) async throws(APIError) -> (jobID: String, task: Task<String?, Never>) {
        if await context.faults.takeBusy() { throw SupervisorState.blocked(order.kind) }
        let state = context.state
        let jobID = try await state.startJob(order.kind)
        let date = BackupMetadata.isoDate(Date())
        let slug = BackupMetadata.slug(name: order.name, date: date)
        // `_create_backup`: the slug becomes the job's reference; the first stage stores repositories.
        await state.update(jobID, reference: slug, stage: "addon_repositories")
        await state.freeze()
        let fileName = order.fileName.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "\(slug).tar"
        var metadata = BackupMetadata(slug: slug, name: order.name, date: date, type: order.kind == .fullBackup ? "full" : "partial",
                                      supervisorVersion: context.configuration.supervisorVersion)
        metadata.extra = order.extra
        metadata.protected = order.password != nil && order.password != ""
        metadata.compressed = order.compressed
        metadata.repositories = context.configuration.repositories
        metadata.folders = order.folders
        if order.homeassistant {
            metadata.homeassistant = .init(version: context.configuration.homeassistantVersion, excludeDatabase: order.excludeDatabase)
        }
        let plan = BackupPlan(metadata: metadata, addons: order.addons, payloadBytes: context.configuration.backupPayloadBytes)
        let file = context.configuration.backupDirectory.appendingPathComponent(fileName)
        let task = Task { await runBackup(jobID: jobID, plan: plan, file: file, password: order.password, context) }
        await state.register(task, for: jobID)
        return (jobID, task)
    }

    private static func runBackup(jobID: String, plan: BackupPlan, file: URL, password: String?, _ context: Context) async -> String? {
        let state = context.state
        let slug = plan.metadata.slug
        let failure = await context.faults.takeBackupFailure()
        var stages: [String] = []
        if plan.metadata.homeassistant != nil { stages.append("home_assistant") }
        if !plan.addons.isEmpty { stages.append("addons") }
        if !plan.metadata.folders.isEmpty { stages.append("folders") }
        stages.append("finishing_file")
        let pause = (context.configuration.jobDuration + (await context.faults.jobSlowdown)) / max(1, stages.count)

        // `Backup.create()` refuses an existing file, and the failed backup's cleanup then deletes that file.
        if FileManager.default.fileExists(atPath: file.path) {
            try? FileManager.default.removeItem(at: file)
            context.logger.info("Supervisor simulator: backup file name exists; the existing file was deleted", metadata: ["supervisor.file": "\(file.lastPathComponent)"])
            await state.finish(jobID, error: .init(type: "BackupFileExistError",
                                                   message: "Cannot make new backup at \(supervisorBackupPath)/\(file.lastPathComponent), file already exists!",
                                                   stage: "addon_repositories"))
            return nil
        }
        // One key for the whole backup: Argon2id (v3) runs once, every archive shares its root parameters.
        var protection: SecureTarBackupKey?
        if plan.metadata.protected, let password {
            let version = secureTarVersion(coreVersion: context.configuration.homeassistantVersion)
            do {
                protection = try await offload { SecureTarBackupKey(password: password, version: version) }
            } catch {
                await state.finish(jobID, error: .init(type: "BackupError", message: "Backup \(slug) error, see supervisor logs", stage: "addon_repositories"))
                return nil
            }
        }
        let writer: BackupArchiveWriter
        do {
            writer = try BackupArchiveWriter(destination: file, scratchDirectory: context.scratch, protection: protection)
        } catch {
            await state.finish(jobID, error: .init(type: "BackupError", message: "Cannot open backup file \(supervisorBackupPath)/\(file.lastPathComponent) for writing", stage: "addon_repositories"))
            return nil
        }
        var metadata = plan.metadata
        let compressed = metadata.compressed
        do {
            for stage in stages {
                await state.update(jobID, stage: stage)
                try await Task.sleep(for: pause)
                switch stage {
                case "home_assistant":
                    let core = metadata.homeassistant!
                    try await offload { try writer.addHomeAssistant(version: core.version, excludeDatabase: core.excludeDatabase,
                                                                    payloadBytes: plan.payloadBytes, compressed: compressed) }
                    if let failure { throw InjectedFailure(message: failure) }
                case "addons":
                    for addon in plan.addons {
                        try await offload { try writer.addAddon(slug: addon.slug, name: addon.name, version: addon.version, compressed: compressed) }
                        metadata.addons.append(.init(slug: addon.slug, name: addon.name, version: addon.version))
                    }
                    if let failure { throw InjectedFailure(message: failure) }
                case "folders":
                    for folder in metadata.folders {
                        try await offload { try writer.addFolder(folder, compressed: compressed) }
                    }
                    if let failure { throw InjectedFailure(message: failure) }
                default:
                    if let failure { throw InjectedFailure(message: failure) }
                    let finished = metadata
                    let size = try await offload { try writer.finish(metadata: finished) }
                    await state.add(.init(metadata: metadata, file: file, sizeBytes: size))
                    if metadata.protected, let password { await state.rememberPassword(.exactly(password), slug: slug) }
                }
            }
        } catch {
            writer.abandon()
            // `_do_backup` captures a BackupError and returns None: the job ends done, progress 100, with the error.
            let message = (error as? InjectedFailure)?.message ?? "Backup \(slug) error, see supervisor logs"
            await state.finish(jobID, error: .init(type: "BackupError", message: message, stage: await state.stage(of: jobID)))
            return nil
        }
        if !plan.addons.isEmpty { await state.update(jobID, stage: "await_addon_restarts") }
        await state.finish(jobID)
        return slug
    }

    /// Writes a whole backup at once (no job), for seeding; `protection` encrypts every archive.
    static func write(_ plan: BackupPlan, to file: URL, scratch: URL, protection: SecureTarBackupKey? = nil) async throws -> Int64 {
        let writer = try BackupArchiveWriter(destination: file, scratchDirectory: scratch, protection: protection)
        do {
            return try await offload {
                var metadata = plan.metadata
                if let core = metadata.homeassistant {
                    try writer.addHomeAssistant(version: core.version, excludeDatabase: core.excludeDatabase, payloadBytes: plan.payloadBytes,
                                                compressed: metadata.compressed)
                }
                for addon in plan.addons {
                    try writer.addAddon(slug: addon.slug, name: addon.name, version: addon.version, compressed: metadata.compressed)
                    metadata.addons.append(.init(slug: addon.slug, name: addon.name, version: addon.version))
                }
                for folder in metadata.folders { try writer.addFolder(folder, compressed: metadata.compressed) }
                return try writer.finish(metadata: metadata)
            }
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// The SecureTar version `Backup.create` writes: v3 when the installed Core is 2026.3.0 or newer (not
    /// `landingpage`), else v2 (`const.py CORE_SECURETAR_V3_MIN_VERSION`).
    static func secureTarVersion(coreVersion: String) -> SecureTarBackupKey.Version {
        coreVersion == "landingpage" || versionIsNewer("2026.3.0", than: coreVersion) ? .v2 : .v3
    }

    private struct InjectedFailure: Error {
        let message: String
    }

    /// Runs blocking file work on its own thread so large backups do not hold a cooperative thread.
    static func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    // MARK: Restore

    /// Starts a restore job. Checks that fail before the system freezes (partial backup for a full
    /// restore, location, password, missing Home Assistant, newer Supervisor) end the job with the error
    /// and are thrown, so the API answers 400 with the message even with `background: true`.
    static func startRestore(_ order: RestoreOrder, backup: SupervisorState.Backup, _ context: Context) async throws(APIError) -> (jobID: String, task: Task<Bool, Never>) {
        if await context.faults.takeBusy() { throw SupervisorState.blocked(order.kind) }
        let state = context.state
        let jobID = try await state.startJob(order.kind)
        await state.update(jobID, reference: order.slug)
        let metadata = backup.metadata
        let full = order.kind == .fullRestore
        do throws(APIError) {
            if full, metadata.type != "full" { throw APIError("\(order.slug) is only a partial backup!") }
            if let location = order.location, !["", ".local"].contains(location) {
                throw APIError("Backup \(order.slug) does not exist in \(location)")
            }
            if metadata.protected {
                let given = order.password.flatMap { $0.isEmpty ? nil : $0 }
                let accepted: Bool
                switch await state.password(slug: order.slug) {
                case .exactly(let expected)?:
                    // Written here: the password is compared with the one the backup was made with.
                    accepted = given == expected
                case .anyNonEmpty?:
                    accepted = given != nil
                case nil:
                    // Uploaded or found in the folder: securetar opens the first archive, as the Supervisor does.
                    let file = backup.file
                    let compressed = metadata.compressed
                    accepted = (try? await offload { PasswordValidation.accepts(given, backupAt: file, compressed: compressed) }) ?? false
                }
                guard accepted else { throw APIError("Invalid password for backup \(order.slug)") }
            }
            if !full, order.homeassistant, metadata.homeassistant == nil {
                throw APIError("No Home Assistant Core data inside the backup")
            }
            if versionIsNewer(metadata.supervisorVersion, than: context.configuration.supervisorVersion) {
                throw APIError("Backup was made on supervisor version \(metadata.supervisorVersion), can't restore on "
                    + "\(context.configuration.supervisorVersion). Must update supervisor first.")
            }
        } catch {
            // Raised inside the job: it is captured on the job, which ends without reaching 100.
            await state.finish(jobID, error: .init(type: "BackupInvalidError", message: error.message, stage: nil), completed: false)
            throw error
        }
        let addons = full ? metadata.addons.map(\.slug) : order.addons
        let folders = full ? metadata.folders : order.folders.filter { $0 != "homeassistant" }
        let homeassistant = full || order.homeassistant || order.folders.contains("homeassistant")
        await state.freeze(stoppingCore: homeassistant)
        await state.record(RestoreRecord(slug: order.slug, type: full ? "full" : "partial", password: order.password,
                                         homeassistant: homeassistant, addons: addons, folders: folders, jobID: jobID))
        let task = Task { await runRestore(jobID: jobID, metadata: metadata, full: full, addons: addons, folders: folders, homeassistant: homeassistant, context) }
        await state.register(task, for: jobID)
        return (jobID, task)
    }

    private static func runRestore(jobID: String, metadata: BackupMetadata, full: Bool, addons: [String], folders: [String],
                                   homeassistant: Bool, _ context: Context) async -> Bool {
        let state = context.state
        var stages: [String] = []
        if !folders.isEmpty { stages.append("folders") }
        if homeassistant { stages.append("home_assistant") }
        if full { stages.append("remove_delta_addons") }
        if !addons.isEmpty { stages += ["addon_repositories", "addons", "await_addon_restarts"] }
        if homeassistant { stages.append("await_home_assistant_restart") }
        let pause = (context.configuration.jobDuration + (await context.faults.jobSlowdown)) / max(1, stages.count)
        for stage in stages {
            await state.update(jobID, stage: stage)
            do {
                try await Task.sleep(for: pause)
            } catch {
                await state.finish(jobID, error: .init(type: "BackupError", message: "Restore \(metadata.slug) error, see supervisor logs", stage: stage))
                return false
            }
        }
        // A part that is not in the backup fails in its child job (`_addon_restore`: "Can't find backup …");
        // the restore returns False and the top-level job shows no error of its own.
        let missingAddons = addons.filter { slug in !metadata.addons.contains { $0.slug == slug } }
        let missingFolders = folders.filter { !metadata.folders.contains($0) }
        let now = BackupMetadata.isoDate(Date())
        func failed(_ name: String, _ reference: String, _ message: String) -> SupervisorState.Job {
            SupervisorState.Job(uuid: SupervisorState.newJobID(), name: name, reference: reference, done: true,
                                errors: [.init(type: "BackupError", message: message, stage: nil)], created: now)
        }
        if !missingFolders.isEmpty {
            var parent = SupervisorState.Job(uuid: SupervisorState.newJobID(), name: "backup_restore_folders", progress: 100, done: true, created: now)
            parent.children = missingFolders.map { failed("backup_folder_restore", $0, "Can't find restore folder \($0)") }
            await state.addChild(parent, to: jobID)
        }
        if !missingAddons.isEmpty {
            var parent = SupervisorState.Job(uuid: SupervisorState.newJobID(), name: "backup_restore_addons", progress: 100, done: true, created: now)
            parent.children = missingAddons.map { failed("backup_addon_restore", $0, "Can't find backup \($0)") }
            await state.addChild(parent, to: jobID)
        }
        await state.applyRestore(addons: metadata.addons.filter { addons.contains($0.slug) }, replace: full)
        let success = missingAddons.isEmpty && missingFolders.isEmpty
        await state.finish(jobID)
        return success
    }

    // MARK: Freeze

    /// `POST /backups/freeze`: the system stays frozen until thaw or the timeout.
    static func freeze(timeout: Int, _ context: Context) async throws(APIError) {
        let state = context.state
        let jobID = try await state.startJob(.freeze)
        await state.freeze()
        let task = Task {
            try? await Task.sleep(for: .seconds(timeout))
            await state.finish(jobID)
        }
        await state.register(task, for: jobID)
    }

    /// `POST /backups/thaw`.
    static func thaw(_ context: Context) async throws(APIError) {
        let state = context.state
        guard let job = await state.allJobs().last(where: { $0.name == SupervisorState.JobKind.freeze.name && $0.done == false }) else {
            throw APIError("'BackupManager.thaw_all' blocked from execution, system is not frozen - \(await state.phase.rawValue)")
        }
        await state.finish(job.uuid)
    }

    /// AwesomeVersion-style comparison of dotted versions (`2026.08.0` vs `2026.10.1`); unparsable parts compare as text.
    static func versionIsNewer(_ version: String, than other: String) -> Bool {
        let lhs = version.split(separator: ".")
        let rhs = other.split(separator: ".")
        for index in 0..<max(lhs.count, rhs.count) {
            let left = index < lhs.count ? String(lhs[index]) : "0"
            let right = index < rhs.count ? String(rhs[index]) : "0"
            if let l = Int(left), let r = Int(right) {
                if l != r { return l > r }
            } else if left != right {
                return left > right
            }
        }
        return false
    }
}

/// `Backup.validate_backup` before a restore of a protected backup: securetar opens the backup's first
/// inner archive (`*.tar.gz`, or `*.tar` when uncompressed) with the password and reads its start. v3 is
/// decided by the validation key in its header (one Argon2id), v2 by the first decrypted block; a plain
/// archive is taken as v1 and fails with a password but reads without one. Only that first archive is
/// looked at, so damage later in the file goes unnoticed, as in the Supervisor.
enum PasswordValidation {
    static func accepts(_ password: String?, backupAt file: URL, compressed: Bool) -> Bool {
        guard let reader = try? TarReader(url: file) else { return false }
        let ending = compressed ? ".tar.gz" : ".tar"
        do {
            while let entry = try reader.next() {
                guard entry.kind == .file, entry.normalizedName.hasSuffix(ending) else { continue }
                let head = try reader.readChunk(maxBytes: SecureTarPassword.headSize) ?? []
                guard let password else { return SecureTarPassword.isPlaintext(archiveHead: head) }
                return SecureTarPassword.opens(archiveHead: head, password: password)
            }
        } catch {
            return false
        }
        return true // "No tar file found to validate password with"
    }
}
