// libFuzzer target for the HTTP/1.1 request parser: RequestHeadParser, ChunkedDecoder, PercentDecoding.
// Compiled in one module with Sources/HTTPServer/{HTTPTypes,RequestHeadParser,ChunkedDecoder}.swift by fuzz/run.sh.
//
// Each input is treated as the bytes a client sent on one connection and parsed under three sets of limits
// (tiny, small, default): head → body (Content-Length or chunked) → next pipelined head, up to 4 requests.
// Every assertion below is an invariant that must hold for every input; a failure is a parser bug.
//
// Bugs this target found, all fixed; their checks stay as regressions and are fatal:
//   K1  a proper prefix of a complete head is refused with 431 (header-section limit check, off by one
//       for the terminating CR), so the outcome depends on how the bytes were segmented.
//   K2  header tokens and trimming use Character (grapheme, Unicode case-mapping) semantics, not bytes:
//       "chun\u{212A}ed" (KELVIN SIGN) counts as "chunked"; a combining mark glues onto ' ' or ','.
//   K3  PercentDecoding.decode's fast path tests `contains("%")` per Character: "%\u{301}" is returned
//       unchanged instead of nil. Not reachable from the parser (targets are ASCII), only from direct calls.

#if canImport(Glibc)
import Glibc
#endif

private let limitSets: [HeadLimits] = [
    HeadLimits(maxRequestLineBytes: 32, maxHeaderBytes: 64, maxHeaderCount: 3),     // reaches every limit with short inputs
    HeadLimits(maxRequestLineBytes: 256, maxHeaderBytes: 1024, maxHeaderCount: 20),
    HeadLimits(),
]
/// Statuses a refused head may get (the parser does not throw 413 today; it is allowed for a length limit).
private let headStatuses: Set<Int> = [400, 411, 413, 414, 417, 431, 501, 505]
/// Statuses the chunked decoder may throw.
private let chunkStatuses: Set<Int> = [400, 413, 431]


/// `precondition` that also prints its message in -O builds (where precondition traps silently).
private func check(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError(message(), file: file, line: line) }
}

/// A regression of a bug this target found earlier (K1-K3): fatal, with the input in hex.
private func known(_ id: String, _ what: String, _ input: UnsafeBufferPointer<UInt8>) {
    let hex = input.prefix(512).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    check(false, "regression \(id): \(what); input \(hex)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    // Seeds the chunk split; the length is mixed in because the first byte is almost always a method letter.
    let seed = (size == 0 ? 0 : data[0]) ^ UInt8(truncatingIfNeeded: size)

    var tighter: RequestHeadParser.Outcome?
    for limits in limitSets {
        let first = parseStream(input, limits: limits, seed: seed)
        // Limits only refuse: a head complete under tighter limits is identical under looser ones.
        if case .complete = tighter { check(first == tighter, "looser limits changed a complete head") }
        tighter = first
    }
    checkPercentDecoding(String(decoding: input.prefix(256), as: UTF8.self), plusAsSpace: seed & 1 == 1, input)
    return 0
}

// MARK: Connection stream

/// Parses heads and bodies back to back like a connection does; returns the first head's outcome (nil: thrown).
private func parseStream(_ input: UnsafeBufferPointer<UInt8>, limits: HeadLimits, seed: UInt8) -> RequestHeadParser.Outcome? {
    var offset = 0
    var first: RequestHeadParser.Outcome?
    for round in 0..<4 {
        let bytes = UnsafeBufferPointer(rebasing: input[offset...])
        let outcome: RequestHeadParser.Outcome
        do {
            outcome = try RequestHeadParser.parse(bytes, limits: limits)
        } catch {
            check(headStatuses.contains(error.status.code), "head parser threw \(error)")
            if round == 0 { _ = checkChunked(bytes, limits: limits, seed: seed) }   // the decoder also gets raw input
            return first
        }
        if round == 0 { first = outcome }
        guard case .complete(let head, let consumed) = outcome else {
            if round == 0 { _ = checkChunked(bytes, limits: limits, seed: seed) }
            return first
        }
        checkHead(head, consumed: consumed, bytes: bytes, limits: limits, seed: seed, input: input)

        let rest = UnsafeBufferPointer(rebasing: bytes[consumed...])
        let chunked = checkChunked(rest, limits: limits, seed: seed)   // run on every remainder, whatever the framing
        switch head.framing {
        case .none: offset += consumed
        case .length(let length):
            guard length <= rest.count else { return first }
            offset += consumed + length
        case .chunked:
            guard let used = chunked else { return first }
            offset += consumed + used
        }
        if offset == input.count { return first }
    }
    return first
}

// MARK: Request head

private func checkHead(_ head: HTTPRequestHead, consumed: Int, bytes: UnsafeBufferPointer<UInt8>, limits: HeadLimits,
                       seed: UInt8, input: UnsafeBufferPointer<UInt8>) {
    // The head ends at the LF of its empty line, inside the buffer.
    check(consumed > 0 && consumed <= bytes.count && bytes[consumed - 1] == 0x0A, "consumed \(consumed) of \(bytes.count)")

    // Bytes after the head cannot change it: the head alone parses to the same result.
    let headBytes = UnsafeBufferPointer(rebasing: bytes[..<consumed])
    check((try? RequestHeadParser.parse(headBytes, limits: limits)) == .complete(head, consumed: consumed),
          "the head parses differently without the bytes that follow it")

    // Incremental parsing: a proper prefix holds no empty line yet, so it cannot be complete; and it cannot
    // be over a limit the whole head is within: its complete lines are the whole head's lines (same bare-CR,
    // count and size checks), and the request-line check without an LF allows max + 1 (room for a CR).
    // The header-section check without an LF allows only max, but a head within limits may have max bytes
    // of fields plus its final CRLF: a prefix ending on that CR throws 431 (K1, RequestHeadParser.swift:61).
    var lineEnd = 0
    while bytes[lineEnd] == 0x0D || bytes[lineEnd] == 0x0A { lineEnd += 1 }
    while bytes[lineEnd] != 0x0A { lineEnd += 1 }
    let headerStart = lineEnd + 1
    for length in [consumed - 1, consumed - 2, Int(seed) * consumed / 256] where length >= 0 && length < consumed {
        do {
            let outcome = try RequestHeadParser.parse(UnsafeBufferPointer(rebasing: bytes[..<length]), limits: limits)
            check(outcome == .incomplete, "a \(length)-byte prefix of a \(consumed)-byte head is complete")
        } catch {
            if error.status.code == 431, length - headerStart == limits.maxHeaderBytes + 1, bytes[length - 1] == 0x0D {
                known("K1", "a \(length)-byte prefix ending in the head's final CR throws 431, the whole head parses", input)
            } else {
                fatalError("a \(length)-byte prefix of a \(consumed)-byte head throws \(error)")
            }
        }
    }

    // Target: visible ASCII (checked by the parser); path starts with '/' (bytes: a decoded path may start
    // with "/" + combining mark) or is '*' for OPTIONS; percent-decoding never yields NUL (refused); the
    // query is the raw text between '?' and '#'.
    check(!head.target.isEmpty && head.target.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "target \(head.target)")
    if head.path == "*" {
        check(head.method == .options && head.target == "*" && head.query.isEmpty, "'*' target")
    } else {
        check(head.path.utf8.first == UInt8(ascii: "/"), "path \(head.path) does not start with '/'")
    }
    check(!head.path.utf8.contains(0), "path contains NUL")
    check(head.query.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }, "query \(head.query)")
    checkQuery(head.query, input)

    // Fields: within limits, names are tokens, values hold no controls but HTAB and are trimmed of SP/HTAB.
    check(head.headers.count <= limits.maxHeaderCount, "\(head.headers.count) fields")
    for field in head.headers {
        check(!field.name.isEmpty && field.name.utf8.allSatisfy(RequestHeadParser.isTokenChar), "field name \(field.name)")
        let value = Array(field.value.utf8)
        check(!value.contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }, "control byte in \(field.name)")
        if let first = value.first, let last = value.last, isWhitespace(first) || isWhitespace(last) {
            requireASCIIAgreement(value, "\(field.name) value keeps surrounding whitespace", input)
        }
    }

    // RFC 9112 §3.2: HTTP/1.1 has exactly one Host; HTTP/1.0 at most one.
    let hosts = head.headers.values("Host").count
    check(head.version == .http11 ? hosts == 1 : hosts <= 1, "\(hosts) Host fields")

    // Framing (RFC 9112 §6): chunked only alone in HTTP/1.1 without Content-Length; a length is a positive
    // value all Content-Length elements agree on; no framing means no body (or Content-Length 0).
    let lengths = head.headers.values("Content-Length")
    let codings = head.headers.tokens("Transfer-Encoding")
    switch head.framing {
    case .chunked:
        check(head.version == .http11 && lengths.isEmpty && codings == ["chunked"], "chunked framing")
    case .length(let length):
        check(length > 0 && !head.headers.contains("Transfer-Encoding"), "length \(length)")
        check(contentLengths(lengths) == [length], "Content-Length \(lengths) framed as \(length)")
    case .none:
        check(!head.headers.contains("Transfer-Encoding"), "Transfer-Encoding without framing")
        check(lengths.isEmpty ? !head.method.requiresBodyLength : contentLengths(lengths) == [0], "no framing")
    }
    checkTokens(head.headers, "Transfer-Encoding", input)

    // Persistence (RFC 9112 §9.3): close wins; else HTTP/1.1 persists and HTTP/1.0 only with keep-alive.
    let connection = head.headers.tokens("Connection")
    let expected = !connection.contains("close") && (head.version == .http11 || connection.contains("keep-alive"))
    check(head.keepAlive == expected, "keepAlive \(head.keepAlive) for Connection \(connection)")
    checkTokens(head.headers, "Connection", input)

    // Expect: only 100-continue gets through, and it is only honoured in HTTP/1.1.
    if let expect = head.headers["Expect"] {
        check(expect.lowercased() == "100-continue", "Expect \(expect) accepted")
        if asciiLowercased(Array(expect.utf8)) != Array("100-continue".utf8) {
            requireASCIIAgreement(Array(expect.utf8), "Expect \(expect) accepted as 100-continue", input)
        }
    }
    check(head.expectsContinue == (head.version == .http11 && head.headers["Expect"] != nil), "expectsContinue")
}

/// The distinct values of Content-Length elements, decoded byte by byte (more than 18 digits: Int.max).
private func contentLengths(_ values: [String]) -> Set<Int> {
    Set(values.flatMap { $0.utf8.split(separator: 0x2C, omittingEmptySubsequences: false) }.map { element in
        let digits = trimmed(Array(element))
        check(!digits.isEmpty && digits.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }, "Content-Length element not a number")
        return digits.count > 18 ? Int.max : digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    })
}

/// The parser decides framing and persistence on `HTTPHeaders.tokens`; those decisions must match a byte-level
/// reading (split on ',', trim SP/HTAB, ASCII lower-case), since tokens are ASCII (RFC 9110 §5.6.2).
/// Other non-ASCII lower-casing differences are irrelevant and not compared.
private func checkTokens(_ headers: HTTPHeaders, _ name: String, _ input: UnsafeBufferPointer<UInt8>) {
    let values = headers.values(name)
    let bytewise = values.flatMap { $0.utf8.split(separator: 0x2C) }.map { asciiLowercased(trimmed(Array($0))) }.filter { !$0.isEmpty }
    let tokens = headers.tokens(name)
    let agree = ["chunked", "close", "keep-alive"].allSatisfy { word in
        tokens.filter { $0 == word }.count == bytewise.filter { $0.elementsEqual(word.utf8) }.count
    } && (tokens.last == "chunked") == (bytewise.last?.elementsEqual("chunked".utf8) ?? false)
      && (name != "Transfer-Encoding" || tokens.count == bytewise.count)   // more than one coding is refused
    if !agree {
        requireASCIIAgreement(values.flatMap(\.utf8), "\(name) tokens \(tokens) decide differently from the bytes", input)
    }
}

/// Character and byte semantics agree on ASCII, so a divergence on ASCII is a bug; on non-ASCII it is K2.
private func requireASCIIAgreement(_ bytes: [UInt8], _ what: String, _ input: UnsafeBufferPointer<UInt8>) {
    check(!bytes.allSatisfy { $0 < 0x80 }, what)
    known("K2", what, input)
}

// MARK: Chunked body

/// Decodes `bytes` whole and in pieces (sizes from `seed`) and requires identical results: the decoder is a
/// byte-at-a-time state machine, so where a buffer ends must not matter. Returns the bytes consumed once done.
private func checkChunked(_ bytes: UnsafeBufferPointer<UInt8>, limits: HeadLimits, seed: UInt8) -> Int? {
    guard !bytes.isEmpty else { return nil }
    let whole = decodeChunked(bytes, limits: limits) { $0 }
    var random = UInt32(seed) &* 0x9E37_79B9 | 1
    let maxPiece = seed % 4 == 0 ? 1 : Int(seed % 61) + 2
    let pieces = decodeChunked(bytes, limits: limits) { remaining in
        random = random &* 1_103_515_245 &+ 12345
        return min(remaining, 1 + Int(random >> 16) % maxPiece)
    }
    check(whole == pieces, "chunked decoding depends on the split: \(whole) vs \(pieces)")
    return whole.done ? whole.consumed : nil
}

private struct ChunkedResult: Equatable {
    var body: [UInt8] = []
    var consumed = 0
    var done = false
    var error: HTTPParseError?
}

private func decodeChunked(_ bytes: UnsafeBufferPointer<UInt8>, limits: HeadLimits, piece: (Int) -> Int) -> ChunkedResult {
    var decoder = ChunkedDecoder(limits: limits)
    var result = ChunkedResult()
    do {
        while result.consumed < bytes.count, !decoder.isDone {
            let length = piece(bytes.count - result.consumed)
            let used = try decoder.decode(UnsafeBufferPointer(rebasing: bytes[result.consumed..<(result.consumed + length)])) {
                result.body.append(contentsOf: $0)
            }
            // It consumes everything it is given until the body ends; the rest belongs to the next request.
            check(used >= 0 && used <= length && (used == length || decoder.isDone), "decode used \(used) of \(length)")
            result.consumed += used
        }
    } catch let error as HTTPParseError {
        check(chunkStatuses.contains(error.status.code) && !decoder.isDone, "chunked decoder threw \(error)")
        result.error = error
        result.consumed = -1   // where it failed inside the piece is not reported
    } catch {
        fatalError("chunked decoder threw a foreign error \(error)")
    }
    result.done = decoder.isDone
    // Body bytes come out of the input: never more than consumed (minus at least "0\n\n" once done).
    check(result.consumed < 0 || result.body.count <= result.consumed - (result.done ? 3 : 0), "body larger than input")
    if decoder.isDone {
        let more = try? decoder.decode(bytes) { _ in fatalError("a finished decoder emitted data") }
        check(more == 0, "a finished decoder consumed \(String(describing: more)) bytes")
    }
    return result
}

// MARK: Percent-decoding

/// queryItems on an (ASCII) query must match a byte-level reading: split on '&' (skip empty), then '='.
private func checkQuery(_ query: String, _ input: UnsafeBufferPointer<UInt8>) {
    let items = PercentDecoding.queryItems(query)
    let expected = query.utf8.split(separator: UInt8(ascii: "&")).map { pair in
        let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
        let name = referenceDecode(parts[0], plusAsSpace: true) ?? Array(parts[0])
        let value = parts.count > 1 ? referenceDecode(parts[1], plusAsSpace: true) ?? Array(parts[1]) : []
        return (name, value)
    }
    check(items.count == expected.count, "\(items.count) query items, expected \(expected.count)")
    for (item, want) in zip(items, expected) {
        check(Array(item.name.utf8) == want.0 && Array(item.value.utf8) == want.1, "query item \(item)")
    }
    for part in query.split(separator: "&") { checkPercentDecoding(String(part), plusAsSpace: false, input) }
}

/// PercentDecoding.decode against a byte-level reference (RFC 3986 §2.1: '%' HEXDIG HEXDIG, result UTF-8).
private func checkPercentDecoding(_ text: String, plusAsSpace: Bool, _ input: UnsafeBufferPointer<UInt8>) {
    let decoded = PercentDecoding.decode(text, plusAsSpace: plusAsSpace).map { Array($0.utf8) }
    let expected = referenceDecode(text.utf8, plusAsSpace: plusAsSpace)
    guard decoded != expected else { return }
    // Returned unchanged although it holds '%' (or '+'): the Character-level fast path was taken.
    let special = text.utf8.contains(0x25) || (plusAsSpace && text.utf8.contains(0x2B))
    check(decoded == Array(text.utf8) && special, "decode(\(text)) = \(String(describing: decoded)), expected \(String(describing: expected))")
    known("K3", "PercentDecoding.decode returned \(text.debugDescription) unchanged", input)
}

private func referenceDecode(_ bytes: some Sequence<UInt8>, plusAsSpace: Bool) -> [UInt8]? {
    var output: [UInt8] = []
    var iterator = bytes.makeIterator()
    while let byte = iterator.next() {
        if byte == 0x25 {
            guard let high = iterator.next().flatMap(hexDigit), let low = iterator.next().flatMap(hexDigit) else { return nil }
            output.append(high << 4 | low)
        } else {
            output.append(plusAsSpace && byte == 0x2B ? 0x20 : byte)
        }
    }
    return String(validating: output, as: UTF8.self) == nil ? nil : output
}

// MARK: Byte helpers

private func hexDigit(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x41...0x46: byte - 0x41 + 10
    case 0x61...0x66: byte - 0x61 + 10
    default: nil
    }
}

private func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

private func trimmed(_ bytes: [UInt8]) -> [UInt8] {
    guard let start = bytes.firstIndex(where: { !isWhitespace($0) }), let end = bytes.lastIndex(where: { !isWhitespace($0) }) else { return [] }
    return Array(bytes[start...end])
}

private func asciiLowercased(_ bytes: [UInt8]) -> [UInt8] { bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 } }
