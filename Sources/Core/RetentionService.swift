import Foundation
import Logging

/// The retention options, as the service uses them.
public struct RetentionSettings: Sendable, Hashable {
    public var remote: RetentionPolicy
    public var local: RetentionPolicy
    /// Also apply the policies to backups this add-on did not make.
    public var manageOtherBackups: Bool
    /// false: each local copy is deleted right after its upload is verified (`keep_local`).
    public var keepLocal: Bool
    /// Buckets (days, weeks, …) are taken in Home Assistant's time zone.
    public var timeZone: TimeZone
    /// The remote store's name in messages ("B2", or the second destination's title).
    public var remoteName = "B2"

    public init(remote: RetentionPolicy, local: RetentionPolicy, manageOtherBackups: Bool = false, keepLocal: Bool = true, timeZone: TimeZone = .gmt) {
        self.remote = remote
        self.local = local
        self.manageOtherBackups = manageOtherBackups
        self.keepLocal = keepLocal
        self.timeZone = timeZone
    }
}

/// Where a backup is.
public enum BackupLocation: String, Sendable, Hashable, Codable, CaseIterable {
    case b2, local, all
    /// The second destination (S3-compatible).
    case s3
}

/// One entry of the retention preview (`GET /api/retention/preview`).
public struct RetentionPreviewEntry: Sendable, Hashable {
    public var slug: String
    public var name: String
    public var date: Date
    public var keep: Bool
    public var reasons: [String]
}

public struct RetentionPreview: Sendable, Hashable {
    public var b2: [RetentionPreviewEntry]
    public var local: [RetentionPreviewEntry]
}

/// What one retention run did.
public struct RetentionReport: Sendable, Hashable {
    public var deletedFromB2: [String] = []
    public var deletedLocally: [String] = []
    /// Kept although the policy would drop them, because Object Lock holds them ("slug: locked until …").
    public var locked: [String] = []
    public var cancelledUploads = 0
    public var warnings: [String] = []
    /// Why nothing was done, when nothing was.
    public var skipped: String?
}

/// A backup in Home Assistant, in B2, or both (`GET /api/backups`).
public struct ListedBackup: Sendable, Hashable {
    public var slug: String
    public var name: String
    public var date: Date
    public var type: String
    public var protected: Bool
    public var pinned: Bool
    public var remote: CatalogEntry?
    public var local: HomeAssistantBackup?
    /// What the policies would do now.
    public var remoteKeep: Bool?
    public var localKeep: Bool?
    public var reasons: [String]
    /// Copies in the secondary destinations, by destination id, and what their policies would do.
    public var copies: [String: CatalogEntry] = [:]
    public var copyKeep: [String: Bool] = [:]

    public init(slug: String, name: String, date: Date, type: String, protected: Bool, pinned: Bool, remote: CatalogEntry?, local: HomeAssistantBackup?,
                remoteKeep: Bool?, localKeep: Bool?, reasons: [String]) {
        self.slug = slug
        self.name = name
        self.date = date
        self.type = type
        self.protected = protected
        self.pinned = pinned
        self.remote = remote
        self.local = local
        self.remoteKeep = remoteKeep
        self.localKeep = localKeep
        self.reasons = reasons
    }
}

/// Why a manual deletion or pin was refused.
public struct RetentionRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// `not_found`, `pinned`, `newest_verified`, `no_verified_copy`, `locked`, or a port error's code.
    public var code: String
    public var message: String
    public var description: String { message }

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// Any failure on the way, kept with its code.
    init(_ error: any Error) {
        switch error {
        case let refusal as RetentionRefusal: self = refusal
        case let port as PortError: self.init(code: port.code, message: port.message)
        default: self.init(code: "internal", message: "\(error)")
        }
    }
}

/// Applies the retention policies to B2 and to Home Assistant's local backups, keeps the cloud catalog,
/// and answers the listing, the preview, pins and manual deletions. Every deletion goes through
/// `RetentionPlanner`, whose invariants are enforced in one place; this service adds only the rules
/// about *when*: never on a cached catalog, never while a run is unfinished, local copies only once
/// their B2 copy is verified.
public actor RetentionService {
    let catalog: any RemoteCatalog
    let source: any BackupSource
    let jobs: any JobStore
    let settings: RetentionSettings
    let clock: any WallClock
    let logger: Logger
    let cache: (any CatalogCache)?
    /// The last catalog read from (or written to) B2; listings may show it when B2 cannot be reached.
    private var cached: CatalogSnapshot?

    /// Keeps the snapshot in memory and in the state database.
    private func remember(_ snapshot: CatalogSnapshot) async {
        guard snapshot != cached else { return }
        cached = snapshot
        await cache?.cacheCatalog(snapshot)
    }
    /// Unfinished large files younger than this are left alone (they may be an upload being resumed).
    public static let staleUploadAge: TimeInterval = 86_400
    /// Changes to the catalog run one at a time: the actor is reentrant, and two read-modify-write cycles of
    /// the index interleaved would lose one of them.
    private var changing = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    private func beginChange() async {
        if !changing {
            changing = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func endChange() {
        if waiting.isEmpty { changing = false } else { waiting.removeFirst().resume() }
    }

    public init(catalog: any RemoteCatalog, source: any BackupSource, jobs: any JobStore, settings: RetentionSettings, clock: any WallClock,
                cache: (any CatalogCache)? = nil, logger: Logger) {
        self.cache = cache
        self.catalog = catalog
        self.source = source
        self.jobs = jobs
        self.settings = settings
        self.clock = clock
        self.logger = logger
    }

    /// The catalog as B2 has it now (rebuilt and saved when the index was missing or stale).
    public func snapshot() async throws(PortError) -> CatalogSnapshot {
        let load = try await catalog.load()
        var snapshot = load.snapshot
        if load.rebuilt {
            snapshot.updatedAt = clock.now()
            do { try await catalog.save(snapshot) } catch {
                logger.warning("cannot save the rebuilt catalog index", metadata: ["error": "\(error)"])
            }
            // Routine after each upload (the new file is not in the index until recorded); info-worthy only when lost.
            logger.debug("catalog index brought in line with the bucket listing", metadata: ["catalog.backups": "\(snapshot.backups.count)"])
        }
        await remember(snapshot)
        return snapshot
    }

    // MARK: After a backup

    /// Adds a verified upload to the catalog and saves the index (the engine's record step).
    public func record(_ job: Job) async -> [String] {
        guard let remote = job.remote, let slug = job.slug else { return [] }
        await beginChange()
        defer { endChange() }
        do {
            var snapshot = try await self.snapshot()
            let facts = job.local?.facts ?? BackupFacts(date: job.startedAt, type: job.plan.type.rawValue, protected: job.plan.protected,
                                                         homeAssistantVersion: nil, addons: [], folders: [])
            let now = clock.now()
            var entry = CatalogEntry(slug: slug, name: job.plan.name, facts: facts, size: remote.size, sha1: remote.sha1, fileName: remote.name,
                                     fileID: remote.fileID, uploadedAt: now, verifiedAt: now, madeByAddon: true,
                                     lockedUntil: snapshot.backups.first { $0.fileID == remote.fileID }?.lockedUntil)
            entry.lastCheck = job.check
            snapshot.backups.removeAll { $0.fileID == remote.fileID || $0.slug == slug && $0.fileName == remote.name }
            snapshot.backups.append(entry)
            snapshot.updatedAt = now
            try await catalog.save(snapshot)
            await remember(snapshot)
            return []
        } catch {
            return ["the backup is in \(settings.remoteName) but the catalog index could not be updated (it is rebuilt at the next listing): \(error.message)"]
        }
    }

    /// The engine's retention step: the job's own local copy (keep_local: false), then the policies.
    public func afterBackup(_ job: Job) async -> [String] {
        var warnings: [String] = []
        if !settings.keepLocal, let slug = job.slug {
            do { try await source.deleteBackup(slug: slug) } catch {
                warnings.append("the local backup \(slug) was uploaded but could not be removed: \(error.message)")
            }
        }
        let report = await apply(during: job.id)
        return warnings + report.warnings
    }

    // MARK: Policies

    /// Plans both sides on a fresh catalog (never on the cached one).
    public func preview() async throws(PortError) -> RetentionPreview {
        let (snapshot, homeBackups, ours) = try await inputs()
        return preview(snapshot: snapshot, homeBackups: homeBackups, ours: ours)
    }

    private func preview(snapshot: CatalogSnapshot, homeBackups: [HomeAssistantBackup], ours: Set<String>) -> RetentionPreview {
        let now = clock.now()
        let remoteCandidates = snapshot.backups.map { entry in
            RetentionCandidate(id: entry.slug, name: entry.name, date: entry.facts.date, pinned: snapshot.pins.contains(entry.slug),
                               managed: entry.madeByAddon || settings.manageOtherBackups, verified: entry.isVerified, lockedUntil: entry.lockedUntil)
        }
        let verifiedInB2 = Set(snapshot.backups.filter(\.isVerified).map(\.slug))
        let localCandidates = homeBackups.filter(\.isLocal).map { backup in
            RetentionCandidate(id: backup.slug, name: backup.name, date: backup.date, pinned: snapshot.pins.contains(backup.slug),
                               managed: ours.contains(backup.slug) || settings.manageOtherBackups, verified: verifiedInB2.contains(backup.slug))
        }
        func entries(_ candidates: [RetentionCandidate], _ policy: RetentionPolicy) -> [RetentionPreviewEntry] {
            let byID = Dictionary(candidates.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            return RetentionPlanner.plan(candidates, policy: policy, timeZone: settings.timeZone, now: now).compactMap { decision in
                byID[decision.id].map { RetentionPreviewEntry(slug: $0.id, name: $0.name, date: $0.date, keep: decision.keep, reasons: decision.reasons) }
            }
        }
        return RetentionPreview(b2: entries(remoteCandidates, settings.remote), local: entries(localCandidates, settings.local))
    }

    /// Fresh inputs: the catalog from B2, Home Assistant's list, and the slugs this add-on made.
    private func inputs() async throws(PortError) -> (CatalogSnapshot, [HomeAssistantBackup], Set<String>) {
        let snapshot = try await self.snapshot()
        let homeBackups = try await source.homeAssistantBackups()
        var ours = Set(snapshot.backups.filter(\.madeByAddon).map(\.slug))
        if let history = try? await jobs.recentJobs(limit: 10_000) { ours.formUnion(history.filter { $0.kind == .backup }.compactMap(\.slug)) }
        return (snapshot, homeBackups, ours)
    }

    /// One retention run: deletes what the policies drop in B2 and locally, cancels stale unfinished uploads.
    /// Does nothing while a backup run is unfinished (a failed or interrupted run never leads to deletions),
    /// except for `job`: the verified run whose retention step this is.
    @discardableResult
    public func apply(during job: String? = nil) async -> RetentionReport {
        await beginChange()
        defer { endChange() }
        var report = RetentionReport()
        if let unfinished = try? await jobs.unfinishedJobs(), unfinished.contains(where: { $0.id != job }) {
            report.skipped = "a backup run is unfinished"
            return report
        }
        let snapshot: CatalogSnapshot, homeBackups: [HomeAssistantBackup], ours: Set<String>
        do { (snapshot, homeBackups, ours) = try await inputs() } catch {
            report.skipped = "cannot read the catalog or Home Assistant's backups: \(error.message)"
            report.warnings.append("retention did not run: \(error.message)")
            logger.warning("retention skipped", metadata: ["error": "\(error)"])
            return report
        }
        let plan = preview(snapshot: snapshot, homeBackups: homeBackups, ours: ours)
        var remaining = snapshot
        for entry in plan.b2 where !entry.keep {
            guard let backup = snapshot.entry(slug: entry.slug) else { continue }
            do {
                try await catalog.delete(backup)
                remaining.backups.removeAll { $0.fileID == backup.fileID }
                report.deletedFromB2.append(backup.slug)
                logger.info("retention: deleted from the remote store", metadata: ["backup.slug": "\(backup.slug)", "remote": "\(settings.remoteName)", "file_name": "\(backup.fileName)"])
            } catch {
                report.warnings.append("could not delete \(backup.name) from \(settings.remoteName): \(error.message)")
            }
        }
        report.locked = plan.b2.filter { $0.keep && $0.reasons.contains { $0.hasPrefix("locked until") } && $0.reasons.count == 1 }
            .map { "\($0.slug): \($0.reasons[0])" }
        if !report.deletedFromB2.isEmpty {
            remaining.updatedAt = clock.now()
            do { try await catalog.save(remaining) } catch { report.warnings.append("the catalog index could not be saved: \(error.message)") }
            await remember(remaining)
        }
        for entry in plan.local where !entry.keep {
            do {
                try await source.deleteBackup(slug: entry.slug)
                report.deletedLocally.append(entry.slug)
                logger.info("retention: deleted from Home Assistant", metadata: ["backup.slug": "\(entry.slug)"])
            } catch {
                report.warnings.append("could not delete \(entry.name) from Home Assistant: \(error.message)")
            }
        }
        do {
            report.cancelledUploads = try await catalog.cancelUnfinishedUploads(startedBefore: clock.now().addingTimeInterval(-Self.staleUploadAge))
        } catch {
            report.warnings.append("could not cancel stale unfinished uploads: \(error.message)")
        }
        return report
    }

    // MARK: Restorability checks

    /// Checks one stored backup: `slug`, or the one whose last check is oldest (never checked first).
    /// The result is kept in the catalog. Returns nil when there is nothing to check or no checker.
    public func checkRestorability(slug: String? = nil, scheduled: Bool, checker: any RestorabilityChecker,
                                   password: String?) async -> (entry: CatalogEntry, check: RestorabilityCheck)? {
        await beginChange()
        defer { endChange() }
        guard var snapshot = try? await self.snapshot() else { return nil }
        let candidates = snapshot.backups.sorted {
            ($0.lastCheck?.at ?? .distantPast, $0.facts.date) < ($1.lastCheck?.at ?? .distantPast, $1.facts.date)
        }
        guard let entry = slug.map({ slug in candidates.first { $0.slug == slug } }) ?? candidates.first else { return nil }
        let check = await checker.check(fileName: entry.fileName, size: entry.size, sha1: entry.sha1, slug: entry.slug.hasPrefix("file:") ? nil : entry.slug,
                                        password: password)
        if let index = snapshot.backups.firstIndex(where: { $0.fileID == entry.fileID }) { snapshot.backups[index].lastCheck = check }
        if scheduled { snapshot.lastScheduledCheck = clock.now() }
        snapshot.updatedAt = clock.now()
        do { try await catalog.save(snapshot) } catch {
            logger.warning("cannot save the check's result in the catalog index", metadata: ["error": "\(error)"])
        }
        await remember(snapshot)
        logger.info("restorability check", metadata: ["backup.slug": "\(entry.slug)", "check.verdict": "\(check.verdict)", "check.mode": "\(check.mode)"])
        var checked = entry
        checked.lastCheck = check
        return (checked, check)
    }

    /// When the last scheduled check ran, from the catalog (nil: never, or B2 unreachable).
    public func lastScheduledCheck() async -> Date? {
        try? await snapshot().lastScheduledCheck
    }

    // MARK: Listing, pins, manual deletion

    /// Home Assistant's backups and B2's, merged by slug, newest first, with what the policies would do.
    /// When B2 cannot be reached the last known catalog is shown.
    public func listing() async throws(PortError) -> [ListedBackup] {
        let homeBackups = try await source.homeAssistantBackups()
        let snapshot: CatalogSnapshot
        do { snapshot = try await self.snapshot() } catch {
            var fallback = cached
            if fallback == nil { fallback = await cache?.cachedCatalog() }
            guard let fallback else { throw error }
            logger.warning("the remote store cannot be reached; listing the last known catalog", metadata: ["remote": "\(settings.remoteName)", "error": "\(error)"])
            snapshot = fallback
        }
        var ours = Set(snapshot.backups.filter(\.madeByAddon).map(\.slug))
        if let history = try? await jobs.recentJobs(limit: 10_000) { ours.formUnion(history.filter { $0.kind == .backup }.compactMap(\.slug)) }
        let plan = preview(snapshot: snapshot, homeBackups: homeBackups, ours: ours)
        let remoteDecisions = Dictionary(plan.b2.map { ($0.slug, $0) }, uniquingKeysWith: { first, _ in first })
        let localDecisions = Dictionary(plan.local.map { ($0.slug, $0) }, uniquingKeysWith: { first, _ in first })
        var slugs = Set(snapshot.backups.map(\.slug))
        slugs.formUnion(homeBackups.map(\.slug))
        return slugs.map { slug in
            let remote = snapshot.entry(slug: slug)
            let local = homeBackups.first { $0.slug == slug }
            return ListedBackup(slug: slug, name: remote?.name ?? local?.name ?? slug, date: remote?.facts.date ?? local?.date ?? .distantPast,
                                type: remote?.facts.type ?? local?.type ?? "full", protected: remote?.facts.protected ?? local?.protected ?? false,
                                pinned: snapshot.pins.contains(slug), remote: remote, local: local,
                                remoteKeep: remoteDecisions[slug]?.keep, localKeep: localDecisions[slug]?.keep,
                                reasons: (remoteDecisions[slug]?.reasons ?? []) + (localDecisions[slug]?.reasons ?? []).filter { !(remoteDecisions[slug]?.reasons ?? []).contains($0) })
        }.sorted { $0.date != $1.date ? $0.date > $1.date : $0.slug < $1.slug }
    }

    /// Pins or unpins a backup (in B2's index, so the pin survives a reinstall).
    public func setPinned(_ slug: String, _ pinned: Bool) async throws(RetentionRefusal) {
        await beginChange()
        defer { endChange() }
        do {
            var snapshot = try await self.snapshot()
            var known = snapshot.entry(slug: slug) != nil
            if !known { known = try await source.homeAssistantBackups().contains { $0.slug == slug } }
            guard known else { throw RetentionRefusal(code: "not_found", message: "no backup with slug '\(slug)'") }
            if pinned { snapshot.pins.insert(slug) } else { snapshot.pins.remove(slug) }
            snapshot.updatedAt = clock.now()
            try await catalog.save(snapshot)
            await remember(snapshot)
        } catch {
            throw RetentionRefusal(error)
        }
    }

    /// Deletes one backup by hand. Refuses what the invariants forbid (pinned, the newest verified backup,
    /// a local copy without a verified copy in B2) unless `force`; Object Lock cannot be forced.
    /// - Parameter checkOnly: refuse or return without deleting anything (to check every place first).
    public func delete(_ slug: String, from location: BackupLocation, force: Bool, checkOnly: Bool = false) async throws(RetentionRefusal) {
        await beginChange()
        defer { endChange() }
        do {
            guard location != .s3 else { throw RetentionRefusal(code: "internal", message: "a destination's own service deletes its copies as location b2") }
            var snapshot = try await self.snapshot()
            let homeBackups = try await source.homeAssistantBackups()
            let remote = location == .local ? nil : snapshot.entry(slug: slug)
            let local = location == .b2 ? nil : homeBackups.first { $0.slug == slug }
            guard remote != nil || local != nil else {
                throw RetentionRefusal(code: "not_found", message: "no backup with slug '\(slug)' in \(location == .all ? "\(settings.remoteName) or Home Assistant" : location == .local ? "Home Assistant" : settings.remoteName)")
            }
            if let lockedUntil = remote?.lockedUntil, lockedUntil > clock.now() {
                throw RetentionRefusal(code: "locked", message: "\(settings.remoteName) Object Lock keeps this backup until \(ISO8601.string(lockedUntil))")
            }
            if !force {
                if snapshot.pins.contains(slug) {
                    throw RetentionRefusal(code: "pinned", message: "the backup is pinned; unpin it first or pass force=true")
                }
                let newestVerified = snapshot.backups.filter(\.isVerified).max { $0.facts.date < $1.facts.date }
                if remote != nil, newestVerified?.slug == slug {
                    throw RetentionRefusal(code: "newest_verified", message: "this is the newest verified backup in \(settings.remoteName); pass force=true to delete it anyway")
                }
                if local != nil, location == .local, snapshot.entry(slug: slug)?.isVerified != true {
                    throw RetentionRefusal(code: "no_verified_copy", message: "this backup has no verified copy in \(settings.remoteName); pass force=true to delete it anyway")
                }
            }
            if checkOnly { return }
            if let remote {
                try await catalog.delete(remote)
                snapshot.backups.removeAll { $0.fileID == remote.fileID }
                if location == .all { snapshot.pins.remove(slug) } // a pin on the local copy stays while it exists
                snapshot.updatedAt = clock.now()
                try await catalog.save(snapshot)
                await remember(snapshot)
            }
            if local != nil { try await source.deleteBackup(slug: slug) }
        } catch {
            throw RetentionRefusal(error)
        }
    }
}
