import Compression

// Checks of one inner archive (homeassistant.tar.gz, an add-on, a folder, supervisor.tar.gz), fed its
// bytes as the outer tar streams past. Everything here is bounded in memory: zlib's window, one
// SecureTar chunk (1 MiB + 17), one inner tar header.

/// What is known about one inner archive once its bytes have passed. Whether it passes overall also
/// depends on backup.json (protected, add-on or not), which comes last; ``BackupVerifier`` decides.
struct ArchiveFinding {
    enum Format: String {
        case gzip, tar, secureTarV1 = "securetar-v1", secureTarV2 = "securetar-v2", secureTarV3 = "securetar-v3", unknown
    }

    var name: String
    var format: Format = .unknown
    /// A problem with the archive itself (damaged, wrong password); nil when none was found.
    var failure: String?
    var wrongPassword = false
    /// The plaintext (gzip stream and inner tar) was checked to its end.
    var contentVerified = false
    /// What limits the check, when something does ("content not verified without the password").
    var note: String?
    var hasAddonJSON = false
    var secureTarHeader: SecureTarHeader?
    /// Not gzip, tar or SecureTar v2/v3, but sized like SecureTar v1 (16-byte salt + AES blocks).
    var couldBeV1 = false

    var isEncrypted: Bool { format == .secureTarV2 || format == .secureTarV3 }
    var isPlaintext: Bool { format == .gzip || format == .tar }
}

/// The password and what was derived from it, shared by the archives of one backup: Argon2id runs once
/// per root salt (16 MiB, about a second), the SHA-256 key once.
final class PasswordKeys {
    let password: String
    private var v3RootKeys: [[UInt8]: [UInt8]] = [:]
    private lazy var aesKey = SecureTarKeys.aesKey(password: password)

    init(password: String) { self.password = password }

    /// The v3 file key of an archive, or nil when the password does not produce the stored validation key.
    func v3FileKey(for header: SecureTarHeader) -> [UInt8]? {
        let salt = header.rootSalt
        let rootKey = v3RootKeys[salt] ?? SecureTarKeys.v3RootKey(password: password, rootSalt: salt)
        v3RootKeys[salt] = rootKey
        let validation = SecureTarKeys.v3Subkey(rootKey: rootKey, salt: header.validationSalt)
        guard SecureTarKeys.constantTimeEqual(validation, header.validationKey) else { return nil }
        return SecureTarKeys.v3Subkey(rootKey: rootKey, salt: header.derivationSalt)
    }

    /// AES key and IV of a v1/v2 archive with this 16-byte salt.
    func aes(salt: [UInt8]) -> (key: [UInt8], iv: [UInt8]) { (aesKey, SecureTarKeys.aesIV(key: aesKey, salt: salt)) }

    /// v1/v2 have no MAC: a wrong key shows as a first decrypted block that is neither gzip nor tar
    /// (securetar's own check). `ciphertext` starts after the salt.
    func aesFirstBlockLooksRight(salt: [UInt8], ciphertext: ArraySlice<UInt8>) -> Bool {
        let (key, iv) = aes(salt: salt)
        let usable = ciphertext.prefix(ciphertext.count / 16 * 16).prefix(272)
        return PlainArchiveCheck.looksLikeGzipOrTar(AESCBCDecryptor.firstBlocks(key: key, iv: iv, ciphertext: usable))
    }
}

/// Streams one inner archive: classifies it by its first bytes, then (in full mode) decrypts and
/// inflates it to the end.
final class ArchiveCheck {
    /// Bytes looked at to classify: SecureTar v3's header is 136, a tar's `ustar` magic sits at 257.
    static let headSize = 512

    private(set) var finding: ArchiveFinding
    private let entrySize: Int64
    private let password: PasswordKeys?
    /// False in quick mode: only the head is looked at.
    private let streamContent: Bool
    private var head: [UInt8] = []
    private var classified = false
    private var headerBytesToSkip = 0
    private var decryptor: (any SecureTarDecryptor)?
    private var plain: PlainArchiveCheck?

    init(name: String, entrySize: Int64, password: PasswordKeys?, streamContent: Bool) {
        finding = ArchiveFinding(name: name)
        self.entrySize = entrySize
        self.password = password
        self.streamContent = streamContent
    }

    /// How many more bytes of the entry the check needs (the rest of the head in quick mode).
    var bytesWanted: Int64 {
        streamContent ? entrySize : Int64(max(0, min(Int64(Self.headSize), entrySize) - Int64(head.count)))
    }

    func push(_ bytes: ArraySlice<UInt8>) {
        var input = bytes
        if !classified {
            let take = min(Self.headSize - head.count, input.count)
            head += input.prefix(take)
            input = input.dropFirst(take)
            guard head.count == Self.headSize else { return }
            classify()
            process(head[...])
        }
        process(input)
    }

    /// Call after the entry's last byte (or, in quick mode, once the head is in).
    func finish() -> ArchiveFinding {
        if !classified {
            classify()
            process(head[...])
        }
        guard finding.failure == nil, streamContent else { return finding }
        do {
            if let decryptor, let plain { try decryptor.finish { try plain.push($0) } }
            if let plain {
                try plain.finish()
                finding.contentVerified = true
                finding.hasAddonJSON = plain.hasAddonJSON
                if let problem = plain.innerProblem { finding.failure = problem }
            }
        } catch {
            record(error)
        }
        return finding
    }

    /// The outer tar ended inside this archive.
    func cutShort() -> ArchiveFinding {
        if !classified, !head.isEmpty { classify() }
        finding.failure = "it is cut short: the file ends inside it"
        return finding
    }

    // MARK: Internals

    private func classify() {
        classified = true
        if let parsed = SecureTarHeader.parse(head) {
            finding.format = head.count > 9 && head[9] == 2 ? .secureTarV2 : head.count > 9 && head[9] == 3 ? .secureTarV3 : .unknown
            switch parsed {
            case .failure(let failure): finding.failure = failure.detail
            case .success(let header): classifyEncrypted(header)
            }
        } else if head.starts(with: [0x1F, 0x8B, 0x08]) {
            finding.format = .gzip
            if streamContent { plain = PlainArchiveCheck(format: .gzip) } else { finding.note = "quick check: gzip header only" }
        } else if PlainArchiveCheck.looksLikeGzipOrTar(head) {
            finding.format = .tar
            if streamContent { plain = PlainArchiveCheck(format: .tar) } else { finding.note = "quick check: tar header only" }
        } else {
            // Without magic this can be SecureTar v1 (a 16-byte salt, then AES blocks) only in a protected
            // backup; backup.json, which says so, comes last, so the verdict is made there.
            finding.couldBeV1 = entrySize >= 32 && (entrySize - 16) % 16 == 0
            if finding.couldBeV1, let password, head.count >= 32,
               !password.aesFirstBlockLooksRight(salt: Array(head[0..<16]), ciphertext: head[16...]) {
                finding.wrongPassword = true
            }
        }
    }

    private func classifyEncrypted(_ header: SecureTarHeader) {
        finding.secureTarHeader = header
        guard header.expectedEntrySize == entrySize else {
            finding.failure = "its SecureTar v\(header.version) header declares \(header.plaintextSize) bytes of plaintext, "
                + "which makes an entry of \(header.expectedEntrySize) bytes, but the entry has \(entrySize)"
            return
        }
        guard let password else {
            finding.note = "encrypted: header checks out; content not verified without the password"
            return
        }
        if header.version == 3 {
            guard let fileKey = password.v3FileKey(for: header) else {
                finding.wrongPassword = true
                finding.failure = "the password is wrong (the SecureTar v3 validation key does not match)"
                return
            }
            if streamContent {
                decryptor = SecretStreamDecryptor(fileKey: fileKey, header: header.streamHeader, plaintextSize: header.plaintextSize,
                                                  chunkCount: header.chunkCount)
            }
        } else {
            guard password.aesFirstBlockLooksRight(salt: header.salt, ciphertext: head[48...]) else {
                finding.wrongPassword = true
                finding.failure = "the password is wrong (the first decrypted block is neither gzip nor tar)"
                return
            }
            if streamContent {
                let (key, iv) = password.aes(salt: header.salt)
                decryptor = AESCBCDecryptor(key: key, iv: iv)
            }
        }
        if streamContent {
            plain = PlainArchiveCheck(format: .detect, expectedSize: header.plaintextSize)
            headerBytesToSkip = header.size
        } else {
            finding.note = "encrypted: password checked; content not verified in a quick check"
        }
    }

    private func process(_ bytes: ArraySlice<UInt8>) {
        guard finding.failure == nil, let plain, !bytes.isEmpty else { return }
        var input = bytes
        if headerBytesToSkip > 0 {
            let skip = min(headerBytesToSkip, input.count)
            headerBytesToSkip -= skip
            input = input.dropFirst(skip)
            if input.isEmpty { return }
        }
        do {
            if let decryptor {
                try decryptor.push(input) { try plain.push($0) }
            } else {
                try plain.push(input)
            }
        } catch {
            record(error)
        }
    }

    private func record(_ error: any Error) {
        switch error {
        case let failure as SecureTarFailure: finding.failure = failure.detail
        case let failure as CompressionError where failure.code == .corruptData:
            finding.failure = "its gzip data is corrupt (zlib: \(failure.detail))"
        case let failure as CompressionError where failure.code == .truncated:
            finding.failure = "its gzip stream ends early"
        case let failure as CompressionError: finding.failure = "zlib cannot read it: \(failure.detail)"
        case let problem as PlainArchiveCheck.Problem: finding.failure = problem.detail
        default: finding.failure = "\(error)"
        }
    }
}

/// The plaintext of an inner archive as it streams: gzip inflated with zlib (which checks CRC-32 and
/// ISIZE), and the tar inside parsed (checksums, sizes, end blocks, safe names, `./addon.json`).
final class PlainArchiveCheck {
    struct Problem: Error { let detail: String }

    enum Format {
        case gzip, tar
        /// Decrypted content: gzip, or a bare tar in backups made with `compressed: false`.
        case detect
    }

    private var format: Format
    private var inflater: Inflater?
    private let expectedSize: Int64?
    /// The first bytes while the format is being detected.
    private var head: [UInt8] = []
    private var tar = TarStreamParser()
    private var crc = CRC32()
    private var inflatedSize: UInt64 = 0
    private var plaintextSize: Int64 = 0
    /// The last 8 bytes of the gzip stream: its CRC-32 and ISIZE.
    private var tail: [UInt8] = []
    private(set) var hasAddonJSON = false
    /// The first problem in the inner tar; gzip keeps being checked after it.
    private(set) var innerProblem: String?

    init(format: Format, expectedSize: Int64? = nil) {
        self.format = format
        self.expectedSize = expectedSize
    }

    static func looksLikeGzipOrTar(_ bytes: [UInt8]) -> Bool {
        bytes.starts(with: [0x1F, 0x8B, 0x08]) || (bytes.count >= 262 && Array(bytes[257..<262]) == Array("ustar".utf8))
    }

    func push(_ bytes: ArraySlice<UInt8>) throws {
        plaintextSize += Int64(bytes.count)
        switch format {
        case .detect:
            head += bytes
            if head.count >= 262 { try detect() }
        case .tar:
            feedTar(bytes)
        case .gzip:
            try inflate(bytes)
        }
    }

    func finish() throws {
        if case .detect = format { try detect() }
        if let expectedSize, plaintextSize != expectedSize {
            throw Problem(detail: "it decrypts to \(plaintextSize) bytes, but its SecureTar header says \(expectedSize)")
        }
        if let inflater {
            try inflater.finish()
            // zlib checked the trailer it found; this checks that trailer is the entry's last 8 bytes.
            let stored = tail.count == 8 ? (0..<4).reduce(UInt64(0)) { $0 | UInt64(tail[$1]) << (8 * UInt64($1)) } : 0
            let length = tail.count == 8 ? (4..<8).reduce(UInt64(0)) { $0 | UInt64(tail[$1]) << (8 * UInt64($1 - 4)) } : 0
            guard stored == UInt64(crc.value), length == inflatedSize & 0xFFFF_FFFF else {
                throw Problem(detail: "it has data after the end of its gzip stream")
            }
        }
        if innerProblem == nil {
            do { try tar.finish() } catch { innerProblem = "its inner tar is damaged: \(Self.describe(error))" }
        }
    }

    private func detect() throws {
        let bytes = head
        head = []
        if bytes.starts(with: [0x1F, 0x8B, 0x08]) {
            format = .gzip
            try inflate(bytes[...])
        } else if Self.looksLikeGzipOrTar(bytes) {
            format = .tar
            feedTar(bytes[...])
        } else {
            throw Problem(detail: "its decrypted content is neither gzip nor tar")
        }
    }

    private func inflate(_ bytes: ArraySlice<UInt8>) throws {
        guard !bytes.isEmpty else { return }
        let inflater = try inflater ?? Inflater(format: .gzip)
        self.inflater = inflater
        if inflater.isFinished { throw Problem(detail: "it has data after the end of its gzip stream") }
        tail = bytes.count >= 8 ? Array(bytes.suffix(8)) : Array((tail + bytes).suffix(8))
        try inflater.decompress(Array(bytes)) { output in
            crc.update(output)
            inflatedSize += UInt64(output.count)
            feedTar(output[...])
        }
    }

    private func feedTar(_ bytes: ArraySlice<UInt8>) {
        guard innerProblem == nil else { return }
        do {
            try tar.push(bytes) { event in
                switch event {
                case .member(let entry):
                    if entry.hasUnsafePath { throw Problem(detail: "its inner tar has the unsafe name \(entry.name)") }
                    if entry.normalizedName == "addon.json" && entry.kind == .file { hasAddonJSON = true }
                case .data, .memberEnd, .end: break
                }
            }
        } catch let problem as Problem {
            innerProblem = problem.detail
        } catch {
            innerProblem = "its inner tar is damaged: \(Self.describe(error))"
        }
    }

    static func describe(_ error: any Error) -> String {
        (error as? TarError).map { "\($0.detail) (at byte \($0.offset))" } ?? "\(error)"
    }
}
