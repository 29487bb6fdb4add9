import Core
import Foundation
import HTTPServer

/// `GET /api/backups`, pins, `DELETE /api/backups/{slug}` and `GET /api/retention/preview`.
struct CatalogRoutes: Sendable {
    let pipeline: Pipeline?
    let access: APIAccess
    let missingOptions: [String]

    struct Listed: Encodable {
        struct Remote: Encodable {
            let file_name: String
            let size: Int64
            let sha1: Nullable<String>
            let uploaded_at: String
            let verified_at: Nullable<String>
            let locked_until: Nullable<String>
            let made_by_addon: Bool
            let last_check: Nullable<Check>
        }
        struct Check: Encodable { let at: String; let mode: String; let verdict: String; let problems: [String] }
        struct Local: Encodable { let size: Int64 }
        struct WouldDelete: Encodable { let b2: Bool; let local: Bool; let s3: Bool }

        let slug: String
        let name: String
        let date: String
        let type: String
        let size: Int64
        let protected: Bool
        let locations: [String]
        let pinned: Bool
        let verified_at: Nullable<String>
        let b2: Nullable<Remote>
        /// The copy in the second destination (S3-compatible), same shape as `b2`.
        let s3: Nullable<Remote>
        let local: Nullable<Local>
        /// What the retention policy would do now.
        let would_delete: WouldDelete
        let reasons: [String]

        init(_ backup: ListedBackup) {
            slug = backup.slug
            name = backup.name
            date = ISO8601.string(backup.date)
            type = backup.type
            let s3Copy = backup.copies[DestinationID.s3]
            size = backup.remote?.size ?? s3Copy?.size ?? backup.local?.size ?? 0
            protected = backup.protected
            locations = (backup.remote != nil ? ["b2"] : []) + (s3Copy != nil ? ["s3"] : []) + (backup.local != nil ? ["local"] : [])
            pinned = backup.pinned
            // The newest verified copy anywhere: B2's or the second destination's.
            verified_at = Nullable([backup.remote, s3Copy].compactMap { $0?.isVerified == true ? $0?.verifiedAt : nil }.max().map(ISO8601.string))
            b2 = Nullable(backup.remote.map(Self.remote))
            s3 = Nullable(s3Copy.map(Self.remote))
            local = Nullable(backup.local.map { Local(size: $0.size) })
            would_delete = WouldDelete(b2: backup.remoteKeep == false, local: backup.localKeep == false, s3: backup.copyKeep[DestinationID.s3] == false)
            reasons = backup.reasons
        }

        static func remote(_ entry: CatalogEntry) -> Remote {
            Remote(file_name: entry.fileName, size: entry.size, sha1: Nullable(entry.sha1), uploaded_at: ISO8601.string(entry.uploadedAt),
                   verified_at: Nullable(entry.verifiedAt.map(ISO8601.string)), locked_until: Nullable(entry.lockedUntil.map(ISO8601.string)),
                   made_by_addon: entry.madeByAddon,
                   last_check: Nullable(entry.lastCheck.map { Check(at: ISO8601.string($0.at), mode: $0.mode, verdict: $0.verdict, problems: $0.problems) }))
        }
    }

    struct PreviewEntry: Encodable {
        let slug: String
        let name: String
        let date: String
        let keep: Bool
        let reasons: [String]
        init(_ entry: RetentionPreviewEntry) {
            slug = entry.slug
            name = entry.name
            date = ISO8601.string(entry.date)
            keep = entry.keep
            reasons = entry.reasons
        }
    }

    func register(_ router: inout Router) {
        router.get("/api/prefixes") { request in
            try access.authorize(request)
            guard let bucket = pipeline?.bucket else { _ = try available(); throw HTTPError(.notFound) }
            let prefixes: [String]
            do throws(PortError) { prefixes = try await bucket.prefixes() } catch { throw Self.unavailable(error) }
            struct Body: Encodable { let prefixes: [String] }
            return try .json(Body(prefixes: prefixes))
        }
        router.get("/api/backups") { request in
            try access.authorize(request)
            if let prefix = request.query("prefix"), !prefix.isEmpty, let bucket = pipeline?.bucket {
                // Another installation's (or an older) prefix: what its catalog lists, read-only.
                let snapshot: CatalogSnapshot
                do throws(PortError) { snapshot = try await bucket.catalog(prefix: prefix).load().snapshot } catch { throw Self.unavailable(error) }
                struct Body: Encodable { let prefix: String; let backups: [Listed] }
                let listed = snapshot.backups.sorted { $0.facts.date > $1.facts.date }.map { entry in
                    Listed(ListedBackup(slug: entry.slug, name: entry.name, date: entry.facts.date, type: entry.facts.type, protected: entry.facts.protected,
                                        pinned: snapshot.pins.contains(entry.slug), remote: entry, local: nil, remoteKeep: nil, localKeep: nil, reasons: []))
                }
                return try .json(Body(prefix: prefix, backups: listed))
            }
            let (pipeline, _) = try available()
            let backups: [ListedBackup]
            do throws(PortError) { backups = try await pipeline.listing() } catch { throw Self.unavailable(error) }
            struct Body: Encodable { let backups: [Listed] }
            return try .json(Body(backups: backups.map(Listed.init)))
        }
        router.get("/api/retention/preview") { request in
            try access.authorize(request)
            let (pipeline, retention) = try available()
            let preview: RetentionPreview
            do throws(PortError) { preview = try await retention.preview() } catch { throw Self.unavailable(error) }
            // The second destination's own policy (`s3_keep_*`); null when there is none or it cannot be read.
            var s3: [PreviewEntry]?
            if let destination = pipeline.secondaries.first(where: { $0.id == DestinationID.s3 }) {
                s3 = try? await destination.retention.preview().b2.map(PreviewEntry.init)
            }
            struct Body: Encodable { let b2: [PreviewEntry]; let local: [PreviewEntry]; let s3: Nullable<[PreviewEntry]> }
            return try .json(Body(b2: preview.b2.map(PreviewEntry.init), local: preview.local.map(PreviewEntry.init), s3: Nullable(s3)))
        }
        for (action, pinned) in [("pin", true), ("unpin", false)] {
            router.post("/api/backups/:slug/\(action)", bodyLimit: 1024) { request in
                try access.authorize(request)
                let slug = request.pathParameters["slug"] ?? ""
                let (pipeline, _) = try available()
                do throws(RetentionRefusal) { try await pipeline.setPinned(slug, pinned) } catch { throw Self.httpError(error) }
                struct Body: Encodable { let slug: String; let pinned: Bool }
                return try .json(Body(slug: slug, pinned: pinned))
            }
        }
        router.add(.delete, "/api/backups/:slug") { request in
            try access.authorize(request)
            let slug = request.pathParameters["slug"] ?? ""
            guard let location = BackupLocation(rawValue: request.query("location") ?? "all") else {
                throw HTTPError(.badRequest, code: "invalid_request", message: "'location' is b2, s3, local or all")
            }
            let force = ["1", "true", "yes"].contains((request.query("force") ?? "").lowercased())
            let (pipeline, _) = try available()
            do throws(RetentionRefusal) { try await pipeline.delete(slug, from: location, force: force) } catch { throw Self.httpError(error) }
            struct Body: Encodable { let slug: String; let location: String }
            return try .json(Body(slug: slug, location: location.rawValue))
        }
    }

    /// The pipeline, when it has a catalog (B2 is configured).
    private func available() throws(HTTPError) -> (Pipeline, RetentionService) {
        guard let pipeline, let retention = pipeline.retention else {
            throw HTTPError(.serviceUnavailable, code: "not_configured",
                            message: "backups cannot be listed until these options are set: \(missingOptions.joined(separator: ", "))")
        }
        return (pipeline, retention)
    }

    /// B2 or the Supervisor could not be reached or refused: 502 with their words.
    static func unavailable(_ error: PortError) -> HTTPError {
        HTTPError(HTTPStatus(502, "Bad Gateway"), code: error.code, message: error.message)
    }

    static func httpError(_ refusal: RetentionRefusal) -> HTTPError {
        switch refusal.code {
        case "not_found": HTTPError(.notFound, code: refusal.code, message: refusal.message)
        case "pinned", "newest_verified", "no_verified_copy", "locked": HTTPError(.conflict, code: refusal.code, message: refusal.message)
        default: HTTPError(HTTPStatus(502, "Bad Gateway"), code: refusal.code, message: refusal.message)
        }
    }
}
