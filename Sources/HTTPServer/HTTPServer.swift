import Glibc
import Logging
import Synchronization

/// An HTTP/1.1 server on POSIX sockets: one epoll thread for readiness, one task per connection.
///
/// ```swift
/// var router = Router()
/// router.get("/health") { _ in .text("ok") }
/// let server = try HTTPServer(configuration: .init(port: 0), router: router, logger: logger)
/// try await server.run()          // returns after shutdown()
/// ```
public final class HTTPServer: Sendable {
    /// Limits and timeouts. Every one is explicit; the defaults suit a home server behind HA ingress.
    public struct Configuration: Sendable {
        /// Numeric address to bind: `0.0.0.0` (all IPv4), `::` or `127.0.0.1`.
        public var host: String
        /// 0 picks a free port; read it from ``HTTPServer/port``.
        public var port: Int
        public var headLimits: HeadLimits
        /// Body limit for routes that set none.
        public var defaultBodyLimit: Int
        /// Most open connections. When full, the longest-idle keep-alive connection is closed to make room;
        /// when none is idle, the newcomer gets 503.
        public var maxConnections: Int
        /// Time from a request's first byte (or from accept) to its complete head; then 408.
        public var headerTimeout: Duration
        /// Time a keep-alive connection may wait for its next request.
        public var idleTimeout: Duration
        /// Longest pause while a request body is arriving; then 408.
        public var bodyTimeout: Duration
        /// Longest pause while the client is not reading our response; then the connection is cut.
        public var writeTimeout: Duration
        /// On shutdown, how long in-flight requests may take before their connections are cut.
        public var shutdownGracePeriod: Duration

        public init(host: String = "0.0.0.0", port: Int = 8099, headLimits: HeadLimits = HeadLimits(),
                    defaultBodyLimit: Int = 1 << 20, maxConnections: Int = 512,
                    headerTimeout: Duration = .seconds(15), idleTimeout: Duration = .seconds(60),
                    bodyTimeout: Duration = .seconds(60), writeTimeout: Duration = .seconds(60),
                    shutdownGracePeriod: Duration = .seconds(10)) {
            self.host = host
            self.port = port
            self.headLimits = headLimits
            self.defaultBodyLimit = defaultBodyLimit
            self.maxConnections = maxConnections
            self.headerTimeout = headerTimeout
            self.idleTimeout = idleTimeout
            self.bodyTimeout = bodyTimeout
            self.writeTimeout = writeTimeout
            self.shutdownGracePeriod = shutdownGracePeriod
        }
    }

    public let configuration: Configuration
    let router: Router
    let logger: Logger
    let poller: Poller
    let registry: ConnectionRegistry
    private let listener: ListeningSocket
    private let started = Atomic<Bool>(false)
    private let stopRequested = Atomic<Bool>(false)
    private let refusals = RefusalCounter()

    /// The bound port (useful with port 0).
    public var port: Int { listener.port }

    /// Binds and listens right away, so the port is known (and connectable) before ``run()``.
    public init(configuration: Configuration = Configuration(), router: Router, logger: Logger) throws(SocketError) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.listener = try ListeningSocket(host: configuration.host, port: configuration.port)
        do {
            self.poller = try Poller()
        } catch {
            Sys.close(listener.fd)
            throw error
        }
        self.registry = ConnectionRegistry(capacity: configuration.maxConnections)
    }

    /// Accepts and serves connections until ``shutdown()``; returns once every connection has ended.
    public func run() async throws(SocketError) {
        precondition(!started.exchange(true, ordering: .relaxed), "HTTPServer.run() called twice")
        logger.info("HTTP server listening", metadata: ["http.host": "\(configuration.host)", "http.port": "\(port)"])
        defer {
            poller.stop()
            logger.info("HTTP server stopped")
        }
        var acceptError: SocketError?
        await withDiscardingTaskGroup { group in
            while !stopRequested.load(ordering: .acquiring) {
                do throws(SocketError) {
                    switch try listener.accept() {
                    case .value(let (fd, peer)):
                        admit(fd: fd, peer: peer, group: &group)
                    case .wouldBlock:
                        _ = await poller.wait(for: .read, listener.fd, deadline: nil)
                    }
                } catch {
                    if stopRequested.load(ordering: .acquiring) { break } // shutdown() woke accept
                    // Out of descriptors or memory: log, wait a moment, keep serving the open connections.
                    if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errno) {
                        logger.warning("accept failed, retrying", metadata: ["error": "\(error)"])
                        try? await Task.sleep(for: .milliseconds(100))
                        continue
                    }
                    if error.errno == ECONNABORTED || error.errno == EPROTO { continue }
                    acceptError = error
                    shutdown()
                }
            }
            poller.forget(listener.fd)
            Sys.close(listener.fd)
            await drain()
            group.cancelAll() // handlers still running after the grace period are cancelled
        }
        if let acceptError { throw acceptError }
    }

    private func admit(fd: Int32, peer: PeerAddress, group: inout DiscardingTaskGroup) {
        switch registry.admit(fd: fd) {
        case .admitted(let id):
            group.addTask {
                let connection = Connection(id: id, fd: fd, peer: peer, server: self)
                await connection.run()
            }
        case .full:
            // Best effort, non-blocking: the socket buffer of a fresh connection takes this small reply.
            let reply = ResponseEncoder.errorResponse(HTTPParseError(.serviceUnavailable, "too many connections"), retryAfter: 1)
            reply.withUnsafeBytes { _ = Sys.send(fd, $0.baseAddress!, $0.count) }
            Sys.close(fd)
            // One line per 10 s at most: a flood of refusals must not become a flood of log lines.
            if let refused = refusals.record() {
                logger.warning("connections refused: at the connection limit", metadata: [
                    "http.refused": "\(refused)", "http.last_peer": "\(peer)", "http.max_connections": "\(configuration.maxConnections)",
                ])
            }
        }
    }

    /// Starts a graceful shutdown: stop accepting, close idle connections, let in-flight requests finish
    /// (their responses carry `Connection: close`) for up to the grace period, then cut the rest.
    /// Safe to call from any thread, more than once.
    public func shutdown() {
        guard !stopRequested.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Sys.shutdown(listener.fd) // wakes the accept wait
    }

    private func drain() async {
        let idle = registry.beginDraining()
        logger.info("HTTP server shutting down", metadata: ["http.open_connections": "\(registry.count)", "http.closed_idle": "\(idle)"])
        let deadline = Sys.monotonicNanoseconds() + configuration.shutdownGracePeriod.nanoseconds
        // Check the registry until it empties or the grace period ends.
        while registry.count > 0, Sys.monotonicNanoseconds() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let cut = registry.cutAll()
        if cut > 0 { logger.warning("cut connections still busy after the grace period", metadata: ["http.connections": "\(cut)"]) }
    }

    deinit {
        // Created but never run: release the socket and the poller thread.
        if !started.load(ordering: .relaxed) {
            Sys.close(listener.fd)
            poller.stop()
        }
    }
}

/// Counts refused connections and says when to log them: the first at once, then at most every 10 s.
final class RefusalCounter: Sendable {
    private let state = Mutex<(count: Int, lastLog: UInt64?)>((0, nil))

    /// The number of refusals to report now, or nil to stay quiet.
    func record() -> Int? {
        state.withLock { state in
            state.count += 1
            let now = Sys.monotonicNanoseconds()
            if let last = state.lastLog, now - last < 10_000_000_000 { return nil }
            defer { state = (0, now) }
            return state.count
        }
    }
}

extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}

/// Who is connected and who is idle; makes room by evicting the longest-idle keep-alive connection.
final class ConnectionRegistry: Sendable {
    enum Admission { case admitted(UInt64), full }

    private struct Entry {
        let fd: Int32
        /// Set while the connection waits for the first byte of its next request.
        var idleSince: UInt64?
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextID: UInt64 = 0
        var draining = false
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { state.withLock { $0.entries.count } }
    var isDraining: Bool { state.withLock { $0.draining } }

    func admit(fd: Int32) -> Admission {
        state.withLock { state in
            if state.entries.count >= capacity {
                // Evict the connection idle the longest. shutdown() under the lock: its owner closes the fd
                // only after removing it here, so the descriptor cannot have been reused.
                guard let victim = state.entries.filter({ $0.value.idleSince != nil })
                    .min(by: { $0.value.idleSince! < $1.value.idleSince! }) else { return .full }
                Sys.shutdown(victim.value.fd)
                state.entries[victim.key] = nil
            }
            state.nextID += 1
            state.entries[state.nextID] = Entry(fd: fd, idleSince: Sys.monotonicNanoseconds())
            return .admitted(state.nextID)
        }
    }

    /// Marks a connection idle; false means the server is draining and the connection should close.
    func markIdle(_ id: UInt64) -> Bool {
        state.withLock { state in
            guard !state.draining, state.entries[id] != nil else { return false }
            state.entries[id]?.idleSince = Sys.monotonicNanoseconds()
            return true
        }
    }

    func markActive(_ id: UInt64) {
        state.withLock { $0.entries[id]?.idleSince = nil }
    }

    /// Removes a connection; its owner closes the descriptor afterwards.
    func remove(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Starts draining: idle connections are shut down now. Returns how many.
    func beginDraining() -> Int {
        state.withLock { state in
            state.draining = true
            let idle = state.entries.filter { $0.value.idleSince != nil }
            for (id, entry) in idle {
                Sys.shutdown(entry.fd)
                state.entries[id] = nil
            }
            return idle.count
        }
    }

    /// Shuts down every remaining connection. Returns how many.
    func cutAll() -> Int {
        state.withLock { state in
            for entry in state.entries.values { Sys.shutdown(entry.fd) }
            defer { state.entries.removeAll() }
            return state.entries.count
        }
    }
}
