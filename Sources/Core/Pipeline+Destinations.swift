import Foundation
import Logging
import Synchronization

/// One destination as the status API and the page show it.
public struct DestinationStatus: Sendable, Hashable {
    public struct Verified: Sendable, Hashable {
        public var slug: String
        public var name: String
        public var at: Date
    }

    public var id: String
    public var title: String
    public var bucket: String
    /// Whether a run fails without a verified copy here (`require_all_destinations`; B2 alone is always required).
    public var required: Bool
    /// `ok` (the last run's copy here was verified), `failing` (it was not, or the store cannot be reached), `unknown`.
    public var state: String
    public var summary: RemoteSummary?
    public var lastVerified: Verified?
    public var lastError: JobError?
    public var lastErrorAt: Date?
}

extension Pipeline {
    /// The secondary destinations, as the engine copies to them.
    public var secondaries: [SecondaryDestination] { engine.secondaries }

    /// What the run history says of one destination (kept from the last refresh, not read per status).
    struct RunHistory: Sendable {
        var lastVerified: DestinationStatus.Verified?
        var lastError: JobError?
        var lastErrorAt: Date?
        /// The newest finished run failed to make a verified copy here.
        var newestRunFailed = false
    }

    /// Every destination: B2 first. Only what was gathered when runs ended (`refreshRemoteSummary`): the
    /// sensor, the page and `/metrics` ask for it often.
    public func destinationStatuses() async -> [DestinationStatus] {
        let ids = [DestinationID.b2] + secondaries.map(\.id)
        let history = runHistories.withLock { $0 }
        let unreachable = unreachableDestinations.withLock { $0 }
        let summaries = destinationSummaries.withLock { $0 }
        let catalogVerified = newestVerifiedInCatalogs.withLock { $0 }
        let requireAll = await engine.requirement == .all || secondaries.isEmpty
        return ids.map { id in
            let runs = history[id] ?? RunHistory()
            var status = DestinationStatus(id: id, title: id == DestinationID.b2 ? "Backblaze B2" : secondaries.first { $0.id == id }?.title ?? id,
                                           bucket: id == DestinationID.b2 ? primaryBucket : secondaries.first { $0.id == id }?.bucket ?? "",
                                           required: requireAll, state: "unknown",
                                           summary: id == DestinationID.b2 ? remoteSummaryValue : summaries[id],
                                           // A fresh install has no runs of its own yet, but the bucket's catalog knows.
                                           lastVerified: runs.lastVerified ?? catalogVerified[id], lastError: runs.lastError, lastErrorAt: runs.lastErrorAt)
            if let problem = unreachable[id] {
                status.lastError = problem.error
                status.lastErrorAt = problem.at
            }
            status.state = status.lastError != nil && (unreachable[id] != nil || runs.newestRunFailed) ? "failing"
                : status.lastVerified != nil ? "ok" : "unknown"
            return status
        }
    }

    /// Reads the run history once per finished run: each destination's last verified copy and the errors
    /// since. Without a verified run here, the destination's catalog is asked once for its newest copy.
    func refreshRunHistories() async {
        let ids = [DestinationID.b2] + secondaries.map(\.id)
        let finished = ((try? await store.recentJobs(limit: 200)) ?? []).filter { $0.kind == .backup && $0.isFinished }
        var histories: [String: RunHistory] = [:]
        for id in ids {
            var runs = RunHistory()
            runs.newestRunFailed = finished.first?.destinationResults(destinations: [id]).first?.error != nil
            for job in finished {
                guard let result = job.destinationResults(destinations: [id]).first else { continue }
                if let verifiedAt = result.verifiedAt {
                    runs.lastVerified = .init(slug: job.slug ?? "", name: job.plan.name, at: verifiedAt)
                    break
                }
                if let error = result.error, runs.lastError == nil {
                    runs.lastError = error
                    runs.lastErrorAt = job.finishedAt
                }
            }
            histories[id] = runs
        }
        runHistories.withLock { $0 = histories }
        let known = newestVerifiedInCatalogs.withLock { $0 }
        for id in ids where histories[id]?.lastVerified == nil && known[id] == nil {
            if let service = id == DestinationID.b2 ? retention : secondaries.first(where: { $0.id == id })?.retention {
                await rememberNewestVerified(id, service)
            }
        }
    }

    /// Counts what each secondary destination holds; a failure marks it unreachable until the next count.
    func refreshSecondarySummaries() async {
        for destination in secondaries {
            do {
                let summary = try await destination.store.summary()
                destinationSummaries.withLock { $0[destination.id] = summary }
                unreachableDestinations.withLock { $0[destination.id] = nil }
            } catch {
                logger.warning("cannot count the backups in the second destination", metadata: ["destination": "\(destination.id)", "error": "\(error)"])
                unreachableDestinations.withLock {
                    $0[destination.id] = (JobError(code: error.code, message: "\(destination.title): \(error.message)"), clock.now())
                }
            }
        }
    }

    /// The newest verified backup in a destination's catalog, for the status of an install that has no verified
    /// run there of its own yet (restored onto a fresh Home Assistant).
    func rememberNewestVerified(_ id: String, _ service: RetentionService) async {
        guard let snapshot = try? await service.snapshot(),
              let newest = snapshot.backups.filter(\.isVerified).max(by: { $0.facts.date < $1.facts.date }), let verifiedAt = newest.verifiedAt else { return }
        newestVerifiedInCatalogs.withLock { $0[id] = .init(slug: newest.slug, name: newest.name, at: verifiedAt) }
    }

    /// Home Assistant's backups merged with every destination's catalog, newest first. When B2 cannot be
    /// reached (and has no cached catalog) the second destination's catalog stands in, so a homeowner can
    /// still see and restore every backup.
    public func listing() async throws(PortError) -> [ListedBackup] {
        guard let retention else { throw PortError(code: "not_configured", message: "no backup destination is configured") }
        var merged: [ListedBackup]?
        var primaryError: PortError?
        do { merged = try await retention.listing() } catch { primaryError = error }
        for destination in secondaries {
            let theirs: [ListedBackup]
            do { theirs = try await destination.retention.listing() } catch {
                logger.warning("cannot list the second destination", metadata: ["destination": "\(destination.id)", "error": "\(error)"])
                continue
            }
            var list = merged ?? []
            for backup in theirs {
                guard let copy = backup.remote else { continue }
                let reasons = backup.remoteKeep == false ? [] : backup.reasons.map { "\(destination.title): \($0)" }
                if let index = list.firstIndex(where: { $0.slug == backup.slug }) {
                    list[index].copies[destination.id] = copy
                    list[index].copyKeep[destination.id] = backup.remoteKeep
                    if list[index].remote == nil { list[index].reasons += reasons }
                } else {
                    var only = backup
                    only.remote = nil
                    only.remoteKeep = nil
                    only.localKeep = merged == nil ? nil : backup.localKeep
                    only.reasons = reasons
                    only.copies[destination.id] = copy
                    only.copyKeep[destination.id] = backup.remoteKeep
                    list.append(only)
                }
            }
            // Home Assistant's own backups are in every listing; keep each once.
            merged = list
        }
        guard let merged else { throw primaryError ?? PortError(code: "internal", message: "no listing") }
        return merged.sorted { $0.date != $1.date ? $0.date > $1.date : $0.slug < $1.slug }
    }

    /// Pins or unpins a backup in every destination's index (a pin must hold wherever the backup is).
    public func setPinned(_ slug: String, _ pinned: Bool) async throws(RetentionRefusal) {
        guard let retention else { throw RetentionRefusal(code: "not_configured", message: "no backup destination is configured") }
        var failures: [RetentionRefusal] = []
        var done = false
        for service in [retention] + secondaries.map(\.retention) {
            do throws(RetentionRefusal) {
                try await service.setPinned(slug, pinned)
                done = true
            } catch {
                failures.append(error)
            }
        }
        if !done { throw failures.first { $0.code != "not_found" } ?? failures[0] }
        if let failure = failures.first(where: { $0.code != "not_found" }) {
            logger.warning("pin not saved in every destination", metadata: ["backup.slug": "\(slug)", "error": "\(failure.message)"])
        }
    }

    /// Deletes a backup from one place (`b2`, `s3`, `local`) or from all. For `all`, every place is asked
    /// first, so a refusal anywhere (pinned, newest verified, locked) changes nothing.
    public func delete(_ slug: String, from location: BackupLocation, force: Bool) async throws(RetentionRefusal) {
        guard let retention else { throw RetentionRefusal(code: "not_configured", message: "no backup destination is configured") }
        switch location {
        case .b2, .local:
            try await retention.delete(slug, from: location, force: force)
        case .s3:
            guard let destination = secondaries.first(where: { $0.id == DestinationID.s3 }) else {
                throw RetentionRefusal(code: "not_found", message: "no second destination (S3) is configured")
            }
            try await destination.retention.delete(slug, from: .b2, force: force)
        case .all:
            var foundSomewhere = false
            for service in secondaries.map(\.retention) {
                do throws(RetentionRefusal) {
                    try await service.delete(slug, from: .b2, force: force, checkOnly: true)
                    foundSomewhere = true
                } catch where error.code == "not_found" {}
            }
            do throws(RetentionRefusal) {
                try await retention.delete(slug, from: .all, force: force, checkOnly: true)
            } catch where error.code == "not_found" && foundSomewhere {}
            var deletedSomewhere = false
            for destination in secondaries {
                do throws(RetentionRefusal) {
                    try await destination.retention.delete(slug, from: .b2, force: force)
                    deletedSomewhere = true
                } catch where error.code == "not_found" {}
            }
            do throws(RetentionRefusal) {
                try await retention.delete(slug, from: .all, force: force)
            } catch where error.code == "not_found" && deletedSomewhere {}
        }
    }

    /// Where a restore can download the backup from, in the order to try: every destination's catalog is
    /// read; one that cannot be reached is skipped (its error is reported only when no copy is found).
    func restoreSources(slug: String, preference: String) async -> (sources: [RemoteCopyLocation], name: String?, errors: [PortError]) {
        var copies: [RemoteCopyLocation] = []
        var name: String?
        var errors: [PortError] = []
        let services: [(String, RetentionService)] = (retention.map { [(DestinationID.b2, $0)] } ?? []) + secondaries.map { ($0.id, $0.retention) }
        for (id, service) in services {
            do throws(PortError) {
                guard let entry = try await service.snapshot().entry(slug: slug) else { continue }
                copies.append(RemoteCopyLocation(destination: id, entry: entry))
                name = name ?? entry.name
            } catch {
                errors.append(PortError(code: error.code, message: "cannot read the catalog in \(id == DestinationID.b2 ? "B2" : id.uppercased()): \(error.message)"))
            }
        }
        return (RemoteCopyLocation.ordered(copies, preference: preference), name, errors)
    }

    /// Runs retention and the due restorability check in each secondary destination (the daily loop).
    func maintainSecondaries() async {
        for destination in secondaries {
            let report = await destination.retention.apply()
            for warning in report.warnings {
                logger.warning("retention in the second destination", metadata: ["destination": "\(destination.id)", "warning": "\(warning)"])
            }
            if let checker = destination.checker { await checkRestorabilityIfDue(destination.retention, checker: checker) }
        }
        await refreshSecondarySummaries()
    }
}
