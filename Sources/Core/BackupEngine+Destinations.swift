import Foundation
import Logging

/// The engine's side of more than one destination: B2's copy first (upload, verify, record), then the
/// copy step uploads, verifies, checks and records the same file in each secondary destination.
extension BackupEngine {
    /// For people: "Backblaze B2", or the secondary destination's title.
    func title(of destination: String) -> String {
        destination == DestinationID.b2 ? "Backblaze B2" : secondaries.first { $0.id == destination }?.title ?? destination
    }

    /// The catalog a restore downloads from.
    func catalog(of destination: String) -> (any RemoteCatalog)? {
        destination == DestinationID.b2 ? catalog : secondaries.first { $0.id == destination }?.catalog
    }

    /// A failure of B2's upload or verify that need not fail the run: another destination may still
    /// make it (`require_all_destinations: false`). Cancellation (shutdown) is never tolerated.
    func tolerated(_ error: any Error) -> Bool {
        requirement == .any && !secondaries.isEmpty && !(error is CancellationError) && !Task.isCancelled
    }

    /// Records B2's failure and goes on with the other destinations.
    func primaryFailed(_ job: inout Job, _ error: any Error) {
        let failure = Self.jobError(error, step: job.step)
        setCopy(&job, DestinationCopy(destination: DestinationID.b2, remote: job.remote,
                                      error: JobError(code: failure.code, message: "Backblaze B2: \(failure.message)", step: failure.step)))
        logger.error("no verified copy in B2; going on with the other destinations",
                     metadata: ["job.id": "\(job.id)", "error.code": "\(failure.code)", "error": "\(failure.message)"])
        advance(&job, to: .copy)
    }

    func setCopy(_ job: inout Job, _ copy: DestinationCopy) {
        var copies = job.copies ?? []
        copies.removeAll { $0.destination == copy.destination }
        copies.append(copy)
        job.copies = copies
    }

    static func requireRestorable(_ check: RestorabilityCheck, where place: String?) throws(JobError) {
        guard check.ok else {
            throw JobError(code: check.verdict == "flagged" ? "verify_flagged" : "not_restorable",
                           message: "the uploaded backup\(place.map { " in \($0)" } ?? "") \(check.verdict == "flagged" ? "is not what it claims" : "cannot be restored"): "
                               + check.problems.joined(separator: "; "))
        }
    }

    /// Copies the run's backup to every secondary destination that has no verified copy yet (a resumed
    /// run skips those done before the restart). Fails the run on the first failure when every destination
    /// is required; otherwise the run succeeds while at least one destination holds a verified copy.
    func copyToSecondaries(_ job: inout Job) async throws {
        guard !secondaries.isEmpty else { return }
        guard let local = job.local, let slug = job.slug else { throw JobError(code: "internal", message: "nothing to copy") }
        for destination in secondaries where job.copies?.first(where: { $0.destination == destination.id })?.verifiedAt == nil {
            do {
                let (copy, warnings) = try await copy(job, local: local, slug: slug, to: destination)
                setCopy(&job, copy)
                job.warnings += warnings
                advance(&job, to: .copy)
                await save(job)
            } catch {
                if error is CancellationError || Task.isCancelled { throw error }
                let failure = Self.jobError(error, step: .copy)
                let named = JobError(code: failure.code, message: "\(destination.title): \(failure.message)", step: .copy)
                setCopy(&job, DestinationCopy(destination: destination.id, error: named))
                logger.error("no verified copy in the second destination", metadata: ["job.id": "\(job.id)", "destination": "\(destination.id)",
                                                                                       "error.code": "\(named.code)", "error": "\(named.message)"])
                if requirement == .all { throw named }
            }
        }
        let copies = job.copies ?? []
        guard copies.contains(where: { $0.verifiedAt != nil }) else {
            let errors = copies.compactMap(\.error)
            throw JobError(code: errors.first?.code ?? "not_verified",
                           message: "no destination holds a verified copy: " + errors.map(\.message).joined(separator: "; "), step: .copy)
        }
        for failure in copies.compactMap(\.error) {
            job.warnings.append("no verified copy in this destination (require_all_destinations is off, so the run counts): \(failure.message)")
        }
    }

    /// One destination: upload (resuming), then size and SHA-1 as the store recorded them, then the
    /// restorability check read back from it, then its catalog.
    private func copy(_ job: Job, local: LocalCopy, slug: String, to destination: SecondaryDestination) async throws -> (DestinationCopy, [String]) {
        var info = uploadInfo(job, local: local, slug: slug)
        if let sha1 = job.remote?.sha1 { info["sha1"] = sha1 } // computed while uploading to B2: spares a pass over the file
        progress.set(0, local.size) // the bar starts over for this destination
        let object = try await destination.store.upload(path: local.path, name: job.plan.filename, info: info, settings: settings.upload,
                                                        progress: progressReporter(for: job.id))
        let facts = try await destination.store.facts(fileID: object.fileID)
        guard facts.size == local.size, object.size == local.size else {
            throw JobError(code: "verify_mismatch", message: "it holds \(facts.size) bytes for \(object.name), the backup has \(local.size)")
        }
        guard let sha1 = facts.sha1, sha1.lowercased() == object.sha1.lowercased(),
              job.remote.map({ $0.sha1.lowercased() == sha1.lowercased() }) ?? true else {
            throw JobError(code: "verify_mismatch",
                           message: "the SHA-1 recorded for \(object.name) (\(facts.sha1 ?? "none")) is not the backup's (\(job.remote?.sha1 ?? object.sha1))")
        }
        var check: RestorabilityCheck?
        if let checker = destination.checker {
            let result = await checker.check(fileName: object.name, size: object.size, sha1: object.sha1, slug: slug, password: settings.password)
            try Self.requireRestorable(result, where: destination.title)
            check = result
        }
        var recorded = job
        recorded.remote = object
        recorded.check = check
        let warnings = await destination.retention.record(recorded).map { "\(destination.title): \($0)" }
        logger.info("copy verified", metadata: ["job.id": "\(job.id)", "destination": "\(destination.id)", "file": "\(object.name)"])
        return (DestinationCopy(destination: destination.id, remote: object, verifiedAt: clock.now(), check: check), warnings)
    }
}
