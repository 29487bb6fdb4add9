import CCurl
import Foundation
import Glibc
import Hashing
import Logging
import Synchronization

/// A request body read from a file range while it is sent: memory stays at libcurl's buffer size
/// whatever the range's length.
public struct FileRange: Sendable, Hashable {
    public var path: String
    public var offset: Int64
    public var length: Int64
    /// Hash the range while sending and append its SHA-1 as 40 hex digits (B2's `hex_digits_at_end`).
    public var appendSHA1Hex: Bool
    /// Bytes sent before and after the range, e.g. the boundaries of a multipart/form-data body.
    public var prefix: [UInt8]
    public var suffix: [UInt8]

    public init(path: String, offset: Int64 = 0, length: Int64, appendSHA1Hex: Bool = false, prefix: [UInt8] = [], suffix: [UInt8] = []) {
        self.path = path
        self.offset = offset
        self.length = length
        self.appendSHA1Hex = appendSHA1Hex
        self.prefix = prefix
        self.suffix = suffix
    }

    /// Bytes on the wire: prefix, the range, the 40-digit trailer when asked for, suffix.
    public var wireLength: Int64 { Int64(prefix.count) + length + (appendSHA1Hex ? 40 : 0) + Int64(suffix.count) }
}

/// Where a successful (2xx) response body goes when it should not be held in memory.
public struct ResponseFile: Sendable, Hashable {
    public var path: String
    /// Byte position to write at: 0 for a new download, the current size to resume after a `Range` request.
    public var offset: Int64
    public init(path: String, offset: Int64 = 0) {
        self.path = path
        self.offset = offset
    }
}

/// Transfer progress: bytes sent and received so far in this request.
public struct TransferProgress: Sendable, Hashable {
    public var uploaded: Int64
    public var downloaded: Int64
}

/// An outbound request.
public struct HTTPClientRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    /// A small in-memory body (JSON).
    public var body: [UInt8]?
    /// A body streamed from disk; takes precedence over `body`.
    public var bodyFile: FileRange?
    /// Stream a 2xx response body to this file instead of memory.
    public var responseFile: ResponseFile?
    /// Whole-transfer limit; nil for none (large transfers rely on the low-speed limit instead).
    public var timeout: Duration?
    /// Upload rate cap for this request (`CURLOPT_MAX_SEND_SPEED_LARGE`).
    public var maxSendBytesPerSecond: Int64?
    /// Called as bytes move; return false to abort the transfer (then `HTTPClientError.Kind.aborted`).
    public var progress: (@Sendable (TransferProgress) -> Bool)?

    public init(method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, timeout: Duration? = .seconds(60)) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

public struct HTTPClientResponse: Sendable {
    public let status: Int
    /// Headers of the final response, in order, names as sent.
    public let headers: [(name: String, value: String)]
    /// The body when it was kept in memory (always for non-2xx answers, which are small error documents).
    public let body: [UInt8]
    /// Bytes written to `responseFile`.
    public let bytesWritten: Int64
    /// With `FileRange.appendSHA1Hex`: the SHA-1 that was appended (of the range as read from disk).
    public let sentSHA1: String?

    public func header(_ name: String) -> String? {
        let key = name.lowercased()
        return headers.first { $0.name.lowercased() == key }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// What failed: connecting, TLS, a timeout, a stall, a broken connection, a local file. The URL is shown
/// without its query, which may carry tokens.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case setup, connect, tls, timedOut, responseTooLarge, transfer, localFile, aborted
    }
    public let kind: Kind
    public let message: String
    public let url: String

    public var description: String { url.isEmpty ? message : "\(message) (\(url))" }
}

/// Sends HTTP(S) requests with libcurl. Each transfer gets its own easy handle on its own thread, so a
/// slow server never blocks Swift's cooperative threads. Proxy variables (`https_proxy`, `no_proxy`, …)
/// are honoured by libcurl itself.
public final class HTTPClient: Sendable {
    public struct Configuration: Sendable {
        public var connectTimeout: Duration
        /// Abort when fewer than `lowSpeedBytesPerSecond` flow for `lowSpeedTime`.
        public var lowSpeedBytesPerSecond: Int
        public var lowSpeedTime: Duration
        /// Largest response body kept in memory.
        public var maxResponseBytes: Int
        public var userAgent: String

        public init(connectTimeout: Duration = .seconds(30), lowSpeedBytesPerSecond: Int = 1, lowSpeedTime: Duration = .seconds(60),
                    maxResponseBytes: Int = 64 << 20, userAgent: String = "b2-backup") {
            self.connectTimeout = connectTimeout
            self.lowSpeedBytesPerSecond = lowSpeedBytesPerSecond
            self.lowSpeedTime = lowSpeedTime
            self.maxResponseBytes = maxResponseBytes
            self.userAgent = userAgent
        }
    }

    public let configuration: Configuration
    private let logger: Logger

    public init(configuration: Configuration = Configuration(), logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func send(_ request: HTTPClientRequest) async throws(HTTPClientError) -> HTTPClientResponse {
        let configuration = configuration
        // Cancelling the calling task aborts the transfer at libcurl's next progress callback (at least once a second).
        let cancelled = CancellationFlag()
        let result: Result<HTTPClientResponse, HTTPClientError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let thread = Thread {
                    continuation.resume(returning: Result { () throws(HTTPClientError) -> HTTPClientResponse in
                        try Transfer(request: request, configuration: configuration, cancelled: cancelled).perform()
                    })
                }
                thread.name = "http-client"
                thread.start()
            }
        } onCancel: {
            cancelled.set()
        }
        let response = try result.get()
        logger.debug("http request", metadata: ["http.method": "\(request.method)", "http.url": "\(Self.redacted(request.url))", "http.status": "\(response.status)"])
        return response
    }

    /// The URL without query or credentials, for messages and logs.
    public static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "(invalid URL)" }
        components.query = nil
        components.user = nil
        components.password = nil
        return components.string ?? "(invalid URL)"
    }
}

/// Set from any thread when the request's task is cancelled; read by the transfer's progress callback.
final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

/// One transfer: the easy handle, the open files and the state the C callbacks reach through `Unmanaged`.
/// Lives on the transfer's thread only.
private final class Transfer {
    let request: HTTPClientRequest
    let configuration: HTTPClient.Configuration
    let url: String

    // Response side.
    var status = 0
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    var overflowed = false
    var outputFD: Int32 = -1
    var written: Int64 = 0
    var localError: String?

    // Request side (file body).
    var inputFD: Int32 = -1
    var sent: Int64 = 0
    var digest: StreamingDigest?
    var trailer: [UInt8] = []
    var trailerSent = 0
    var sentSHA1: String?
    var aborted = false
    let cancelled: CancellationFlag

    init(request: HTTPClientRequest, configuration: HTTPClient.Configuration, cancelled: CancellationFlag) {
        self.request = request
        self.configuration = configuration
        self.cancelled = cancelled
        self.url = HTTPClient.redacted(request.url)
    }

    deinit {
        if inputFD >= 0 { close(inputFD) }
        if outputFD >= 0 { close(outputFD) }
    }

    func perform() throws(HTTPClientError) -> HTTPClientResponse {
        let easy = try CurlEasy()
        let context = Unmanaged.passUnretained(self).toOpaque() // `self` outlives perform()
        try easy.set(CURLOPT_URL, string: request.url)
        try easy.set(CURLOPT_USERAGENT, string: configuration.userAgent)
        try easy.set(CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout.milliseconds))
        if let timeout = request.timeout { try easy.set(CURLOPT_TIMEOUT_MS, Int(timeout.milliseconds)) }
        try easy.set(CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedBytesPerSecond)
        try easy.set(CURLOPT_LOW_SPEED_TIME, max(1, Int(configuration.lowSpeedTime.milliseconds / 1000)))
        if let cap = request.maxSendBytesPerSecond, cap > 0 { try easy.set(CURLOPT_MAX_SEND_SPEED_LARGE, offset: cap) }
        switch request.method {
        case "GET": try easy.set(CURLOPT_HTTPGET, 1)
        case "HEAD": try easy.set(CURLOPT_NOBODY, 1)
        case "POST": try easy.set(CURLOPT_POST, 1)
        default: try easy.set(CURLOPT_CUSTOMREQUEST, string: request.method)
        }
        var headers = request.headers
        if let range = request.bodyFile {
            try openInput(range)
            try easy.set(CURLOPT_POST, 1)
            if request.method != "POST" { try easy.set(CURLOPT_CUSTOMREQUEST, string: request.method) }
            try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: range.wireLength)
            try easy.set(CURLOPT_UPLOAD_BUFFERSIZE, 256 * 1024) // per connection: bounds memory, still few callbacks
            try easy.set(CURLOPT_READDATA, pointer: context)
            try easy.set(CURLOPT_READFUNCTION, callback: { buffer, size, count, context in
                guard let context, let buffer else { return Int(CURL_READFUNC_ABORT) }
                return Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().read(into: buffer, capacity: size * count)
            })
            try easy.set(CURLOPT_SEEKDATA, pointer: context)
            try easy.setSeek { context, offset, origin in
                guard let context, origin == SEEK_SET else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
                return Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().rewind(to: Int64(offset)) ? Int32(CURL_SEEKFUNC_OK) : Int32(CURL_SEEKFUNC_CANTSEEK)
            }
            headers.append(("Expect", "")) // no 100-continue round trip; B2 does not use it
        } else if let body = request.body {
            try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(body.count))
            // COPYPOSTFIELDS copies the bytes, so the buffer only has to live for this call.
            var failure: HTTPClientError?
            body.withUnsafeBytes { raw in
                do throws(HTTPClientError) { try easy.set(CURLOPT_COPYPOSTFIELDS, pointer: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)) } catch { failure = error }
            }
            if let failure { throw failure }
            headers.append(("Expect", ""))
        }
        try easy.setHeaders(headers)
        if let file = request.responseFile { try openOutput(file) }
        try easy.set(CURLOPT_WRITEDATA, pointer: context)
        try easy.set(CURLOPT_WRITEFUNCTION, callback: { data, size, count, context in
            guard let context, let data else { return 0 }
            return Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().write(data, size * count)
        })
        try easy.set(CURLOPT_HEADERDATA, pointer: context)
        try easy.set(CURLOPT_HEADERFUNCTION, callback: { data, size, count, context in
            guard let context, let data else { return 0 }
            Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().header(data, size * count)
            return size * count
        })
        do {
            try easy.set(CURLOPT_NOPROGRESS, 0)
            try easy.set(CURLOPT_XFERINFODATA, pointer: context)
            try easy.setProgress { context, _, downloaded, _, uploaded in
                guard let context else { return 0 }
                return Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().progress(uploaded: Int64(uploaded), downloaded: Int64(downloaded)) ? 0 : 1
            }
        }

        let code = easy.perform()
        guard code == CURLE_OK else {
            if let localError { throw HTTPClientError(kind: .localFile, message: localError, url: url) }
            if overflowed { throw HTTPClientError(kind: .responseTooLarge, message: "the response is larger than \(configuration.maxResponseBytes) bytes", url: url) }
            if aborted || code == CURLE_ABORTED_BY_CALLBACK { throw HTTPClientError(kind: .aborted, message: "the transfer was cancelled", url: url) }
            let detail = easy.errorDetail.isEmpty ? String(cString: curl_easy_strerror(code)) : easy.errorDetail
            throw HTTPClientError(kind: Self.kind(of: code), message: "request failed: \(detail)", url: url)
        }
        if let range = request.bodyFile, sent != range.wireLength {
            throw HTTPClientError(kind: .localFile, message: "sent \(sent) of \(range.wireLength) bytes of \(range.path)", url: url)
        }
        return HTTPClientResponse(status: easy.responseCode(), headers: self.headers, body: body, bytesWritten: written, sentSHA1: sentSHA1)
    }

    // MARK: Request body

    private func openInput(_ range: FileRange) throws(HTTPClientError) {
        inputFD = open(range.path, O_RDONLY | O_CLOEXEC)
        guard inputFD >= 0 else {
            throw HTTPClientError(kind: .localFile, message: "cannot open \(range.path): \(String(cString: strerror(errno)))", url: url)
        }
        _ = rewind(to: 0)
    }

    /// Back to a position of the wire body (libcurl asks when it must resend, e.g. on a reused connection).
    func rewind(to position: Int64) -> Bool {
        guard let range = request.bodyFile, position == 0 else { return false } // only full restarts are needed
        sent = 0
        trailerSent = 0
        trailer = []
        sentSHA1 = nil
        digest = range.appendSHA1Hex ? StreamingDigest(.sha1) : nil
        return true
    }

    /// Fills libcurl's buffer from, in order: the prefix, the file range (hashed when asked), the SHA-1
    /// trailer, the suffix. `sent` counts wire bytes, so the position in each segment follows from it.
    func read(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
        guard let range = request.bodyFile else { return 0 }
        let prefixLength = Int64(range.prefix.count)
        if sent < prefixLength {
            return copy(range.prefix, from: Int(sent), into: buffer, capacity: capacity)
        }
        let fileDone = sent - prefixLength
        if fileDone < range.length {
            let want = Int(min(Int64(capacity), range.length - fileDone))
            let count = pread(inputFD, buffer, want, off_t(range.offset + fileDone))
            if count < 0 {
                localError = "cannot read \(range.path): \(String(cString: strerror(errno)))"
                return Int(CURL_READFUNC_ABORT)
            }
            if count == 0 {
                localError = "\(range.path) is shorter than expected (ended at byte \(range.offset + fileDone))"
                return Int(CURL_READFUNC_ABORT)
            }
            digest?.update(UnsafeRawBufferPointer(start: buffer, count: count))
            sent += Int64(count)
            return count
        }
        if range.appendSHA1Hex, trailerSent < 40 {
            if trailer.isEmpty, let digest {
                let hex = digest.hexDigest()
                sentSHA1 = hex
                trailer = Array(hex.utf8)
                self.digest = nil
            }
            let count = copy(trailer, from: trailerSent, into: buffer, capacity: capacity)
            trailerSent += count
            return count
        }
        let suffixDone = Int(sent - prefixLength - range.length - (range.appendSHA1Hex ? 40 : 0))
        return copy(range.suffix, from: suffixDone, into: buffer, capacity: capacity)
    }

    /// Copies part of an in-memory segment into libcurl's buffer and counts it as sent.
    private func copy(_ segment: [UInt8], from start: Int, into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
        let count = min(capacity, segment.count - start)
        guard count > 0 else { return 0 }
        segment.withUnsafeBytes { raw in
            UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress! + start, byteCount: count)
        }
        sent += Int64(count)
        return count
    }

    // MARK: Response

    private func openOutput(_ file: ResponseFile) throws(HTTPClientError) {
        outputFD = open(file.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard outputFD >= 0 else {
            throw HTTPClientError(kind: .localFile, message: "cannot open \(file.path) for writing: \(String(cString: strerror(errno)))", url: url)
        }
    }

    func header(_ data: UnsafeMutablePointer<CChar>, _ length: Int) {
        let line = data.withMemoryRebound(to: UInt8.self, capacity: length) { String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self) }
        if line.hasPrefix("HTTP/") {
            headers.removeAll() // a new response (after 100 Continue or a redirect) starts
            let parts = line.split(separator: " ")
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        } else if let colon = line.firstIndex(of: ":") {
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            headers.append((String(line[..<colon]), value))
        }
    }

    func write(_ data: UnsafeMutablePointer<CChar>, _ length: Int) -> Int {
        if let file = request.responseFile, (200..<300).contains(status) {
            var done = 0
            while done < length {
                let count = pwrite(outputFD, data + done, length - done, off_t(file.offset + written))
                if count < 0 {
                    if errno == EINTR { continue }
                    localError = "cannot write \(file.path): \(String(cString: strerror(errno)))"
                    return 0
                }
                done += count
                written += Int64(count)
            }
            return length
        }
        guard body.count + length <= configuration.maxResponseBytes else {
            overflowed = true
            return 0 // aborts the transfer with CURLE_WRITE_ERROR
        }
        data.withMemoryRebound(to: UInt8.self, capacity: length) { body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length)) }
        return length
    }

    func progress(uploaded: Int64, downloaded: Int64) -> Bool {
        if cancelled.isSet {
            aborted = true
            return false
        }
        guard let progress = request.progress else { return true }
        let keepGoing = progress(TransferProgress(uploaded: uploaded, downloaded: downloaded))
        if !keepGoing { aborted = true }
        return keepGoing
    }

    static func kind(of code: CURLcode) -> HTTPClientError.Kind {
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: .connect
        case CURLE_OPERATION_TIMEDOUT: .timedOut
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE: .tls
        default: .transfer
        }
    }
}

@available(*, unavailable)
extension Transfer: Sendable {}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
