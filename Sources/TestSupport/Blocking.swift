import Foundation

/// Runs blocking work (waiting for a child process, reading its pipe) on a thread of its own.
/// Blocking a cooperative thread instead can starve the in-process simulators the child is talking to:
/// the pool has as many threads as cores, two on small machines.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = "test-blocking"
        thread.start()
    }
}

extension Process {
    /// Waits for the process to end without holding a cooperative thread; returns its exit status.
    @discardableResult
    public func exited() async -> Int32 {
        let process = self
        return (try? await onOwnThread { process.waitUntilExit(); return process.terminationStatus }) ?? -1
    }
}
