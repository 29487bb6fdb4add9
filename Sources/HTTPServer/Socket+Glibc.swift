#if canImport(Glibc)
import CLinux
import Glibc

/// Every Linux call the server makes, under fixed names, so the rest of the module has no libc details.
enum Sys {
    static func socket(_ family: Int32) -> Int32 { Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0) }
    static func setReuseAddress(_ fd: Int32) -> Int32 {
        var one: Int32 = 1
        return setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    }
    static func setNoDelay(_ fd: Int32) -> Int32 {
        var one: Int32 = 1
        return setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }
    static func bind(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 { Glibc.bind(fd, address, length) }
    static func listen(_ fd: Int32, _ backlog: Int32) -> Int32 { Glibc.listen(fd, backlog) }
    static func accept(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>, _ length: UnsafeMutablePointer<socklen_t>) -> Int32 {
        let client = Glibc.accept(fd, address, length)
        if client >= 0 {
            // accept4 is hidden behind _GNU_SOURCE; set the same two flags by hand.
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        }
        return client
    }
    static func getsockname(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>, _ length: UnsafeMutablePointer<socklen_t>) -> Int32 {
        Glibc.getsockname(fd, address, length)
    }
    static func recv(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int { Glibc.recv(fd, buffer, count, 0) }
    /// MSG_NOSIGNAL: a peer that went away gives EPIPE instead of killing the process with SIGPIPE.
    static func send(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { Glibc.send(fd, buffer, count, Int32(MSG_NOSIGNAL)) }
    static func shutdown(_ fd: Int32) { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    static func shutdownWrite(_ fd: Int32) { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    /// `Date` header value (RFC 9110 §5.6.7, IMF-fixdate).
    static func httpDate() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var text = [CChar](repeating: 0, count: 40)
        let length = strftime(&text, text.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: text[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    static func close(_ fd: Int32) { _ = Glibc.close(fd) }
    static var errno: Int32 { Glibc.errno }
    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }

    static func epollCreate() -> Int32 { epoll_create1(Int32(EPOLL_CLOEXEC)) }
    static func eventFD() -> Int32 { eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK)) }
    static func epollControl(_ epfd: Int32, _ op: Int32, _ fd: Int32, _ events: UInt32) -> Int32 {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        return epoll_ctl(epfd, op, fd, &event)
    }
    static func epollWait(_ epfd: Int32, _ events: UnsafeMutablePointer<epoll_event>, _ max: Int32, _ timeoutMS: Int32) -> Int32 {
        epoll_wait(epfd, events, max, timeoutMS)
    }
    static let epollIn = EPOLLIN.rawValue
    static let epollOut = EPOLLOUT.rawValue
    static let epollRDHup = EPOLLRDHUP.rawValue
    static let epollOneShot = EPOLLONESHOT.rawValue
    static let epollAdd = EPOLL_CTL_ADD
    static let epollMod = EPOLL_CTL_MOD
    static let epollDel = EPOLL_CTL_DEL

    static func signalEventFD(_ fd: Int32) {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }
    static func drainEventFD(_ fd: Int32) {
        var value: UInt64 = 0
        _ = read(fd, &value, 8)
    }

    /// Monotonic clock in nanoseconds, for deadlines.
    static func monotonicNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}
#endif
