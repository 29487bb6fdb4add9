/// Makes the simulator fail the ways B2 fails, so clients' retry and recovery paths can be tested.
///
/// Each rule has a remaining count and is used up as requests match it; ``clear()`` removes them all.
/// Operations are named as in B2's URLs (`"b2_upload_part"`, `"b2_list_file_versions"`) plus
/// `"b2_download_file_by_name"` and `"b2_download_file_by_id"`; `"*"` matches every operation.
/// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-integration-checklist
public actor FaultInjector {
    private struct Failure {
        let operation: String
        let error: B2Error
        var remaining: Int
    }

    private struct PartFailures {
        let every: Int
        let status: Int
        let code: String
        var remaining: Int
        var seen = 0
    }

    private struct Reset {
        let operation: String
        let afterBytes: Int
        var remaining: Int
    }

    private let state: SimulatorState
    private var failures: [Failure] = []
    private var partFailures: PartFailures?
    private var resets: [Reset] = []
    private var truncations: [(afterBytes: Int, remaining: Int)] = []
    private var corruptions = 0
    private var capped: Set<String> = []

    init(state: SimulatorState) { self.state = state }

    /// Every `n`th `b2_upload_part` call (counted from now) answers `status`/`code` without storing the
    /// part, as an overloaded pod does; a 5xx also retires that upload URL, as B2 expects clients to
    /// get a new one ("You can use this URL until it returns a 50X error").
    /// - Parameters:
    ///   - times: how many calls fail before the rule is used up.
    public func failUploadParts(every n: Int, status: Int = 503, code: String = "service_unavailable", times: Int = Int.max) {
        precondition(n > 0, "failUploadParts(every:) needs n > 0")
        partFailures = PartFailures(every: n, status: status, code: code, remaining: times)
    }

    /// The next `times` calls of `operation` answer `429 too_many_requests` with `Retry-After`.
    public func tooManyRequests(operation: String, retryAfterSeconds: Int = 1, times: Int = 1) {
        failures.append(Failure(operation: operation, error: B2Error(429, "too_many_requests", "Too many requests",
                                                                      headers: [("Retry-After", String(retryAfterSeconds))]), remaining: times))
    }

    /// The next `times` calls of `operation` answer this status and code, e.g. `500 internal_error`,
    /// `408 request_timeout` or `503 service_unavailable`; the error comes before authentication.
    /// Upload URLs that get a 5xx are retired.
    public func fail(operation: String, status: Int, code: String, message: String? = nil, times: Int = 1) {
        failures.append(Failure(operation: operation, error: B2Error(status, code, message ?? Self.defaultMessage(code)), remaining: times))
    }

    /// Every account token and upload token issued so far expires: API calls and downloads get
    /// `401 expired_auth_token`, and so do uploads. New authorizations work.
    public func expireAuthTokens() async {
        await state.expireAllTokens()
    }

    /// The next `times` calls of `operation` read `afterBytes` of the request body and then drop the
    /// connection without a response (a reset or broken pipe for the client).
    public func resetConnection(operation: String, afterBytes: Int, times: Int = 1) {
        resets.append(Reset(operation: operation, afterBytes: max(0, afterBytes), remaining: times))
    }

    /// The next `times` downloads send the full `Content-Length` header, then stop after `afterBytes`
    /// bytes of the body and cut the connection.
    public func truncateDownload(afterBytes: Int, times: Int = 1) {
        truncations.append((max(0, afterBytes), times))
    }

    /// The next `times` downloads have one byte of their body flipped (headers unchanged).
    public func corruptDownload(times: Int = 1) {
        corruptions += times
    }

    /// Every call of `operation` answers `403 cap_exceeded` until ``clear()``.
    public func capExceeded(operation: String) {
        capped.insert(operation)
    }

    /// Removes every rule.
    public func clear() {
        failures.removeAll()
        partFailures = nil
        resets.removeAll()
        truncations.removeAll()
        corruptions = 0
        capped.removeAll()
    }

    /// Rules not yet used up (a part-failure rule counts as one while it lasts).
    public var pendingRuleCount: Int {
        failures.count + resets.count + truncations.count + (corruptions > 0 ? 1 : 0) + capped.count + (partFailures == nil ? 0 : 1)
    }

    // MARK: Queried by the handlers

    private static func matches(_ pattern: String, _ operation: String) -> Bool { pattern == "*" || pattern == operation }

    /// The error a call must get before anything else happens (caps, rate limits, scripted failures).
    func admissionFailure(_ operation: String) -> B2Error? {
        if capped.contains(operation) || capped.contains("*") { return B2Error(403, "cap_exceeded", "Cap exceeded.") }
        guard let index = failures.firstIndex(where: { Self.matches($0.operation, operation) }) else { return nil }
        let error = failures[index].error
        failures[index].remaining -= 1
        if failures[index].remaining <= 0 { failures.remove(at: index) }
        return error
    }

    /// Counts a `b2_upload_part` call that passed authentication and says whether it must fail.
    func uploadPartFailure() -> B2Error? {
        guard var rule = partFailures else { return nil }
        rule.seen += 1
        var error: B2Error?
        if rule.seen % rule.every == 0 {
            error = B2Error(rule.status, rule.code, Self.defaultMessage(rule.code))
            rule.remaining -= 1
        }
        partFailures = rule.remaining > 0 ? rule : nil
        return error
    }

    /// After how many body bytes this call must drop its connection, if at all.
    func resetPoint(_ operation: String) -> Int? {
        guard let index = resets.firstIndex(where: { Self.matches($0.operation, operation) }) else { return nil }
        let bytes = resets[index].afterBytes
        resets[index].remaining -= 1
        if resets[index].remaining <= 0 { resets.remove(at: index) }
        return bytes
    }

    /// How this download must be damaged, if at all.
    func downloadDamage() -> (truncateAfter: Int?, corrupt: Bool) {
        var truncateAfter: Int?
        if !truncations.isEmpty {
            truncateAfter = truncations[0].afterBytes
            truncations[0].remaining -= 1
            if truncations[0].remaining <= 0 { truncations.removeFirst() }
        }
        let corrupt = corruptions > 0
        if corrupt { corruptions -= 1 }
        return (truncateAfter, corrupt)
    }

    /// B2's wording for the common codes.
    static func defaultMessage(_ code: String) -> String {
        switch code {
        case "service_unavailable": "no tomes available"
        case "internal_error": "internal error"
        case "request_timeout": "The service timed out reading the uploaded file"
        case "too_many_requests": "Too many requests"
        default: code.split(separator: "_").joined(separator: " ")
        }
    }
}
