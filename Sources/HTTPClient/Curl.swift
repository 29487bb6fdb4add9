import CCurl

/// `curl_global_init` exactly once per process, before the first handle (libcurl requires it to be
/// called while no other thread uses libcurl; a lazily initialised static is run once, thread-safely).
enum CurlGlobal {
    static let initialised: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}

/// Owns one `CURL*` easy handle and the header list it uses. Confined to the thread running the transfer.
final class CurlEasy {
    let handle: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>?
    /// libcurl writes a readable error detail here during a failed transfer.
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    init() throws(HTTPClientError) {
        guard CurlGlobal.initialised, let handle = curl_easy_init() else {
            throw HTTPClientError(kind: .setup, message: "libcurl could not be initialised", url: "")
        }
        self.handle = handle
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        try set(CURLOPT_ERRORBUFFER, pointer: errorBuffer)
        // No signals: timeouts must not use SIGALRM in a multi-threaded process.
        try set(CURLOPT_NOSIGNAL, 1)
        // HTTP(S) only, also after redirects: a redirect must never lead to file://, ftp:// or others.
        // - SeeAlso: https://curl.se/libcurl/c/CURLOPT_PROTOCOLS_STR.html
        try set(CURLOPT_PROTOCOLS_STR, string: "http,https")
        try set(CURLOPT_REDIR_PROTOCOLS_STR, string: "http,https")
        try set(CURLOPT_FOLLOWLOCATION, 0)
        // TLS verification is always on; there is deliberately no switch to turn it off.
        try set(CURLOPT_SSL_VERIFYPEER, 1)
        try set(CURLOPT_SSL_VERIFYHOST, 2)
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headerList)
        errorBuffer.deallocate()
    }

    /// - SeeAlso: https://curl.se/libcurl/c/curl_easy_setopt.html
    func set(_ option: CURLoption, _ value: Int) throws(HTTPClientError) {
        try check(b2_curl_setopt_long(handle, option, value), "setopt \(option.rawValue)")
    }

    func set(_ option: CURLoption, offset value: Int64) throws(HTTPClientError) {
        try check(b2_curl_setopt_off(handle, option, curl_off_t(value)), "setopt \(option.rawValue)")
    }

    /// Strings are copied by libcurl (since 7.17), so the Swift string may go away afterwards.
    func set(_ option: CURLoption, string value: String) throws(HTTPClientError) {
        try check(value.withCString { b2_curl_setopt_ptr(handle, option, $0) }, "setopt \(option.rawValue)")
    }

    func set(_ option: CURLoption, pointer value: UnsafeRawPointer?) throws(HTTPClientError) {
        try check(b2_curl_setopt_ptr(handle, option, value), "setopt \(option.rawValue)")
    }

    func set(_ option: CURLoption, callback: @escaping @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int) throws(HTTPClientError) {
        try check(b2_curl_setopt_data_cb(handle, option, callback), "setopt \(option.rawValue)")
    }

    /// - SeeAlso: https://curl.se/libcurl/c/CURLOPT_XFERINFOFUNCTION.html
    func setProgress(_ callback: @escaping @convention(c) (UnsafeMutableRawPointer?, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> Int32) throws(HTTPClientError) {
        try check(b2_curl_setopt_xferinfo_cb(handle, callback), "setopt XFERINFOFUNCTION")
    }

    /// - SeeAlso: https://curl.se/libcurl/c/CURLOPT_SEEKFUNCTION.html
    func setSeek(_ callback: @escaping @convention(c) (UnsafeMutableRawPointer?, curl_off_t, Int32) -> Int32) throws(HTTPClientError) {
        try check(b2_curl_setopt_seek_cb(handle, callback), "setopt SEEKFUNCTION")
    }

    /// Sets request headers; the list is kept alive as long as the handle uses it.
    func setHeaders(_ headers: [(String, String)]) throws(HTTPClientError) {
        curl_slist_free_all(headerList)
        headerList = nil
        for (name, value) in headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        try set(CURLOPT_HTTPHEADER, pointer: headerList.map { UnsafeRawPointer($0) })
    }

    func perform() -> CURLcode { curl_easy_perform(handle) }

    func responseCode() -> Int {
        var code = 0
        _ = b2_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    var errorDetail: String { String(cString: errorBuffer) }

    private func check(_ code: CURLcode, _ what: String) throws(HTTPClientError) {
        guard code == CURLE_OK else {
            throw HTTPClientError(kind: .setup, message: "libcurl \(what): \(String(cString: curl_easy_strerror(code)))", url: "")
        }
    }
}

@available(*, unavailable)
extension CurlEasy: Sendable {}
