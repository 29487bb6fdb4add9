/// Limits applied while a request head is parsed. Defaults follow common servers (nginx, Hummingbird).
public struct HeadLimits: Sendable, Hashable {
    /// Longest request line (method, target, version); a longer target is answered 414.
    public var maxRequestLineBytes: Int
    /// Largest header section, request line excluded; larger is answered 431.
    public var maxHeaderBytes: Int
    /// Most header fields; more is answered 431.
    public var maxHeaderCount: Int

    public init(maxRequestLineBytes: Int = 8 * 1024, maxHeaderBytes: Int = 64 * 1024, maxHeaderCount: Int = 100) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
    }
}

/// Parses a request head out of a byte buffer. Pure: no I/O, so it can be fuzzed and tested alone.
public enum RequestHeadParser {
    public enum Outcome: Sendable, Hashable {
        /// More bytes are needed; nothing is wrong so far.
        case incomplete
        /// A head was parsed from the first `consumed` bytes.
        case complete(HTTPRequestHead, consumed: Int)
    }

    /// Leading empty lines a server should skip before a request line (RFC 9112 §2.2); bounded.
    static let maxLeadingEmptyLines = 8

    /// Looks for a complete head at the start of `bytes`.
    /// - Throws: `HTTPParseError` with the status to answer; the connection must close afterwards.
    public static func parse(_ bytes: some RandomAccessCollection<UInt8>, limits: HeadLimits = .init()) throws(HTTPParseError) -> Outcome {
        let buffer = Array(bytes)
        return try buffer.withUnsafeBufferPointer { (raw) throws(HTTPParseError) -> Outcome in try parse(raw, limits: limits) }
    }

    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, limits: HeadLimits) throws(HTTPParseError) -> Outcome {
        var position = 0
        // RFC 9112 §2.2: ignore at least one empty line before the request line.
        var skipped = 0
        while position < bytes.count, bytes[position] == 0x0D || bytes[position] == 0x0A {
            if bytes[position] == 0x0A { skipped += 1 }
            guard skipped <= maxLeadingEmptyLines else { throw HTTPParseError(.badRequest, "too many empty lines before the request line") }
            position += 1
        }
        let lineStart = position
        guard let lineEnd = findLF(bytes, from: lineStart, limit: lineStart + limits.maxRequestLineBytes + 2) else {
            if bytes.count - lineStart > limits.maxRequestLineBytes + 1 {
                throw requestLineTooLong(bytes, from: lineStart, limits: limits)
            }
            return .incomplete
        }
        let requestLine = try line(bytes, lineStart, lineEnd)
        if requestLine.count > limits.maxRequestLineBytes { throw requestLineTooLong(bytes, from: lineStart, limits: limits) }

        // Find the end of the header section: an empty line.
        var headerLines: [Range<Int>] = []
        var cursor = lineEnd + 1
        let headerStart = cursor
        while true {
            guard let end = findLF(bytes, from: cursor, limit: headerStart + limits.maxHeaderBytes + 2) else {
                // +1: the final empty line's CR may already be here while its LF is not.
                if bytes.count - headerStart > limits.maxHeaderBytes + 1 { throw HTTPParseError(.requestHeaderFieldsTooLarge, "the header section is larger than \(limits.maxHeaderBytes) bytes") }
                return .incomplete
            }
            let fieldLine = try line(bytes, cursor, end)
            cursor = end + 1
            if fieldLine.isEmpty { break }
            if cursor - headerStart > limits.maxHeaderBytes { throw HTTPParseError(.requestHeaderFieldsTooLarge, "the header section is larger than \(limits.maxHeaderBytes) bytes") }
            headerLines.append(fieldLine)
            if headerLines.count > limits.maxHeaderCount { throw HTTPParseError(.requestHeaderFieldsTooLarge, "more than \(limits.maxHeaderCount) header fields") }
        }

        var head = try parseRequestLine(bytes, requestLine)
        for range in headerLines { try parseField(bytes, range, into: &head.headers) }
        try applyFraming(&head)
        return .complete(head, consumed: cursor)
    }

    // MARK: Lines

    private static func findLF(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, limit: Int) -> Int? {
        var index = start
        let end = min(bytes.count, limit)
        while index < end {
            if bytes[index] == 0x0A { return index }
            index += 1
        }
        return nil
    }

    /// The line's content without its CRLF (or bare LF, which RFC 9112 §2.2 lets a recipient accept).
    private static func line(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ lfIndex: Int) throws(HTTPParseError) -> Range<Int> {
        var end = lfIndex
        if end > start, bytes[end - 1] == 0x0D { end -= 1 }
        // RFC 9112 §2.2: a bare CR elsewhere is invalid.
        for index in start..<end where bytes[index] == 0x0D {
            throw HTTPParseError(.badRequest, "bare CR in the request head")
        }
        return start..<end
    }

    private static func requestLineTooLong(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, limits: HeadLimits) -> HTTPParseError {
        // A known method followed by a space means the target is what is too long (RFC 9112 §3: 414).
        var index = start
        while index < bytes.count, index - start <= 16, isTokenChar(bytes[index]) { index += 1 }
        if index < bytes.count, bytes[index] == 0x20,
           HTTPMethod(rawValue: String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)) != nil {
            return HTTPParseError(.uriTooLong, "the request line is longer than \(limits.maxRequestLineBytes) bytes")
        }
        return HTTPParseError(.badRequest, "the request line is longer than \(limits.maxRequestLineBytes) bytes and malformed")
    }

    // MARK: Request line (RFC 9112 §3)

    private static func parseRequestLine(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) throws(HTTPParseError) -> HTTPRequestHead {
        var spaces: [Int] = []
        for index in range where bytes[index] == 0x20 {
            spaces.append(index)
            if spaces.count > 2 { break }
        }
        guard spaces.count == 2 else { throw HTTPParseError(.badRequest, "the request line is not 'method target version'") }
        let methodRange = range.lowerBound..<spaces[0]
        let targetRange = (spaces[0] + 1)..<spaces[1]
        let versionRange = (spaces[1] + 1)..<range.upperBound
        guard !methodRange.isEmpty, methodRange.allSatisfy({ isTokenChar(bytes[$0]) }) else {
            throw HTTPParseError(.badRequest, "the method is not a token")
        }
        let versionText = string(bytes, versionRange)
        let version: HTTPVersion
        switch versionText {
        case "HTTP/1.1": version = .http11
        case "HTTP/1.0": version = .http10
        default:
            let shape = versionText.utf8.count == 8 && versionText.hasPrefix("HTTP/")
                && versionText.utf8.enumerated().allSatisfy { offset, byte in
                    offset < 5 || (offset == 6 ? byte == UInt8(ascii: ".") : (byte >= 0x30 && byte <= 0x39))
                }
            if shape { throw HTTPParseError(.httpVersionNotSupported, "\(versionText) is not supported; use HTTP/1.1") }
            throw HTTPParseError(.badRequest, "the HTTP version is malformed")
        }
        let methodText = string(bytes, methodRange)
        guard let method = HTTPMethod(rawValue: methodText) else {
            throw HTTPParseError(.notImplemented, "the method \(methodText.prefix(32)) is not implemented")
        }
        guard !targetRange.isEmpty else { throw HTTPParseError(.badRequest, "the request target is empty") }
        for index in targetRange {
            let byte = bytes[index]
            // Visible ASCII only: controls, space, DEL and raw non-ASCII bytes are not allowed in a target.
            guard byte > 0x20, byte < 0x7F else { throw HTTPParseError(.badRequest, "the request target has an invalid byte") }
        }
        let target = string(bytes, targetRange)
        let (path, query) = try splitTarget(target, method: method)
        return HTTPRequestHead(method: method, target: target, path: path, query: query, version: version,
                               headers: HTTPHeaders(), framing: .none, keepAlive: version == .http11, expectsContinue: false)
    }

    /// Origin-form, absolute-form and asterisk-form (RFC 9112 §3.2); returns the decoded path and raw query.
    private static func splitTarget(_ target: String, method: HTTPMethod) throws(HTTPParseError) -> (String, String) {
        if target == "*" {
            guard method == .options else { throw HTTPParseError(.badRequest, "'*' is only valid with OPTIONS") }
            return ("*", "")
        }
        var rest = Substring(target)
        if !rest.hasPrefix("/") {
            let lower = rest.prefix(8).lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                throw HTTPParseError(.badRequest, "the request target must start with '/'")
            }
            rest = rest[rest.index(rest.startIndex, offsetBy: lower.hasPrefix("http://") ? 7 : 8)...]
            guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return ("/", "") }
            rest = rest[slash...]
            if rest.hasPrefix("?") { rest = "/" + rest }
        }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let pathPart: Substring
        let queryPart: Substring
        if let mark = rest.firstIndex(of: "?") {
            pathPart = rest[..<mark]
            queryPart = rest[rest.index(after: mark)...]
        } else {
            pathPart = rest
            queryPart = ""
        }
        guard let decoded = PercentDecoding.decode(pathPart) else {
            throw HTTPParseError(.badRequest, "the request path has an invalid percent-encoding")
        }
        guard !decoded.contains("\0") else { throw HTTPParseError(.badRequest, "the request path contains NUL") }
        return (decoded, String(queryPart))
    }

    // MARK: Header fields (RFC 9112 §5)

    private static func parseField(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into headers: inout HTTPHeaders) throws(HTTPParseError) {
        guard let first = range.first else { return }
        // RFC 9112 §5.2: obsolete line folding is rejected with 400.
        if bytes[first] == 0x20 || bytes[first] == 0x09 { throw HTTPParseError(.badRequest, "obsolete line folding in a header field") }
        var colon = first
        while colon < range.upperBound, bytes[colon] != UInt8(ascii: ":") {
            // RFC 9112 §5.1: no whitespace between the field name and the colon; names are tokens.
            guard isTokenChar(bytes[colon]) else { throw HTTPParseError(.badRequest, "a header field name is malformed") }
            colon += 1
        }
        guard colon < range.upperBound, colon > first else { throw HTTPParseError(.badRequest, "a header field has no name or no colon") }
        for index in (colon + 1)..<range.upperBound {
            let byte = bytes[index]
            // RFC 9110 §5.5: field values must not contain NUL, CR, LF or other controls (HTAB allowed).
            if (byte < 0x20 && byte != 0x09) || byte == 0x7F { throw HTTPParseError(.badRequest, "a header field value has a control character") }
        }
        let name = string(bytes, first..<colon)
        let value = Substring(string(bytes, (colon + 1)..<range.upperBound)).trimmingHTTPWhitespace()
        headers.add(name, value)
    }

    // MARK: Message framing (RFC 9112 §6, §9.3)

    private static func applyFraming(_ head: inout HTTPRequestHead) throws(HTTPParseError) {
        let headers = head.headers
        // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host field.
        let hosts = headers.values("Host")
        if head.version == .http11, hosts.count != 1 { throw HTTPParseError(.badRequest, hosts.isEmpty ? "the Host header is missing" : "more than one Host header") }
        if hosts.count > 1 { throw HTTPParseError(.badRequest, "more than one Host header") }

        let transferCodings = headers.tokens("Transfer-Encoding")
        let lengthValues = headers.values("Content-Length")
        if headers.contains("Transfer-Encoding") {
            // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
            guard head.version == .http11 else { throw HTTPParseError(.badRequest, "Transfer-Encoding is not allowed in HTTP/1.0") }
            // RFC 9112 §6.3: both fields may be a smuggling attempt; we refuse rather than guess.
            guard lengthValues.isEmpty else { throw HTTPParseError(.badRequest, "both Transfer-Encoding and Content-Length are present") }
            // RFC 9112 §6.3: chunked must be the final coding, else the length cannot be determined: 400.
            guard transferCodings.last == "chunked" else { throw HTTPParseError(.badRequest, "chunked is not the final transfer coding") }
            guard transferCodings.filter({ $0 == "chunked" }).count == 1 else { throw HTTPParseError(.badRequest, "chunked is applied more than once") }
            // RFC 9112 §6.1: other codings are not understood here: 501.
            guard transferCodings.count == 1 else { throw HTTPParseError(.notImplemented, "transfer coding \(transferCodings[0]) is not implemented") }
            head.framing = .chunked
        } else if !lengthValues.isEmpty {
            // RFC 9112 §6.3 / RFC 9110 §8.6: a list of identical values may be accepted; anything else is invalid.
            var length: Int?
            for element in lengthValues.flatMap({ $0.split(separator: ",", omittingEmptySubsequences: false) }) {
                let text = element.trimmingHTTPWhitespace()
                guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    throw HTTPParseError(.badRequest, "Content-Length is not a number")
                }
                // Digits beyond what Int holds are a valid but absurd length: it will exceed any limit (413).
                let value = text.utf8.count > 18 ? Int.max : Int(text)!
                if let length, length != value { throw HTTPParseError(.badRequest, "conflicting Content-Length values") }
                length = value
            }
            head.framing = length == 0 ? .none : .length(length!)
        }
        // Neither header: RFC 9112 §6.3 (7) says a request's body is then empty (`curl -X POST` sends this).

        let connection = headers.tokens("Connection")
        if connection.contains("close") {
            head.keepAlive = false
        } else if head.version == .http10 {
            head.keepAlive = connection.contains("keep-alive")
        }
        if let expect = headers["Expect"] {
            guard expect.lowercased() == "100-continue" else { throw HTTPParseError(.expectationFailed, "only 'Expect: 100-continue' is supported") }
            head.expectsContinue = head.version == .http11
        }
    }

    // MARK: Helpers

    /// `tchar` of RFC 9110 §5.6.2.
    static func isTokenChar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func string(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}

/// Percent-decoding of URL components (RFC 3986 §2.1).
public enum PercentDecoding {
    /// Decodes `%XX` escapes; nil for a malformed escape or bytes that are not UTF-8.
    public static func decode(_ text: some StringProtocol, plusAsSpace: Bool = false) -> String? {
        // Bytes, not Characters: "%" followed by a combining mark is one Character that is not "%".
        guard text.utf8.contains(UInt8(ascii: "%")) || (plusAsSpace && text.utf8.contains(UInt8(ascii: "+"))) else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            } else if plusAsSpace && byte == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Parses `a=1&b=two` into pairs, in order; malformed pairs are kept raw rather than dropped.
    public static func queryItems(_ query: String) -> [(name: String, value: String)] {
        query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = decode(parts[0], plusAsSpace: true) ?? String(parts[0])
            let value = parts.count > 1 ? (decode(parts[1], plusAsSpace: true) ?? String(parts[1])) : ""
            return (name, value)
        }
    }
}
