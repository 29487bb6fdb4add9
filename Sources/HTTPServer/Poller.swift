import CLinux
import Foundation
import Synchronization

/// One epoll instance and the thread that waits on it. Tasks suspend in ``wait(for:_:deadline:)`` until
/// their socket is ready, the deadline passes, or they are cancelled; no cooperative thread ever blocks.
final class Poller: Sendable {
    enum Interest { case read, write }
    enum Readiness: Sendable { case ready, timedOut, cancelled }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Readiness, Never>
        let deadline: UInt64?
    }

    private struct State {
        var waiters: [Int32: Waiter] = [:]
        var registered: Set<Int32> = []
        var nextID: UInt64 = 0
        var stopped = false
    }

    private let epfd: Int32
    private let wakeFD: Int32
    private let state = Mutex(State())
    /// How often deadlines are checked; also the latest a timeout fires after its deadline.
    private let tick: Int32 = 100

    init() throws(SocketError) {
        epfd = Sys.epollCreate()
        guard epfd >= 0 else { throw SocketError.last("epoll_create1") }
        wakeFD = Sys.eventFD()
        guard wakeFD >= 0 else {
            Sys.close(epfd)
            throw SocketError.last("eventfd")
        }
        guard Sys.epollControl(epfd, Sys.epollAdd, wakeFD, Sys.epollIn) == 0 else { throw SocketError.last("epoll_ctl(eventfd)") }
        let thread = Thread { [self] in self.loop() }
        thread.name = "http-poller"
        thread.start()
    }

    /// Stops the thread and resumes every waiter as cancelled. Call once, when the server is done.
    func stop() {
        let waiters = state.withLock { state -> [Waiter] in
            state.stopped = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.continuation.resume(returning: .cancelled) }
        Sys.signalEventFD(wakeFD)
    }

    /// Suspends until `fd` is ready for `interest`, `deadline` (monotonic ns) passes, or the task is cancelled.
    func wait(for interest: Interest, _ fd: Int32, deadline: UInt64?) async -> Readiness {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Readiness, Never>) in
                let events = (interest == .read ? Sys.epollIn | Sys.epollRDHup : Sys.epollOut) | Sys.epollOneShot
                let outcome: Readiness? = state.withLock { state in
                    if state.stopped || Task.isCancelled { return .cancelled }
                    precondition(state.waiters[fd] == nil, "two waiters on one socket")
                    state.waiters[fd] = Waiter(id: id, continuation: continuation, deadline: deadline)
                    let op = state.registered.contains(fd) ? Sys.epollMod : Sys.epollAdd
                    if Sys.epollControl(epfd, op, fd, events) != 0 {
                        state.waiters[fd] = nil
                        return .ready // let the caller's next I/O call surface the error
                    }
                    state.registered.insert(fd)
                    return nil
                }
                if let outcome { continuation.resume(returning: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let waiter = state.waiters[fd], waiter.id == id else { return nil }
                state.waiters[fd] = nil
                return waiter
            }
            waiter?.continuation.resume(returning: .cancelled)
        }
    }

    /// Removes `fd` from the epoll set; call before closing it so a reused descriptor starts clean.
    func forget(_ fd: Int32) {
        let waiter = state.withLock { state -> Waiter? in
            if state.registered.remove(fd) != nil { _ = Sys.epollControl(epfd, Sys.epollDel, fd, 0) }
            return state.waiters.removeValue(forKey: fd)
        }
        waiter?.continuation.resume(returning: .cancelled)
    }

    private func loop() {
        let capacity: Int32 = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(capacity))
        defer {
            events.deallocate()
            Sys.close(wakeFD)
            Sys.close(epfd)
        }
        var nextDeadlineCheck: UInt64 = 0
        while true {
            let count = Sys.epollWait(epfd, events, capacity, tick)
            if state.withLock({ $0.stopped }) { return }
            var ready: [Waiter] = []
            if count > 0 {
                state.withLock { state in
                    for index in 0..<Int(count) {
                        let fd = events[index].data.fd
                        if fd == wakeFD { continue }
                        if let waiter = state.waiters.removeValue(forKey: fd) { ready.append(waiter) }
                    }
                }
                for index in 0..<Int(count) where events[index].data.fd == wakeFD { Sys.drainEventFD(wakeFD) }
            }
            for waiter in ready { waiter.continuation.resume(returning: .ready) }

            let now = Sys.monotonicNanoseconds()
            if now >= nextDeadlineCheck {
                nextDeadlineCheck = now + UInt64(tick) * 1_000_000 / 2
                let expired = state.withLock { state -> [Waiter] in
                    var expired: [Waiter] = []
                    for (fd, waiter) in state.waiters {
                        if let deadline = waiter.deadline, deadline <= now {
                            expired.append(waiter)
                            state.waiters[fd] = nil
                        }
                    }
                    return expired
                }
                for waiter in expired { waiter.continuation.resume(returning: .timedOut) }
            }
        }
    }
}
