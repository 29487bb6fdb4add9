import CCurl
import Foundation
import Logging

/// An outbound request. Bodies here are small (JSON); large uploads stream from files (B2 engine).
public struct HTTPClientRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]?
    /// Whole-transfer limit.
    public var timeout: Duration

    public init(method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, timeout: Duration = .seconds(60)) {
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
    public let body: [UInt8]

    public func header(_ name: String) -> String? {
        let key = name.lowercased()
        return headers.first { $0.name.lowercased() == key }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// What failed: connecting, TLS, a timeout, an oversized response. The URL is shown without its query,
/// which may carry tokens.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case setup, connect, tls, timedOut, responseTooLarge, transfer
    }
    public let kind: Kind
    public let message: String
    public let url: String

    public var description: String { url.isEmpty ? message : "\(message) (\(url))" }
}

/// Sends HTTP(S) requests with libcurl. Each transfer gets its own easy handle on its own thread, so a
/// slow server never blocks Swift's cooperative threads.
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
        let result: Result<HTTPClientResponse, HTTPClientError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Result { () throws(HTTPClientError) -> HTTPClientResponse in
                    try Self.perform(request, configuration)
                })
            }
            thread.name = "http-client"
            thread.start()
        }
        let response = try result.get()
        logger.debug("http request", metadata: ["http.method": "\(request.method)", "http.url": "\(Self.redacted(request.url))", "http.status": "\(response.status)"])
        return response
    }

    /// The URL without query or credentials, for messages and logs.
    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "(invalid URL)" }
        components.query = nil
        components.user = nil
        components.password = nil
        return components.string ?? "(invalid URL)"
    }

    /// Collects the response while libcurl runs; reached from the C callbacks through `Unmanaged`.
    private final class Accumulator {
        let limit: Int
        var body: [UInt8] = []
        var headers: [(name: String, value: String)] = []
        var overflowed = false
        init(limit: Int) { self.limit = limit }
    }

    private static func perform(_ request: HTTPClientRequest, _ configuration: Configuration) throws(HTTPClientError) -> HTTPClientResponse {
        let easy = try CurlEasy()
        let accumulator = Accumulator(limit: configuration.maxResponseBytes)
        let context = Unmanaged.passUnretained(accumulator).toOpaque() // `accumulator` outlives perform()
        try easy.set(CURLOPT_URL, string: request.url)
        try easy.set(CURLOPT_USERAGENT, string: configuration.userAgent)
        try easy.set(CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout.milliseconds))
        try easy.set(CURLOPT_TIMEOUT_MS, Int(request.timeout.milliseconds))
        try easy.set(CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedBytesPerSecond)
        try easy.set(CURLOPT_LOW_SPEED_TIME, max(1, Int(configuration.lowSpeedTime.milliseconds / 1000)))
        switch request.method {
        case "GET": try easy.set(CURLOPT_HTTPGET, 1)
        case "HEAD": try easy.set(CURLOPT_NOBODY, 1)
        default: try easy.set(CURLOPT_CUSTOMREQUEST, string: request.method)
        }
        var headers = request.headers
        if let body = request.body {
            try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(body.count))
            // COPYPOSTFIELDS copies the bytes, so the buffer only has to live for this call.
            var failure: HTTPClientError?
            body.withUnsafeBytes { raw in
                do throws(HTTPClientError) { try easy.set(CURLOPT_COPYPOSTFIELDS, pointer: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)) } catch { failure = error }
            }
            if let failure { throw failure }
            // curl waits a second for 100 Continue on larger bodies; our bodies here are small.
            headers.append(("Expect", ""))
        }
        try easy.setHeaders(headers)
        try easy.set(CURLOPT_WRITEDATA, pointer: context)
        try easy.set(CURLOPT_WRITEFUNCTION, callback: { data, size, count, context in
            guard let context, let data else { return 0 }
            let accumulator = Unmanaged<Accumulator>.fromOpaque(context).takeUnretainedValue()
            let length = size * count
            guard accumulator.body.count + length <= accumulator.limit else {
                accumulator.overflowed = true
                return 0 // aborts the transfer with CURLE_WRITE_ERROR
            }
            data.withMemoryRebound(to: UInt8.self, capacity: length) { accumulator.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length)) }
            return length
        })
        try easy.set(CURLOPT_HEADERDATA, pointer: context)
        try easy.set(CURLOPT_HEADERFUNCTION, callback: { data, size, count, context in
            guard let context, let data else { return 0 }
            let accumulator = Unmanaged<Accumulator>.fromOpaque(context).takeUnretainedValue()
            let length = size * count
            let line = data.withMemoryRebound(to: UInt8.self, capacity: length) { String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self) }
            if line.hasPrefix("HTTP/") {
                accumulator.headers.removeAll() // a new response (after 100 Continue or a redirect) starts
            } else if let colon = line.firstIndex(of: ":") {
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                accumulator.headers.append((String(line[..<colon]), value))
            }
            return length
        })
        let code = easy.perform()
        let url = redacted(request.url)
        guard code == CURLE_OK else {
            if accumulator.overflowed {
                throw HTTPClientError(kind: .responseTooLarge, message: "the response is larger than \(configuration.maxResponseBytes) bytes", url: url)
            }
            let detail = easy.errorDetail.isEmpty ? String(cString: curl_easy_strerror(code)) : easy.errorDetail
            throw HTTPClientError(kind: kind(of: code), message: "request failed: \(detail)", url: url)
        }
        return HTTPClientResponse(status: easy.responseCode(), headers: accumulator.headers, body: accumulator.body)
    }

    private static func kind(of code: CURLcode) -> HTTPClientError.Kind {
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: .connect
        case CURLE_OPERATION_TIMEDOUT: .timedOut
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE: .tls
        default: .transfer
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
