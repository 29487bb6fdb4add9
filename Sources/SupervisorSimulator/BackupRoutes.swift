import Foundation
import HTTPServer

/// The backup API (SUP `api/backups.py`, routes of `api/__init__.py _register_backups`).
enum BackupRoutes {
    static let chunkSize = 256 * 1024

    static func register(_ table: inout RouteTable) {
        let context = table.context
        table.add(.get, "/backups") { _ in await list(context, withManagerInfo: false) }
        table.add(.get, "/backups/info") { _ in await list(context, withManagerInfo: true) }
        table.add(.post, "/backups/reload") { _ in
            await context.state.replaceAll(BackupScanner.scan(context.configuration.backupDirectory, logger: context.logger))
            return Envelope.ok()
        }
        table.add(.post, "/backups/freeze") { request in
            let body = try await Schema.read(request, .freeze)
            try await BackupJobs.freeze(timeout: body["timeout"]?.intValue ?? 600, context)
            return Envelope.ok()
        }
        table.add(.post, "/backups/thaw") { _ in
            try await BackupJobs.thaw(context)
            return Envelope.ok()
        }
        table.add(.post, "/backups/new/full") { request in try await create(request, kind: .fullBackup, context) }
        table.add(.post, "/backups/new/partial") { request in try await create(request, kind: .partialBackup, context) }
        table.add(.post, "/backups/new/upload", bodyLimit: Int.max) { request in try await UploadRoute.upload(request, context) }
        table.add(.get, "/backups/:slug/info") { request in try await info(request, context) }
        table.add(.delete, "/backups/:slug") { request in try await remove(request, context) }
        table.add(.get, "/backups/:slug/download") { request in try await download(request, context) }
        table.add(.post, "/backups/:slug/restore/full") { request in try await restore(request, full: true, context) }
        table.add(.post, "/backups/:slug/restore/partial") { request in try await restore(request, full: false, context) }
    }

    // MARK: Listing

    /// The `location_attributes` key of the local folder (`LOCATION_LOCAL`).
    static let localLocation = ".local"

    /// `Backup.size`: MB, rounded to two places.
    static func megabytes(_ bytes: Int64) -> Double { (Double(bytes) / 1_048_576 * 100).rounded() / 100 }

    static func locationAttributes(_ backup: SupervisorState.Backup) -> JSONValue {
        [localLocation: ["protected": .bool(backup.metadata.protected), "size_bytes": .int(Int(backup.sizeBytes))]]
    }

    private static func list(_ context: Context, withManagerInfo: Bool) async -> HTTPResponse {
        let backups = await context.state.backups.map { backup -> JSONValue in
            let metadata = backup.metadata
            return [
                "slug": .string(metadata.slug), "name": .string(metadata.name), "date": .string(metadata.date), "type": .string(metadata.type),
                "size": .double(megabytes(backup.sizeBytes)), "size_bytes": .int(Int(backup.sizeBytes)), "location": nil, "locations": [nil],
                "protected": .bool(metadata.protected), "location_attributes": locationAttributes(backup), "compressed": .bool(metadata.compressed),
                "content": ["homeassistant": .bool(metadata.homeassistant != nil), "addons": .strings(metadata.addons.map(\.slug)),
                            "folders": .strings(metadata.folders)],
            ]
        }
        var data: JSONObject = ["backups": .array(backups)]
        if withManagerInfo { data["days_until_stale"] = 30 }
        return Envelope.ok(data)
    }

    private static func backup(_ request: HTTPRequest, _ context: Context) async throws(APIError) -> SupervisorState.Backup {
        guard let slug = request.pathParameters["slug"], let backup = await context.state.backup(slug) else { throw APIError.backupNotFound }
        return backup
    }

    private static func info(_ request: HTTPRequest, _ context: Context) async throws -> HTTPResponse {
        let backup = try await backup(request, context)
        let metadata = backup.metadata
        return Envelope.ok([
            "slug": .string(metadata.slug), "type": .string(metadata.type), "name": .string(metadata.name), "date": .string(metadata.date),
            "size": .double(megabytes(backup.sizeBytes)), "size_bytes": .int(Int(backup.sizeBytes)), "compressed": .bool(metadata.compressed),
            "protected": .bool(metadata.protected), "location_attributes": locationAttributes(backup),
            "supervisor_version": .string(metadata.supervisorVersion), "homeassistant": .optional(metadata.homeassistant?.version),
            "location": nil, "locations": [nil],
            "addons": .array(metadata.addons.map { ["slug": .string($0.slug), "name": .string($0.name), "version": .string($0.version), "size": .double($0.size)] }),
            "repositories": .strings(metadata.repositories), "folders": .strings(metadata.folders),
            "homeassistant_exclude_database": metadata.homeassistant.map { .bool($0.excludeDatabase) } ?? .null,
            "extra": .object(metadata.extra),
        ])
    }

    // MARK: Locations

    /// `_validate_cloud_backup_location` then `_location_to_mount` for an add-on: `.cloud_backup` is Home
    /// Assistant's alone (403); null, `""` and `.local` are the local folder; any other name would be a
    /// backup mount, and this installation has none.
    static func checkLocations(_ names: [String?]) throws(APIError) {
        if names.contains(".cloud_backup") { throw APIError("Location .cloud_backup is only available for Home Assistant", status: 403) }
        for case let name? in names where !name.isEmpty && name != localLocation {
            throw APIError("No mount exists with name '\(name)'")
        }
    }

    // MARK: Create

    private static func create(_ request: HTTPRequest, kind: SupervisorState.JobKind, _ context: Context) async throws -> HTTPResponse {
        let body = try await Schema.read(request, kind == .fullBackup ? .backupFull : .backupPartial)
        if let locations = body["location"]?.arrayValue { try checkLocations(locations.map(\.stringValue)) }
        let configuration = context.configuration
        let installed = await context.state.installedAddons
        let existingFolders = BackupMetadata.allFolders.filter(configuration.folders.contains)
        var order = BackupOrder(kind: kind, name: body["name"]?.stringValue ?? "", fileName: body["filename"]?.stringValue,
                                password: body["password"]?.stringValue, compressed: body["compressed"]?.boolValue ?? true,
                                excludeDatabase: body["homeassistant_exclude_database"]?.boolValue ?? false,
                                extra: body["extra"]?.objectValue ?? [:], homeassistant: true, addons: installed, folders: existingFolders)
        if order.password == "" { order.password = nil } // `if password:` in Backup.new()
        if kind == .partialBackup {
            order.homeassistant = body["homeassistant"]?.boolValue ?? false
            switch body["addons"] {
            case .string("ALL")?: order.addons = installed
            case .array(let slugs)?:
                // Unknown add-ons are skipped with a warning ("Add-on %s not found/installed").
                order.addons = slugs.compactMap(\.stringValue).compactMap { slug in installed.first { $0.slug == slug } }
            default: order.addons = []
            }
            var folders = body["folders"]?.arrayValue?.compactMap(\.stringValue) ?? []
            if folders.contains("homeassistant") {
                folders.removeAll { $0 == "homeassistant" }
                order.homeassistant = true
            }
            // A folder that does not exist is skipped ("Can't find backup folder %s").
            order.folders = folders.filter(configuration.folders.contains)
        }
        let (jobID, task) = try await BackupJobs.startBackup(order, context)
        if body["background"]?.boolValue == true { return Envelope.ok(["job_id": .string(jobID)]) }
        if let slug = await task.value { return Envelope.ok(["job_id": .string(jobID), "slug": .string(slug)]) }
        throw APIError("An error occurred while making backup, check job '\(jobID)' or supervisor logs for details", jobID: jobID)
    }

    // MARK: Restore

    private static func restore(_ request: HTTPRequest, full: Bool, _ context: Context) async throws -> HTTPResponse {
        let backup = try await backup(request, context)
        let body = try await Schema.read(request, full ? .restoreFull : .restorePartial)
        let location = body["location"]?.stringValue
        if location == ".cloud_backup" { throw APIError("Location .cloud_backup is only available for Home Assistant", status: 403) }
        let order = RestoreOrder(kind: full ? .fullRestore : .partialRestore, slug: backup.slug, password: body["password"]?.stringValue,
                                 location: location, homeassistant: body["homeassistant"]?.boolValue ?? false,
                                 addons: body["addons"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                                 folders: body["folders"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        let (jobID, task) = try await BackupJobs.startRestore(order, backup: backup, context)
        if body["background"]?.boolValue == true { return Envelope.ok(["job_id": .string(jobID)]) }
        if await task.value { return Envelope.ok(["job_id": .string(jobID)]) }
        throw APIError("An error occurred during restore of \(backup.slug), check job '\(jobID)' or supervisor logs for details", jobID: jobID)
    }

    // MARK: Remove

    private static func remove(_ request: HTTPRequest, _ context: Context) async throws -> HTTPResponse {
        let backup = try await backup(request, context)
        let body = try await Schema.read(request, .remove)
        if let locations = body["location"]?.arrayValue { try checkLocations(locations.map(\.stringValue)) }
        guard FileManager.default.fileExists(atPath: backup.file.path) else {
            // `BackupManager.remove`: the file vanished; a reload is scheduled and the call fails.
            await context.state.replaceAll(BackupScanner.scan(context.configuration.backupDirectory, logger: context.logger))
            throw APIError("Cannot delete backup at \(BackupJobs.supervisorBackupPath)/\(backup.file.lastPathComponent), file does not exist!", status: 404)
        }
        do {
            try FileManager.default.removeItem(at: backup.file)
        } catch {
            throw APIError("Could delete backup at \(BackupJobs.supervisorBackupPath)/\(backup.file.lastPathComponent): \(error.localizedDescription)")
        }
        await context.state.remove(slug: backup.slug)
        return Envelope.ok()
    }

    // MARK: Download

    /// `[^A-Za-z0-9]+` → `_` (`RE_SLUGIFY_NAME`).
    static func slugifiedName(_ name: String) -> String {
        var out = ""
        var inRun = false
        for scalar in name.unicodeScalars {
            if scalar.isASCII, CharacterSet.alphanumerics.contains(scalar) {
                out.unicodeScalars.append(scalar)
                inRun = false
            } else if !inRun {
                out += "_"
                inRun = true
            }
        }
        return out
    }

    private static func download(_ request: HTTPRequest, _ context: Context) async throws -> HTTPResponse {
        let backup = try await backup(request, context)
        // `?location=` defaults to the backup's primary location; '' means the local folder.
        let location = request.query("location") ?? ""
        if location == ".cloud_backup" { throw APIError("Location .cloud_backup is only available for Home Assistant", status: 403) }
        guard location.isEmpty || location == localLocation else { throw APIError("Backup \(backup.slug) is not in location \(location)") }
        let fileName = backup.file.lastPathComponent
        let downloadName = fileName == "\(backup.slug).tar" ? "\(slugifiedName(backup.metadata.name)).tar" : fileName
        var headers = HTTPHeaders([("Content-Type", "application/tar"), ("Content-Disposition", "attachment; filename=\(downloadName)")])
        // aiohttp's FileResponse answers a vanished file with an empty 404.
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: backup.file.path),
              let size = (attributes[.size] as? NSNumber)?.intValue else {
            return HTTPResponse(.notFound, headers: headers)
        }
        headers.add("Accept-Ranges", "bytes")
        if let modified = attributes[.modificationDate] as? Date {
            headers.add("Last-Modified", httpDate(modified))
            headers.add("ETag", "\"\(String(Int(modified.timeIntervalSince1970 * 1_000_000_000), radix: 16))-\(String(size, radix: 16))\"")
        }
        var status = HTTPStatus.ok
        var range = 0..<size
        if let header = request.headers["Range"] {
            guard let resolved = byteRange(header, size: size) else {
                var refused = HTTPHeaders([("Content-Range", "bytes */\(size)")])
                refused.add("Content-Type", "text/plain; charset=utf-8")
                return HTTPResponse(HTTPStatus(416, "Range Not Satisfiable"), headers: refused, body: .bytes(Array("416: Range Not Satisfiable".utf8)))
            }
            range = resolved
            status = .partialContent
            headers.add("Content-Range", "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)")
        }
        let dropAfter = request.method == .get ? await context.faults.takeDownloadDrop() : nil
        let file = backup.file
        let bounds = range
        return HTTPResponse(status, headers: headers, body: .stream(length: range.count) { writer in
            let handle = try FileHandle(forReadingFrom: file)
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(bounds.lowerBound))
            var remaining = bounds.count
            var sent = 0
            while remaining > 0 {
                guard let data = try handle.read(upToCount: min(chunkSize, remaining)), !data.isEmpty else {
                    throw AbortConnection() // the file shrank while being sent
                }
                let chunk = [UInt8](data)
                if let dropAfter, sent + chunk.count > dropAfter {
                    try await writer.write(Array(chunk.prefix(dropAfter - sent)))
                    throw AbortConnection()
                }
                try await writer.write(chunk)
                sent += chunk.count
                remaining -= chunk.count
            }
        })
    }

    /// One `bytes=` range (RFC 9110 §14.1.2) as aiohttp serves it; nil when unsatisfiable.
    static func byteRange(_ header: String, size: Int) -> Range<Int>? {
        let text = header.trimmingCharacters(in: .whitespaces)
        guard text.lowercased().hasPrefix("bytes="), size > 0 else { return nil }
        let spec = text.dropFirst("bytes=".count)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let first = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        if first.isEmpty {
            guard let count = Int(last), count > 0 else { return nil }
            return max(0, size - count)..<size
        }
        guard let start = Int(first), start >= 0, start < size else { return nil }
        if last.isEmpty { return start..<size }
        guard let end = Int(last), end >= start else { return nil }
        return start..<(min(end, size - 1) + 1)
    }

    static func httpDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }
}
