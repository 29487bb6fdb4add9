/// How often and how long to retry transient failures: exponential backoff with full jitter and a cap,
/// or exactly what `Retry-After` says.
public struct RetryPolicy: Sendable, Hashable {
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 8, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(64)) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    func delay(afterAttempt attempt: Int, retryAfter: Int?) -> Duration {
        if let retryAfter { return .seconds(retryAfter) } // B2 says when; sooner would only be refused again
        let exponent = min(attempt - 1, 20)
        let ceiling = min(maxDelay, baseDelay * (1 << exponent))
        let nanoseconds = Double(ceiling.components.seconds) * 1e9 + Double(ceiling.components.attoseconds) / 1e9
        return .nanoseconds(Int64(Double.random(in: 0...1) * nanoseconds))
    }
}
