/// Incremental decoder for `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1). Pure: no I/O.
public struct ChunkedDecoder: Sendable {
    enum State: Sendable, Equatable {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailer
        case done
    }

    /// Longest chunk-size line, extensions included (we ignore extensions but bound them).
    public static let maxSizeLineBytes = 4096

    private var state: State = .size
    private var line: [UInt8] = []
    private var trailerBytes = 0
    private var trailerCount = 0
    private let limits: HeadLimits

    public init(limits: HeadLimits = .init()) { self.limits = limits }

    public var isDone: Bool { state == .done }

    /// Consumes bytes and hands body data to `emit`.
    /// - Returns: how many bytes were consumed; fewer than given only once the body is complete
    ///   (the rest belongs to the next request on the connection).
    public mutating func decode(_ bytes: UnsafeBufferPointer<UInt8>, emit: (UnsafeBufferPointer<UInt8>) throws -> Void) throws -> Int {
        var index = 0
        while index < bytes.count {
            switch state {
            case .done:
                return index
            case .data(let remaining):
                let take = min(remaining, bytes.count - index)
                try emit(UnsafeBufferPointer(rebasing: bytes[index..<(index + take)]))
                index += take
                state = remaining == take ? .dataEnd : .data(remaining: remaining - take)
            case .size, .dataEnd, .trailer:
                let byte = bytes[index]
                index += 1
                if byte != 0x0A {
                    // After chunk data only CRLF may follow; fail at the first wrong byte, not at some later LF.
                    if state == .dataEnd, byte != 0x0D || !line.isEmpty {
                        throw HTTPParseError(.badRequest, "chunk data is not followed by CRLF")
                    }
                    line.append(byte)
                    if line.count > Self.maxSizeLineBytes {
                        throw state == .trailer
                            ? HTTPParseError(.requestHeaderFieldsTooLarge, "the chunked trailer section is too large")
                            : HTTPParseError(.badRequest, "a chunk-size line is too long")
                    }
                    continue
                }
                if line.last == 0x0D { line.removeLast() }
                defer { line.removeAll(keepingCapacity: true) }
                try endOfLine()
            }
        }
        return index
    }

    private mutating func endOfLine() throws(HTTPParseError) {
        switch state {
        case .dataEnd:
            guard line.isEmpty else { throw HTTPParseError(.badRequest, "chunk data is not followed by CRLF") }
            state = .size
        case .size:
            var size = 0
            var digits = 0
            for byte in line {
                if byte == UInt8(ascii: ";") || byte == 0x20 || byte == 0x09 { break } // chunk extensions are ignored
                guard let value = PercentDecoding.hexValue(byte) else { throw HTTPParseError(.badRequest, "a chunk size is not hexadecimal") }
                digits += 1
                guard digits <= 15 else { throw HTTPParseError(.contentTooLarge, "a chunk size is absurdly large") }
                size = size << 4 | Int(value)
            }
            guard digits > 0 else { throw HTTPParseError(.badRequest, "a chunk size is missing") }
            state = size == 0 ? .trailer : .data(remaining: size)
        case .trailer:
            if line.isEmpty { state = .done; return }
            trailerBytes += line.count
            trailerCount += 1
            guard trailerBytes <= limits.maxHeaderBytes, trailerCount <= limits.maxHeaderCount else {
                throw HTTPParseError(.requestHeaderFieldsTooLarge, "the chunked trailer section is too large")
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0,
                  line[..<colon].allSatisfy(RequestHeadParser.isTokenChar) else {
                throw HTTPParseError(.badRequest, "a trailer field is malformed")
            }
        case .data, .done:
            break
        }
    }
}
