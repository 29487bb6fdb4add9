import Foundation

// A small POSIX tar (ustar + PAX) writer and reader, self-contained (Foundation only) so it can move
// to another module unchanged. It writes what Python's `tarfile` writes in PAX format — the format of
// Home Assistant backups — and reads that plus GNU long names and base-256 sizes.
//
// - SeeAlso: https://pubs.opengroup.org/onlinepubs/9799919799/utilities/pax.html (ustar and pax
//   interchange formats), https://www.gnu.org/software/tar/manual/html_node/Standard.html

/// Why an archive could not be written or read.
public struct TarError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The input ended inside a header or inside a member's data.
        case truncated
        /// A header's checksum does not match its bytes.
        case badChecksum
        /// A header field is not what the format allows (bad octal number, bad magic).
        case badHeader
        /// A PAX extended header record is malformed.
        case badPaxRecord
        /// A member's data was written longer or shorter than its header declared, or a name cannot be stored.
        case misuse
        /// Reading or writing the underlying file failed.
        case io
    }

    public let code: Code
    /// Byte offset in the archive where the problem was found.
    public let offset: Int64
    public let detail: String

    public init(_ code: Code, offset: Int64, _ detail: String) {
        self.code = code
        self.offset = offset
        self.detail = detail
    }

    public var description: String { "tar: \(detail) (at byte \(offset))" }
}

/// One member of an archive: what its header (after PAX and GNU extensions) says.
public struct TarEntry: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case file, directory, symbolicLink, hardLink
        /// Any other type flag (devices, FIFOs, vendor types), kept as its byte.
        case other(UInt8)

        var typeFlag: UInt8 {
            switch self {
            case .file: UInt8(ascii: "0")
            case .hardLink: UInt8(ascii: "1")
            case .symbolicLink: UInt8(ascii: "2")
            case .directory: UInt8(ascii: "5")
            case .other(let flag): flag
            }
        }
    }

    /// The member's path exactly as stored (PAX `path` and GNU long names applied).
    public var name: String
    public var kind: Kind
    /// Bytes of data that follow the header (0 for directories and links).
    public var size: Int64
    public var mode: Int
    /// Seconds since 1970; fractional values are written as a PAX `mtime` record, as Python does.
    public var mtime: Double
    public var uid: Int
    public var gid: Int
    public var userName: String
    public var groupName: String
    public var linkName: String
    /// Extended header records that applied to this member (PAX `x`, after global `g` ones).
    public var paxRecords: [String: String]
    /// Where the member's header starts in the archive (its first extension header, if any); set by the reader.
    public internal(set) var headerOffset: Int64 = 0
    /// Where the member's data starts in the archive; set by the reader.
    public internal(set) var dataOffset: Int64 = 0

    public init(name: String, kind: Kind = .file, size: Int64 = 0, mode: Int? = nil, mtime: Double = 0, uid: Int = 0, gid: Int = 0,
                userName: String = "", groupName: String = "", linkName: String = "", paxRecords: [String: String] = [:]) {
        self.name = name
        self.kind = kind
        self.size = size
        self.mode = mode ?? (kind == .directory ? 0o755 : 0o644)
        self.mtime = mtime
        self.uid = uid
        self.gid = gid
        self.userName = userName
        self.groupName = groupName
        self.linkName = linkName
        self.paxRecords = paxRecords
    }

    /// The name without leading `./` (Supervisors before 2024 wrote `./homeassistant.tar.gz`, newer ones
    /// `homeassistant.tar.gz`; backup.json is always `./backup.json`). `./` alone becomes `.`.
    public var normalizedName: String {
        var name = Substring(name)
        while name.hasPrefix("./") { name = name.dropFirst(2) }
        if name.isEmpty || name == "." { return "." }
        return String(name.hasSuffix("/") && kind == .directory ? name.dropLast() : name)
    }

    /// True for an absolute path or one with a `..` component: extracting it could write outside the target
    /// (the Supervisor restores with `filter="tar"`, which refuses these).
    public var hasUnsafePath: Bool {
        name.hasPrefix("/") || name.split(separator: "/", omittingEmptySubsequences: false).contains("..")
    }
}

// MARK: - Writer

/// Writes a tar stream in PAX format to a sink: 512-byte headers, data padded to 512 bytes, two zero
/// blocks at the end and the whole padded to a multiple of 10240 bytes (Python's default record size).
///
/// Members are written one at a time: ``add(_:contents:)`` for small data, or ``begin(_:)``, ``write(_:)``
/// and ``end()`` to stream data whose size is known up front. Owned by one task at a time.
///
/// ```swift
/// let writer = TarWriter(fileHandle: handle)
/// try writer.add(TarEntry(name: "./backup.json", size: Int64(json.count)), contents: json)
/// try writer.finish()
/// ```
public final class TarWriter {
    public typealias Sink = ([UInt8]) throws -> Void

    public static let blockSize = 512
    public static let recordSize = 10240

    private let sink: Sink
    /// Bytes handed to the sink so far.
    public private(set) var bytesWritten: Int64 = 0
    private var open: (name: String, remaining: Int64, size: Int64)?
    private var finished = false

    public init(sink: @escaping Sink) { self.sink = sink }

    /// Writes to a file handle at its current position.
    public convenience init(fileHandle: FileHandle) {
        self.init { bytes in
            do {
                try fileHandle.write(contentsOf: bytes)
            } catch {
                throw TarError(.io, offset: -1, "cannot write: \(error.localizedDescription)")
            }
        }
    }

    /// Adds a member with all of its data.
    public func add(_ entry: TarEntry, contents: [UInt8] = []) throws(TarError) {
        var entry = entry
        if entry.kind == .file { entry.size = Int64(contents.count) }
        try begin(entry)
        if !contents.isEmpty { try write(contents) }
        try end()
    }

    /// Starts a member whose `size` bytes of data follow through ``write(_:)``.
    public func begin(_ entry: TarEntry) throws(TarError) {
        guard !finished else { throw TarError(.misuse, offset: bytesWritten, "the archive is finished") }
        guard open == nil else { throw TarError(.misuse, offset: bytesWritten, "member \(open!.name) is still open") }
        guard entry.size >= 0 else { throw TarError(.misuse, offset: bytesWritten, "negative size for \(entry.name)") }
        let dataSize = entry.kind == .file || entry.kind.isOther ? entry.size : 0
        for block in try Self.headerBlocks(for: entry, size: dataSize) { try emit(block) }
        open = (entry.name, dataSize, dataSize)
    }

    /// Writes data of the open member.
    public func write(_ bytes: [UInt8]) throws(TarError) {
        guard let current = open else { throw TarError(.misuse, offset: bytesWritten, "no member is open") }
        guard Int64(bytes.count) <= current.remaining else {
            throw TarError(.misuse, offset: bytesWritten, "more data than the \(current.size) bytes declared for \(current.name)")
        }
        if !bytes.isEmpty { try emit(bytes) }
        open = (current.name, current.remaining - Int64(bytes.count), current.size)
    }

    /// Ends the open member, padding its data to a whole block.
    public func end() throws(TarError) {
        guard let current = open else { throw TarError(.misuse, offset: bytesWritten, "no member is open") }
        guard current.remaining == 0 else {
            throw TarError(.misuse, offset: bytesWritten, "\(current.remaining) of \(current.size) bytes of \(current.name) were not written")
        }
        open = nil
        let partial = Int(current.size % Int64(Self.blockSize))
        if partial > 0 { try emit([UInt8](repeating: 0, count: Self.blockSize - partial)) }
    }

    /// Writes the end-of-archive marker (two zero blocks) and pads to a whole record.
    public func finish() throws(TarError) {
        guard open == nil else { throw TarError(.misuse, offset: bytesWritten, "member \(open!.name) is still open") }
        guard !finished else { return }
        finished = true
        var padding = 2 * Self.blockSize
        let total = bytesWritten + Int64(padding)
        let remainder = Int(total % Int64(Self.recordSize))
        if remainder > 0 { padding += Self.recordSize - remainder }
        try emit([UInt8](repeating: 0, count: padding))
    }

    private func emit(_ bytes: [UInt8]) throws(TarError) {
        do {
            try sink(bytes)
        } catch let error as TarError {
            throw error
        } catch {
            throw TarError(.io, offset: bytesWritten, "cannot write: \(error)")
        }
        bytesWritten += Int64(bytes.count)
    }

    // MARK: Headers

    /// The largest value an octal field of `width` bytes holds (one byte is the terminator).
    private static func octalLimit(_ width: Int) -> Int64 { (1 << (3 * Int64(width - 1))) - 1 }

    /// The ustar header, preceded by a PAX `x` header when a value does not fit the ustar fields.
    static func headerBlocks(for entry: TarEntry, size: Int64) throws(TarError) -> [[UInt8]] {
        var records: [(String, String)] = []
        let nameBytes = Array(entry.name.utf8)
        guard !nameBytes.isEmpty else { throw TarError(.misuse, offset: 0, "empty member name") }
        if nameBytes.count > 100 || !entry.name.utf8.allSatisfy({ $0 < 0x80 }) { records.append(("path", entry.name)) }
        if entry.linkName.utf8.count > 100 || !entry.linkName.utf8.allSatisfy({ $0 < 0x80 }) { records.append(("linkpath", entry.linkName)) }
        for (key, value) in [("uname", entry.userName), ("gname", entry.groupName)]
        where value.utf8.count > 32 || !value.utf8.allSatisfy({ $0 < 0x80 }) {
            records.append((key, value))
        }
        if Int64(entry.uid) > octalLimit(8) { records.append(("uid", String(entry.uid))) }
        if Int64(entry.gid) > octalLimit(8) { records.append(("gid", String(entry.gid))) }
        if size > octalLimit(12) { records.append(("size", String(size))) }
        let wholeSeconds = entry.mtime.rounded(.down)
        if entry.mtime != wholeSeconds || entry.mtime < 0 || Int64(wholeSeconds) > octalLimit(12) {
            records.append(("mtime", "\(entry.mtime)"))
        }
        for (key, value) in entry.paxRecords.sorted(by: { $0.key < $1.key }) where !records.contains(where: { $0.0 == key }) {
            records.append((key, value))
        }

        var blocks: [[UInt8]] = []
        if !records.isEmpty {
            let data = records.flatMap { paxRecord($0.0, $0.1) }
            var pax = TarEntry(name: "././@PaxHeader", kind: .other(UInt8(ascii: "x")), size: Int64(data.count), mode: 0)
            pax.mtime = 0
            blocks.append(ustarBlock(pax, size: Int64(data.count)))
            var padded = data
            let partial = data.count % blockSize
            if partial > 0 { padded += [UInt8](repeating: 0, count: blockSize - partial) }
            stride(from: 0, to: padded.count, by: blockSize).forEach { blocks.append(Array(padded[$0..<($0 + blockSize)])) }
        }
        blocks.append(ustarBlock(entry, size: size))
        return blocks
    }

    /// One `"<length> <key>=<value>\n"` record; the length counts itself.
    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n".utf8.count
        var length = body + String(body).count
        if String(length).count != String(body).count { length = body + String(length).count }
        return Array("\(length) \(key)=\(value)\n".utf8)
    }

    private static func ustarBlock(_ entry: TarEntry, size: Int64) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: blockSize)
        func put(_ text: [UInt8], at offset: Int, width: Int) {
            for (index, byte) in text.prefix(width).enumerated() { block[offset + index] = byte }
        }
        func putOctal(_ value: Int64, at offset: Int, width: Int) {
            let clamped = value < 0 || value > octalLimit(width) ? 0 : value // the real value is in a PAX record
            let digits = String(clamped, radix: 8)
            put(Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0], at: offset, width: width)
        }
        put(truncatedUTF8(entry.name, 100), at: 0, width: 100)
        putOctal(Int64(entry.mode), at: 100, width: 8)
        putOctal(Int64(entry.uid), at: 108, width: 8)
        putOctal(Int64(entry.gid), at: 116, width: 8)
        putOctal(size, at: 124, width: 12)
        putOctal(Int64(entry.mtime.rounded(.down)), at: 136, width: 12)
        block[156] = entry.kind.typeFlag
        put(truncatedUTF8(entry.linkName, 100), at: 157, width: 100)
        put(Array("ustar".utf8) + [0], at: 257, width: 6)
        put(Array("00".utf8), at: 263, width: 2)
        put(truncatedUTF8(entry.userName, 32), at: 265, width: 32)
        put(truncatedUTF8(entry.groupName, 32), at: 297, width: 32)
        // Checksum: sum of all bytes with the field itself read as spaces, written "%06o\0 " as Python does.
        for index in 148..<156 { block[index] = 0x20 }
        let checksum = block.reduce(0) { $0 + Int($1) }
        let digits = String(checksum, radix: 8)
        put(Array((String(repeating: "0", count: max(0, 6 - digits.count)) + digits).utf8) + [0, 0x20], at: 148, width: 8)
        return block
    }

    /// The longest prefix of the UTF-8 bytes that fits and does not split a character.
    private static func truncatedUTF8(_ text: String, _ width: Int) -> [UInt8] {
        let bytes = Array(text.utf8)
        guard bytes.count > width else { return bytes }
        var end = width
        while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return Array(bytes[..<end])
    }
}

extension TarEntry.Kind {
    var isOther: Bool { if case .other = self { true } else { false } }
}

@available(*, unavailable)
extension TarWriter: Sendable {}

// MARK: - Reader

/// Where a ``TarReader`` gets its bytes: sequential reads, and skips that a file can do by seeking.
public protocol TarSource: AnyObject {
    /// Up to `count` bytes; fewer only at the end of the input.
    func read(_ count: Int) throws -> [UInt8]
    /// Skips up to `count` bytes; returns how many were skipped (fewer only at the end).
    func skip(_ count: Int64) throws -> Int64
}

/// A file read through a `FileHandle`; skips seek instead of reading.
public final class FileTarSource: TarSource {
    private let handle: FileHandle
    private let length: Int64
    private var position: Int64 = 0

    public init(url: URL) throws(TarError) {
        do {
            handle = try FileHandle(forReadingFrom: url)
            length = Int64(try handle.seekToEnd())
            try handle.seek(toOffset: 0)
        } catch {
            throw TarError(.io, offset: 0, "cannot open \(url.path): \(error.localizedDescription)")
        }
    }

    deinit { try? handle.close() }

    public func read(_ count: Int) throws -> [UInt8] {
        guard count > 0, position < length else { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(min(count, Int(length - position)))
        while out.count < count {
            guard let data = try handle.read(upToCount: count - out.count), !data.isEmpty else { break }
            out += data
        }
        position += Int64(out.count)
        return out
    }

    public func skip(_ count: Int64) throws -> Int64 {
        let skipped = max(0, min(count, length - position))
        position += skipped
        try handle.seek(toOffset: UInt64(position))
        return skipped
    }
}

@available(*, unavailable)
extension FileTarSource: Sendable {}

/// Bytes already in memory (an inflated inner archive, a test fixture).
public final class BytesTarSource: TarSource {
    private let bytes: [UInt8]
    private var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func read(_ count: Int) throws -> [UInt8] {
        let end = min(bytes.count, position + max(0, count))
        defer { position = end }
        return Array(bytes[position..<end])
    }

    public func skip(_ count: Int64) throws -> Int64 {
        let skipped = Int(max(0, min(count, Int64(bytes.count - position))))
        position += skipped
        return Int64(skipped)
    }
}

@available(*, unavailable)
extension BytesTarSource: Sendable {}

/// Reads a tar stream member by member without loading it: ``next()`` returns the next header (data of
/// the previous member is skipped if unread), then ``readData(limit:)`` or ``readChunk(maxBytes:)`` give
/// the data. Checks every header checksum, honours PAX `x`/`g` records (`path`, `size`, `linkpath`,
/// `mtime`, `uid`, `gid`, `uname`, `gname`), GNU `L`/`K` long names, the ustar `prefix` field and
/// base-256 numbers.
///
/// ```swift
/// let reader = try TarReader(url: backupFile)
/// while let entry = try reader.next() {
///     if entry.normalizedName == "backup.json" { json = try reader.readData(limit: 1 << 20) }
/// }
/// ```
public final class TarReader {
    private let source: any TarSource
    /// Bytes consumed from the source.
    public private(set) var offset: Int64 = 0
    /// True once the two zero blocks that end an archive were read. An input that simply stops at a
    /// member boundary also ends the iteration, with this false (Python's `tarfile` accepts that too).
    public private(set) var sawEndOfArchive = false
    private var remainingData: Int64 = 0
    private var paddingAfterData: Int64 = 0
    private var globalRecords: [String: String] = [:]
    private var done = false
    /// Largest PAX or GNU extension accepted, to bound memory on hostile input.
    public static let maxExtensionBytes = 1 << 20

    public init(source: any TarSource) { self.source = source }
    public convenience init(url: URL) throws(TarError) { self.init(source: try FileTarSource(url: url)) }
    public convenience init(bytes: [UInt8]) { self.init(source: BytesTarSource(bytes)) }

    /// The next member, or nil at the end of the archive.
    public func next() throws(TarError) -> TarEntry? {
        guard !done else { return nil }
        try skipRest()
        var records: [String: String] = [:]
        var gnuName: String?
        var gnuLink: String?
        var headerStart: Int64?
        while true {
            let blockOffset = offset
            let block = try readBlock(allowEOF: true)
            guard let block else {
                // A clean stop at a block boundary: no end marker, but nothing cut either.
                guard headerStart == nil else { throw TarError(.truncated, offset: offset, "the archive ends after an extension header") }
                done = true
                return nil
            }
            if block.allSatisfy({ $0 == 0 }) {
                guard headerStart == nil else { throw TarError(.badHeader, offset: blockOffset, "zero block after an extension header") }
                done = true
                let second = try readBlock(allowEOF: true)
                sawEndOfArchive = second.map { $0.allSatisfy { $0 == 0 } } ?? false
                if second != nil, !sawEndOfArchive { throw TarError(.badHeader, offset: blockOffset, "a single zero block in the middle of the archive") }
                return nil
            }
            if headerStart == nil { headerStart = blockOffset }
            try Self.verifyChecksum(block, at: blockOffset)
            let flag = block[156]
            let size = try Self.number(block, 124, 12, at: blockOffset)
            switch flag {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                let data = try readExtension(size: size)
                let parsed = try Self.parsePax(data, at: blockOffset)
                if flag == UInt8(ascii: "g") { globalRecords.merge(parsed) { $1 } } else { records.merge(parsed) { $1 } }
            case UInt8(ascii: "L"), UInt8(ascii: "K"):
                let data = try readExtension(size: size)
                let text = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                if flag == UInt8(ascii: "L") { gnuName = text } else { gnuLink = text }
            default:
                var entry = try Self.entry(from: block, at: blockOffset)
                if let gnuName { entry.name = gnuName }
                if let gnuLink { entry.linkName = gnuLink }
                try Self.apply(globalRecords.merging(records) { $1 }, to: &entry, at: blockOffset)
                if entry.kind == .file, entry.name.hasSuffix("/"), block[156] == 0 { entry.kind = .directory }
                entry.headerOffset = headerStart ?? blockOffset
                entry.dataOffset = offset
                // Links and directories carry no data, whatever their size field says (POSIX).
                let dataSize: Int64 = switch entry.kind {
                case .directory, .symbolicLink, .hardLink: 0
                default: entry.size
                }
                remainingData = dataSize
                paddingAfterData = (Int64(Self.blockSize) - dataSize % Int64(Self.blockSize)) % Int64(Self.blockSize)
                return entry
            }
        }
    }

    /// The rest of the current member's data, at most `limit` bytes (it must fit).
    public func readData(limit: Int) throws(TarError) -> [UInt8] {
        guard remainingData <= Int64(limit) else {
            throw TarError(.misuse, offset: offset, "member has \(remainingData) bytes, more than the \(limit) allowed")
        }
        var out: [UInt8] = []
        out.reserveCapacity(Int(remainingData))
        while let chunk = try readChunk(maxBytes: 1 << 20) { out += chunk }
        return out
    }

    /// The next piece of the current member's data, or nil when it is all read.
    public func readChunk(maxBytes: Int = 256 * 1024) throws(TarError) -> [UInt8]? {
        guard remainingData > 0 else { return nil }
        let want = Int(min(Int64(maxBytes), remainingData))
        let bytes = try readSource(want)
        guard bytes.count == want else { throw TarError(.truncated, offset: offset, "the archive ends inside a member's data") }
        remainingData -= Int64(want)
        return bytes
    }

    // MARK: Internals

    private static let blockSize = 512

    private func skipRest() throws(TarError) {
        let total = remainingData + paddingAfterData
        guard total > 0 else { return }
        let dataLeft = remainingData
        remainingData = 0
        paddingAfterData = 0
        let skipped: Int64
        do {
            skipped = try source.skip(total)
        } catch {
            throw TarError(.io, offset: offset, "cannot read: \(error)")
        }
        offset += skipped
        // Missing padding after the last member's data is tolerated only if no data is missing.
        if skipped < dataLeft { throw TarError(.truncated, offset: offset, "the archive ends inside a member's data") }
        if skipped < total { done = true }
    }

    private func readSource(_ count: Int) throws(TarError) -> [UInt8] {
        let bytes: [UInt8]
        do {
            bytes = try source.read(count)
        } catch {
            throw TarError(.io, offset: offset, "cannot read: \(error)")
        }
        offset += Int64(bytes.count)
        return bytes
    }

    private func readBlock(allowEOF: Bool) throws(TarError) -> [UInt8]? {
        let block = try readSource(Self.blockSize)
        if block.isEmpty, allowEOF { return nil }
        guard block.count == Self.blockSize else { throw TarError(.truncated, offset: offset, "the archive ends inside a header") }
        return block
    }

    private func readExtension(size: Int64) throws(TarError) -> [UInt8] {
        guard size <= Int64(Self.maxExtensionBytes) else { throw TarError(.badPaxRecord, offset: offset, "extension header of \(size) bytes") }
        let padded = Int((size + 511) / 512 * 512)
        let data = try readSource(padded)
        guard data.count == padded else { throw TarError(.truncated, offset: offset, "the archive ends inside an extension header") }
        return Array(data.prefix(Int(size)))
    }

    private static func verifyChecksum(_ block: [UInt8], at offset: Int64) throws(TarError) {
        let stored = try number(block, 148, 8, at: offset)
        var unsigned = 0
        var signed = 0
        for (index, byte) in block.enumerated() {
            let value = (148..<156).contains(index) ? 0x20 : byte
            unsigned += Int(value)
            signed += Int(Int8(bitPattern: value))
        }
        // Some old tars summed signed bytes; accept either.
        guard stored == Int64(unsigned) || stored == Int64(signed) else {
            throw TarError(.badChecksum, offset: offset, "header checksum \(stored) does not match \(unsigned)")
        }
    }

    /// An octal field (NUL- or space-terminated, leading spaces allowed) or a GNU base-256 one.
    static func number(_ block: [UInt8], _ start: Int, _ width: Int, at offset: Int64) throws(TarError) -> Int64 {
        let field = block[start..<(start + width)]
        if let first = field.first, first & 0x80 != 0 {
            // Base-256: the remaining bits, big-endian, two's complement when the 0x40 bit is set.
            guard first & 0x40 == 0 else { throw TarError(.badHeader, offset: offset, "negative base-256 number") }
            var value: Int64 = Int64(first & 0x3F)
            for byte in field.dropFirst() {
                guard value <= (Int64.max >> 8) else { throw TarError(.badHeader, offset: offset, "base-256 number too large") }
                value = value << 8 | Int64(byte)
            }
            return value
        }
        var value: Int64 = 0
        var seenDigit = false
        for byte in field {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                guard value <= (Int64.max >> 3) else { throw TarError(.badHeader, offset: offset, "octal number too large") }
                value = value << 3 | Int64(byte - UInt8(ascii: "0"))
                seenDigit = true
            case 0x20 where !seenDigit: continue
            case 0, 0x20: return value
            default: throw TarError(.badHeader, offset: offset, "bad octal digit in a header field")
            }
        }
        return value
    }

    private static func string(_ block: [UInt8], _ start: Int, _ width: Int) -> String {
        String(decoding: block[start..<(start + width)].prefix { $0 != 0 }, as: UTF8.self)
    }

    private static func entry(from block: [UInt8], at offset: Int64) throws(TarError) -> TarEntry {
        let flag = block[156]
        let kind: TarEntry.Kind = switch flag {
        case UInt8(ascii: "0"), 0, UInt8(ascii: "7"): .file // '7' = contiguous file, read as a regular one
        case UInt8(ascii: "1"): .hardLink
        case UInt8(ascii: "2"): .symbolicLink
        case UInt8(ascii: "5"): .directory
        default: .other(flag)
        }
        var name = string(block, 0, 100)
        let magic = Array(block[257..<262])
        if magic == Array("ustar".utf8) {
            let prefix = string(block, 345, 155)
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        return TarEntry(name: name, kind: kind, size: try number(block, 124, 12, at: offset), mode: Int(try number(block, 100, 8, at: offset)),
                        mtime: Double(try number(block, 136, 12, at: offset)), uid: Int(try number(block, 108, 8, at: offset)),
                        gid: Int(try number(block, 116, 8, at: offset)), userName: string(block, 265, 32),
                        groupName: string(block, 297, 32), linkName: string(block, 157, 100))
    }

    static func parsePax(_ data: [UInt8], at offset: Int64) throws(TarError) -> [String: String] {
        var records: [String: String] = [:]
        var index = 0
        while index < data.count {
            if data[index] == 0 { break } // trailing NULs some writers leave
            guard let space = data[index...].firstIndex(of: 0x20),
                  let length = Int(String(decoding: data[index..<space], as: UTF8.self)), length > space - index + 1,
                  index + length <= data.count, data[index + length - 1] == 0x0A else {
                throw TarError(.badPaxRecord, offset: offset, "malformed PAX record")
            }
            let record = data[(space + 1)..<(index + length - 1)]
            guard let equals = record.firstIndex(of: UInt8(ascii: "=")) else { throw TarError(.badPaxRecord, offset: offset, "PAX record without '='") }
            let key = String(decoding: record[record.startIndex..<equals], as: UTF8.self)
            records[key] = String(decoding: record[(equals + 1)...], as: UTF8.self)
            index += length
        }
        return records
    }

    private static func apply(_ records: [String: String], to entry: inout TarEntry, at offset: Int64) throws(TarError) {
        entry.paxRecords = records
        for (key, value) in records {
            switch key {
            case "path": entry.name = value
            case "linkpath": entry.linkName = value
            case "uname": entry.userName = value
            case "gname": entry.groupName = value
            case "size":
                guard let size = Int64(value), size >= 0 else { throw TarError(.badPaxRecord, offset: offset, "bad PAX size \(value)") }
                entry.size = size
            case "mtime":
                guard let mtime = Double(value) else { throw TarError(.badPaxRecord, offset: offset, "bad PAX mtime \(value)") }
                entry.mtime = mtime
            case "uid": if let uid = Int(value) { entry.uid = uid }
            case "gid": if let gid = Int(value) { entry.gid = gid }
            default: continue
            }
        }
    }
}

@available(*, unavailable)
extension TarReader: Sendable {}

extension TarReader {
    /// Finds `./backup.json` (or the `./snapshot.json` of very old backups) anywhere in a backup file and
    /// returns its bytes; nil when the archive has neither. Reads headers only, skipping member data.
    /// - Throws: ``TarError`` when the archive is damaged before the file is found.
    public static func backupJSON(in url: URL, limit: Int = 1 << 20) throws(TarError) -> [UInt8]? {
        let reader = try TarReader(url: url)
        var snapshot: [UInt8]?
        while let entry = try reader.next() {
            switch entry.normalizedName {
            case "backup.json" where entry.kind == .file: return try reader.readData(limit: limit)
            case "snapshot.json" where entry.kind == .file: snapshot = try reader.readData(limit: limit)
            default: continue
            }
        }
        return snapshot
    }
}

extension TarReader {
    /// Every member with its data, each read up to `dataLimit` bytes. For small archives and tests; large
    /// backups are read member by member with `next()` and `readChunk(maxBytes:)`.
    public func readAll(dataLimit: Int) throws(TarError) -> [(entry: TarEntry, data: [UInt8])] {
        var members: [(entry: TarEntry, data: [UInt8])] = []
        while let entry = try next() { members.append((entry, try readData(limit: dataLimit))) }
        return members
    }
}

// MARK: - Header decoding shared with push parsers

extension TarReader {
    /// One 512-byte header block, checksum verified: an extension whose data follows (PAX `x`/`g`, GNU
    /// `L`/`K`), or a member's own header. Lets ``TarStreamParser`` (bytes pushed to it, as when a backup
    /// streams from B2 or out of zlib) decode headers exactly as ``next()`` does.
    enum HeaderBlock {
        case extensionHeader(flag: UInt8, size: Int64)
        case member(TarEntry, flag: UInt8)
    }

    static func decodeHeaderBlock(_ block: [UInt8], at offset: Int64) throws(TarError) -> HeaderBlock {
        try verifyChecksum(block, at: offset)
        let flag = block[156]
        switch flag {
        case UInt8(ascii: "x"), UInt8(ascii: "g"), UInt8(ascii: "L"), UInt8(ascii: "K"):
            let size = try number(block, 124, 12, at: offset)
            guard size <= Int64(maxExtensionBytes) else { throw TarError(.badPaxRecord, offset: offset, "extension header of \(size) bytes") }
            return .extensionHeader(flag: flag, size: size)
        default:
            return .member(try entry(from: block, at: offset), flag: flag)
        }
    }

    /// Applies pending PAX records and GNU long names to a member header, as ``next()`` does.
    static func completeEntry(_ entry: inout TarEntry, flag: UInt8, records: [String: String], gnuName: String?, gnuLink: String?,
                              at offset: Int64) throws(TarError) {
        if let gnuName { entry.name = gnuName }
        if let gnuLink { entry.linkName = gnuLink }
        try apply(records, to: &entry, at: offset)
        if entry.kind == .file, entry.name.hasSuffix("/"), flag == 0 { entry.kind = .directory }
    }
}

extension TarEntry {
    /// Bytes of data that follow the header: links and directories carry none, whatever their size
    /// field says (POSIX).
    var storedDataSize: Int64 {
        switch kind {
        case .directory, .symbolicLink, .hardLink: 0
        default: size
        }
    }
}
