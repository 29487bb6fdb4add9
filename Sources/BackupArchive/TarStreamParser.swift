/// A tar parser that is pushed bytes instead of pulling them: the verifier gets a backup as async reads
/// (a file, or ranges streamed from B2) and inner archives as zlib output, neither of which fits
/// ``TarReader``'s synchronous pull. Headers are decoded by the same code as ``TarReader``; memory is
/// one header or extension (≤ 1 MiB), whatever the member sizes.
///
/// Quick reads that jump over member data use ``skipData()`` instead of pushing the bytes.
struct TarStreamParser {
    enum Event {
        /// A member's header (PAX and GNU extensions applied); its data follows as `.data` events.
        case member(TarEntry)
        case data(ArraySlice<UInt8>)
        /// All of the member's data was seen.
        case memberEnd
        /// The two zero blocks that end an archive.
        case end
    }

    private enum State {
        case header
        case extensionData(flag: UInt8, size: Int64, padded: Int, at: Int64)
        case data(remaining: Int64, padding: Int64)
        case padding(Int64)
        case secondZeroBlock
        case done
    }

    private var state = State.header
    /// A header or extension being collected across pushes.
    private var pending: [UInt8] = []
    private var records: [String: String] = [:]
    private var globalRecords: [String: String] = [:]
    private var gnuName: String?
    private var gnuLink: String?
    private var headerStart: Int64?
    /// Bytes consumed so far (pushed or skipped).
    private(set) var offset: Int64 = 0
    /// The member whose data is being read, for messages.
    private(set) var current: TarEntry?
    private(set) var sawEndOfArchive = false
    /// Non-zero bytes seen after the end-of-archive blocks (writers pad with zeros).
    private(set) var nonZeroTrailingBytes: Int64 = 0

    /// Bytes the parser needs before it can say more: the rest of a header or extension, or of the
    /// current member's data and padding. 0 once the archive ended.
    var bytesWanted: Int64 {
        switch state {
        case .header, .secondZeroBlock: Int64(512 - pending.count)
        case .extensionData(_, _, let padded, _): Int64(padded - pending.count)
        case .data(let remaining, let padding): remaining + padding
        case .padding(let count): count
        case .done: 0
        }
    }

    /// Data bytes of the current member not yet seen (0 outside member data).
    var dataRemaining: Int64 {
        if case .data(let remaining, _) = state { remaining } else { 0 }
    }

    var isDone: Bool { if case .done = state { true } else { false } }

    /// Parses `bytes`, reporting what they hold to `handle` in order.
    mutating func push(_ bytes: ArraySlice<UInt8>, _ handle: (Event) throws -> Void) throws {
        var input = bytes
        while !input.isEmpty {
            switch state {
            case .header, .secondZeroBlock:
                guard let block = collect(&input, upTo: 512) else { continue }
                if case .secondZeroBlock = state {
                    guard block.allSatisfy({ $0 == 0 }) else {
                        throw TarError(.badHeader, offset: offset - 1024, "a single zero block in the middle of the archive")
                    }
                    sawEndOfArchive = true
                    state = .done
                    try handle(.end)
                } else {
                    try header(block, at: offset - 512, handle)
                }
            case .extensionData(let flag, let size, let padded, let at):
                guard let data = collect(&input, upTo: padded) else { continue }
                state = .header
                let body = Array(data.prefix(Int(size)))
                switch flag {
                case UInt8(ascii: "x"): records.merge(try TarReader.parsePax(body, at: at)) { $1 }
                case UInt8(ascii: "g"): globalRecords.merge(try TarReader.parsePax(body, at: at)) { $1 }
                case UInt8(ascii: "L"): gnuName = String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
                default: gnuLink = String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
                }
            case .data(let remaining, let padding):
                let take = Int(min(remaining, Int64(input.count)))
                let chunk = input.prefix(take)
                input = input.dropFirst(take)
                offset += Int64(take)
                state = .data(remaining: remaining - Int64(take), padding: padding)
                try handle(.data(chunk))
                if remaining == Int64(take) { try endMember(padding: padding, handle) }
            case .padding(let count):
                let take = Int(min(count, Int64(input.count)))
                input = input.dropFirst(take)
                offset += Int64(take)
                state = count == Int64(take) ? .header : .padding(count - Int64(take))
            case .done:
                nonZeroTrailingBytes += Int64(input.reduce(0) { $0 + ($1 == 0 ? 0 : 1) })
                offset += Int64(input.count)
                input = input.dropFirst(input.count)
            }
        }
    }

    /// Jumps over the rest of the current member's data and its padding without the bytes; returns how
    /// many bytes that is (the caller moves its read position by as much).
    mutating func skipData(_ handle: (Event) throws -> Void) throws -> Int64 {
        guard case .data(let remaining, let padding) = state else { return 0 }
        offset += remaining + padding
        state = .header
        current = nil
        try handle(.memberEnd)
        return remaining + padding
    }

    /// Call at the end of the input: throws ``TarError/Code/truncated`` unless the end-of-archive blocks were seen.
    func finish() throws(TarError) {
        switch state {
        case .done: return
        case .header where pending.isEmpty && headerStart == nil:
            throw TarError(.truncated, offset: offset, "the archive stops without its end-of-archive blocks")
        case .header, .extensionData:
            throw TarError(.truncated, offset: offset, "the archive ends inside a header")
        case .data(let remaining, _):
            let name = current?.name ?? "a member"
            let size = current?.size ?? remaining
            throw TarError(.truncated, offset: offset, "\(name) is cut short: \(size - remaining) of its \(size) bytes are present")
        case .padding:
            throw TarError(.truncated, offset: offset, "the archive ends inside the padding after \(current?.name ?? "a member")")
        case .secondZeroBlock:
            throw TarError(.truncated, offset: offset, "the archive ends after one of its two end-of-archive blocks")
        }
    }

    // MARK: Internals

    /// Appends from `input` to `pending` until it holds `count` bytes; then returns them and clears it.
    private mutating func collect(_ input: inout ArraySlice<UInt8>, upTo count: Int) -> [UInt8]? {
        let take = min(count - pending.count, input.count)
        pending += input.prefix(take)
        input = input.dropFirst(take)
        offset += Int64(take)
        guard pending.count == count else { return nil }
        defer { pending.removeAll(keepingCapacity: true) }
        return pending
    }

    private mutating func header(_ block: [UInt8], at blockOffset: Int64, _ handle: (Event) throws -> Void) throws {
        if block.allSatisfy({ $0 == 0 }) {
            guard headerStart == nil else { throw TarError(.badHeader, offset: blockOffset, "zero block after an extension header") }
            state = .secondZeroBlock
            return
        }
        if headerStart == nil { headerStart = blockOffset }
        switch try TarReader.decodeHeaderBlock(block, at: blockOffset) {
        case .extensionHeader(let flag, let size):
            state = .extensionData(flag: flag, size: size, padded: Int((size + 511) / 512 * 512), at: blockOffset)
            if size == 0 { state = .header }
        case .member(var entry, let flag):
            try TarReader.completeEntry(&entry, flag: flag, records: globalRecords.merging(records) { $1 }, gnuName: gnuName,
                                        gnuLink: gnuLink, at: blockOffset)
            entry.headerOffset = headerStart ?? blockOffset
            entry.dataOffset = offset
            records = [:]
            gnuName = nil
            gnuLink = nil
            headerStart = nil
            current = entry
            let size = entry.storedDataSize
            state = .data(remaining: size, padding: (512 - size % 512) % 512)
            try handle(.member(entry))
            if size == 0 { try endMember(padding: 0, handle) }
        }
    }

    private mutating func endMember(padding: Int64, _ handle: (Event) throws -> Void) throws {
        state = padding > 0 ? .padding(padding) : .header
        try handle(.memberEnd)
    }
}
