/// How thoroughly to check: `full` reads every byte once in order, `quick` only headers and the starts of archives.
public enum VerificationMode: String, Sendable, Codable {
    case full, quick
}

/// What a verification found, for people (``problems`` in plain words) and for code (``verdict``).
public struct VerificationReport: Sendable, Hashable, Codable {
    public enum Verdict: String, Sendable, Codable {
        /// Nothing found that would stop a restore. For encrypted archives without the password, only the
        /// headers could be checked (their ``Archive/detail`` says so).
        case restorable
        /// A restore would fail: truncated or damaged file, bad backup.json, missing or corrupt archive,
        /// wrong password, wrong backup.
        case notRestorable = "not_restorable"
        /// Restorable, but not what it claims: backup.json says protected while archives are stored in clear.
        case flagged
    }

    public struct Archive: Sendable, Hashable, Codable {
        public var name: String
        /// "gzip", "securetar-v2", "securetar-v3", "unknown"; also "tar" (uncompressed backups) and
        /// "securetar-v1" (protected backups from Supervisor ≤ 2024.12.3, which have no header).
        public var format: String
        public var ok: Bool
        /// The problem when not ok; otherwise what limited the check, if anything.
        public var detail: String?

        public init(name: String, format: String, ok: Bool, detail: String? = nil) {
            self.name = name
            self.format = format
            self.ok = ok
            self.detail = detail
        }
    }

    public var verdict: Verdict
    public var mode: VerificationMode
    public var slug: String?
    public var type: String?
    public var protected: Bool?
    /// Inner archives in the order of the file (listed or not, `supervisor.tar.gz` included).
    public var archives: [Archive]
    /// Why the verdict is not `restorable`, in plain words; notes that do not change the verdict start
    /// with "warning: ".
    public var problems: [String]
    /// Bytes read from the source.
    public var bytesRead: Int64

    public init(verdict: Verdict, mode: VerificationMode, slug: String? = nil, type: String? = nil, protected: Bool? = nil,
                archives: [Archive] = [], problems: [String] = [], bytesRead: Int64 = 0) {
        self.verdict = verdict
        self.mode = mode
        self.slug = slug
        self.type = type
        self.protected = protected
        self.archives = archives
        self.problems = problems
        self.bytesRead = bytesRead
    }
}

/// Proves a Home Assistant backup file restorable without Home Assistant, following
/// /work/shared/reference/backup-format.md §5: outer tar, backup.json, the archive set, each archive's
/// format and (in full mode) content, and the `protected` claim against what is stored.
public enum BackupVerifier {
    /// Full mode reads in pieces of this size; memory stays a few MiB whatever the backup's size.
    static let chunkSize = 1 << 20
    /// Quick mode reads this much at a time around headers so neighbouring small members cost one read.
    static let quickWindow = 64 * 1024
    /// backup.json is a few KiB; more than this is not a backup.json.
    static let backupJSONLimit = 1 << 20

    /// - full: reads `source` ONCE, strictly sequentially from offset 0 to the end in increasing,
    ///   non-overlapping reads (callers hash the stream as it passes; a B2-backed source streams it),
    ///   and checks everything, gzip CRCs and inner tars included. With the password it also decrypts
    ///   SecureTar archives and checks their content (Argon2id then needs 16 MiB once).
    /// - quick: reads only what it needs (tar headers, backup.json, the first bytes of each inner
    ///   archive); checks structure, headers and the password, not archive content.
    public static func verify(_ source: any ByteSource, mode: VerificationMode, expectedSlug: String? = nil,
                              password: String? = nil) async -> VerificationReport {
        let scan = OuterScan(password: password.map(PasswordKeys.init), streamContent: mode == .full)
        switch mode {
        case .full: await readFull(source, into: scan)
        case .quick: await readQuick(source, into: scan)
        }
        return scan.report(mode: mode, expectedSlug: expectedSlug)
    }

    /// One sequential pass; after damage to the outer tar the rest is still read (callers hash it) but not parsed.
    private static func readFull(_ source: any ByteSource, into scan: OuterScan) async {
        var parser = TarStreamParser()
        var offset: Int64 = 0
        while offset < source.size {
            let want = Int(min(Int64(chunkSize), source.size - offset))
            let bytes: [UInt8]
            do {
                bytes = try await source.read(offset: offset, length: want)
            } catch {
                scan.readProblem = "cannot read the backup at byte \(offset): \(error)"
                return
            }
            guard !bytes.isEmpty else { break }
            offset += Int64(min(bytes.count, want))
            scan.bytesRead = offset
            if scan.tarProblem == nil { scan.push(bytes.prefix(want), to: &parser) }
        }
        if scan.tarProblem == nil { scan.finish(parser) }
    }

    /// Header to header, reading member data only where a check needs it.
    private static func readQuick(_ source: any ByteSource, into scan: OuterScan) async {
        var parser = TarStreamParser()
        var reader = WindowReader(source: source)
        defer { scan.bytesRead = reader.bytesRead }
        while scan.tarProblem == nil, !parser.isDone {
            let wanted: Int64
            if parser.dataRemaining > 0 {
                wanted = min(parser.dataRemaining, scan.dataWanted)
                if wanted == 0 {
                    if let entry = parser.current, entry.dataOffset + entry.size > source.size {
                        let present = max(0, source.size - entry.dataOffset)
                        scan.cutShort("outer tar truncated: \(entry.name) is cut short: \(present) of its \(entry.size) bytes are present")
                        return
                    }
                    do { _ = try parser.skipData { scan.handle($0) } } catch { scan.fail(error) }
                    continue
                }
            } else {
                wanted = parser.bytesWanted
            }
            let bytes: [UInt8]
            do {
                bytes = try await reader.read(offset: parser.offset, length: Int(min(wanted, Int64(Self.chunkSize))))
            } catch {
                scan.readProblem = "cannot read the backup at byte \(parser.offset): \(error)"
                return
            }
            scan.push(bytes[...], to: &parser)
            if bytes.isEmpty || Int64(bytes.count) < min(wanted, Int64(Self.chunkSize)) {
                scan.finish(parser)
                return
            }
        }
    }

    /// Serves quick mode's small reads from one window of the source.
    private struct WindowReader {
        let source: any ByteSource
        var windowStart: Int64 = 0
        var window: [UInt8] = []
        var bytesRead: Int64 = 0

        mutating func read(offset: Int64, length: Int) async throws -> [UInt8] {
            let end = min(offset + Int64(length), source.size)
            guard offset < end else { return [] }
            if offset < windowStart || end > windowStart + Int64(window.count) {
                window = try await source.read(offset: offset, length: max(length, BackupVerifier.quickWindow))
                windowStart = offset
                bytesRead += Int64(window.count)
            }
            let start = Int(offset - windowStart)
            return Array(window[start..<min(window.count, start + Int(end - offset))])
        }
    }
}

/// The outer tar's members as they pass: backup.json collected, each archive handed to an ``ArchiveCheck``.
private final class OuterScan {
    private enum Collector {
        case none
        case backupJSON(name: String, bytes: [UInt8], tooLarge: Bool)
        case archive(ArchiveCheck)
    }

    let password: PasswordKeys?
    let streamContent: Bool
    var bytesRead: Int64 = 0
    var tarProblem: String?
    var readProblem: String?
    private var collector = Collector.none
    private var backupJSON: [UInt8]?
    private var snapshotJSON: [UInt8]?
    private var backupJSONProblem: String?
    private var findings: [ArchiveFinding] = []
    private var warnings: [String] = []
    private var unsafeNames: [String] = []
    private var nonZeroTrailingBytes: Int64 = 0

    init(password: PasswordKeys?, streamContent: Bool) {
        self.password = password
        self.streamContent = streamContent
    }

    /// Quick mode: how many data bytes of the current member the checks want (0: skip the rest).
    var dataWanted: Int64 {
        switch collector {
        case .none: 0
        case .backupJSON(_, let bytes, let tooLarge): tooLarge ? 0 : Int64(BackupVerifier.backupJSONLimit - bytes.count + 1)
        case .archive(let check): check.bytesWanted
        }
    }

    func push(_ bytes: ArraySlice<UInt8>, to parser: inout TarStreamParser) {
        do {
            try parser.push(bytes) { handle($0) }
        } catch {
            fail(error)
        }
        nonZeroTrailingBytes = parser.nonZeroTrailingBytes
    }

    func finish(_ parser: TarStreamParser) {
        do { try parser.finish() } catch { fail(error) }
    }

    func fail(_ error: any Error) {
        guard tarProblem == nil else { return }
        let detail = PlainArchiveCheck.describe(error)
        if (error as? TarError)?.code == .truncated {
            cutShort("outer tar truncated: \(detail)")
        } else {
            tarProblem = "outer tar damaged: \(detail)"
        }
    }

    /// The file ends early: the archive being read, if any, is reported as cut short.
    func cutShort(_ problem: String) {
        tarProblem = tarProblem ?? problem
        if case .archive(let check) = collector { findings.append(check.cutShort()) }
        collector = .none
    }

    func handle(_ event: TarStreamParser.Event) {
        switch event {
        case .member(let entry):
            let name = entry.normalizedName
            if entry.hasUnsafePath { unsafeNames.append(entry.name) }
            if entry.kind == .file, name == "backup.json" || name == "snapshot.json" {
                collector = .backupJSON(name: name, bytes: [], tooLarge: false)
            } else if entry.kind == .file, name.hasSuffix(".tar.gz") || name.hasSuffix(".tar") {
                collector = .archive(ArchiveCheck(name: name, entrySize: entry.size, password: password, streamContent: streamContent))
            } else {
                collector = .none
                if name != "." { warnings.append("warning: unexpected member \(entry.name) in the backup (a restore ignores it)") }
            }
        case .data(let bytes):
            switch collector {
            case .backupJSON(let name, var collected, let tooLarge):
                let fits = !tooLarge && collected.count + bytes.count <= BackupVerifier.backupJSONLimit
                if fits { collected += bytes } else { collected = [] }
                collector = .backupJSON(name: name, bytes: collected, tooLarge: !fits)
            case .archive(let check): check.push(bytes)
            case .none: break
            }
        case .memberEnd:
            switch collector {
            case .backupJSON(let name, let bytes, let tooLarge):
                if tooLarge {
                    backupJSONProblem = "\(name) is larger than \(BackupVerifier.backupJSONLimit) bytes"
                } else if name == "backup.json" {
                    if backupJSON != nil { warnings.append("warning: the backup holds backup.json twice; the last one counts") }
                    backupJSON = bytes
                } else {
                    snapshotJSON = bytes
                }
            case .archive(let check): findings.append(check.finish())
            case .none: break
            }
            collector = .none
        case .end: break
        }
    }

    // MARK: Verdict

    func report(mode: VerificationMode, expectedSlug: String?) -> VerificationReport {
        var fatal: [String] = []
        var flags: [String] = []
        var notes = warnings
        if let readProblem { fatal.append(readProblem) }
        if let tarProblem { fatal.append(tarProblem) }
        if !unsafeNames.isEmpty { fatal.append("the backup has unsafe member names a restore refuses: \(unsafeNames.joined(separator: ", "))") }
        if nonZeroTrailingBytes > 0 { notes.append("warning: \(nonZeroTrailingBytes) non-zero bytes follow the end of the tar") }

        var manifest: BackupManifest?
        if let json = backupJSON ?? snapshotJSON {
            switch BackupManifest.parse(json) {
            case .success(let parsed): manifest = parsed
            case .failure(let problems): fatal += problems.list
            }
        } else {
            fatal.append(backupJSONProblem ?? "the backup has no ./backup.json")
        }
        if let manifest, let expectedSlug, manifest.slug != expectedSlug {
            fatal.append("backup.json has slug \(manifest.slug), expected \(expectedSlug): this is another backup")
        }

        // The archive set: every listed archive present once; extras only warned about.
        let expected = manifest?.expectedArchives ?? []
        for archive in expected {
            let count = findings.count(where: { $0.name == archive.fileName })
            if count == 0 { fatal.append("backup.json lists \(archive.listedAs) but \(archive.fileName) is missing") }
            if count > 1 { fatal.append("\(archive.fileName) appears \(count) times in the backup") }
        }
        let expectedNames = Set(expected.map(\.fileName))
        let addonNames = Set(expected.filter(\.isAddon).map(\.fileName))
        let protected = manifest?.protected

        var archives: [VerificationReport.Archive] = []
        var plaintextInProtected: [String] = []
        var wrongPassword = false
        for finding in findings {
            let listed = manifest == nil || expectedNames.contains(finding.name) || finding.name.hasPrefix("supervisor.tar")
            var format = finding.format
            var failure = finding.failure
            var note = finding.note
            if finding.format == .unknown, failure == nil {
                if protected == true, finding.couldBeV1 {
                    format = .secureTarV1
                    failure = finding.wrongPassword ? "the password is wrong (the first decrypted block is neither gzip nor tar)" : nil
                    note = "SecureTar v1 (no header): content not verified"
                } else {
                    failure = "it is neither gzip, tar nor SecureTar"
                }
            }
            if failure == nil, finding.isEncrypted, protected == false {
                failure = "it is encrypted (SecureTar) but backup.json says protected: false, so a restore reads it as gzip and fails"
            }
            if failure == nil, finding.contentVerified, addonNames.contains(finding.name), !finding.hasAddonJSON {
                failure = "it has no ./addon.json, which the restore of an add-on needs"
            }
            if finding.isPlaintext, protected == true { plaintextInProtected.append(finding.name) }
            wrongPassword = wrongPassword || finding.wrongPassword
            archives.append(.init(name: finding.name, format: format.rawValue, ok: failure == nil, detail: failure ?? note))
            guard let failure, !finding.wrongPassword else { continue }
            if listed {
                fatal.append("\(finding.name): \(failure)")
            } else {
                notes.append("warning: \(finding.name), which backup.json does not list, is damaged: \(failure)")
            }
        }
        if wrongPassword { fatal.append("the password is wrong: the protected archives cannot be decrypted with it") }

        // One backup uses one SecureTar version and, for v3, one root key (the restore derives it once).
        let headers = findings.compactMap(\.secureTarHeader)
        if Set(headers.map(\.version)).count > 1 { fatal.append("the archives mix SecureTar v2 and v3; a restore uses one key for all") }
        if Set(headers.filter { $0.version == 3 }.map { Array($0.rootParameters) }).count > 1 {
            fatal.append("the SecureTar v3 archives do not share one root salt and validation key; a restore derives one key for all")
        }

        if !plaintextInProtected.isEmpty {
            if plaintextInProtected.count == findings.count {
                flags.append("protected is claimed but the archives are stored unencrypted")
            } else {
                flags.append("protected is claimed but \(plaintextInProtected.joined(separator: ", ")) are stored unencrypted")
            }
        }

        let verdict: VerificationReport.Verdict = !fatal.isEmpty ? .notRestorable : !flags.isEmpty ? .flagged : .restorable
        return VerificationReport(verdict: verdict, mode: mode, slug: manifest?.slug, type: manifest?.type, protected: protected,
                                  archives: archives, problems: fatal + flags + notes, bytesRead: bytesRead)
    }
}
