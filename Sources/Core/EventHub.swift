import Foundation

/// What the page hears about as it happens (`GET /api/events`).
public enum PipelineEvent: Sendable {
    /// A job started, moved bytes (about once a second) or ended.
    case job(Job)
    /// Something the status shows changed (a run ended, the next run was decided).
    case status
    /// Nothing happened for a while; the stream says it is alive (proxies drop silent connections).
    case keepAlive
}

/// Fans pipeline events out to every open event stream. A slow reader loses old progress events, never
/// the latest: each subscriber's buffer keeps the newest few.
public actor EventHub {
    private var subscribers: [UUID: AsyncStream<PipelineEvent>.Continuation] = [:]
    /// After `close()` new streams end at once: the add-on is shutting down.
    private var closed = false

    public init() {}

    public func subscribe() -> (id: UUID, events: AsyncStream<PipelineEvent>) {
        let id = UUID()
        let (stream, continuation) = AsyncStream<PipelineEvent>.makeStream(bufferingPolicy: .bufferingNewest(16))
        continuation.onTermination = { [weak self] _ in Task { await self?.unsubscribe(id) } }
        if closed { continuation.finish() } else { subscribers[id] = continuation }
        return (id, stream)
    }

    public func unsubscribe(_ id: UUID) {
        subscribers.removeValue(forKey: id)?.finish()
    }

    public func publish(_ event: PipelineEvent) {
        for continuation in subscribers.values { continuation.yield(event) }
    }

    public var subscriberCount: Int { subscribers.count }

    /// Ends every stream, so open event connections finish instead of holding up a graceful shutdown.
    public func close() {
        closed = true
        for continuation in subscribers.values { continuation.finish() }
        subscribers.removeAll()
    }

    public func ping(_ id: UUID) {
        subscribers[id]?.yield(.keepAlive)
    }
}
