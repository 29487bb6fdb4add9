import Glibc

/// A failed socket call: which call, and the errno it left.
public struct SocketError: Error, Sendable, Hashable, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public var description: String { "\(call) failed: \(Sys.describe(errno)) (errno \(errno))" }

    static func last(_ call: String) -> SocketError { SocketError(call: call, errno: Sys.errno) }
}

/// The result of a non-blocking call that did not fail.
enum IOResult<Value> {
    case value(Value)
    case wouldBlock
}

/// The one syscall helper: retries on EINTR, maps EAGAIN/EWOULDBLOCK to `.wouldBlock`, and
/// otherwise throws an error naming the call with the errno read right after it.
@inline(__always)
func syscall<T: BinaryInteger>(_ name: StaticString, _ body: () -> T) throws(SocketError) -> IOResult<T> {
    while true {
        let result = body()
        if result >= 0 { return .value(result) }
        let code = Sys.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK { return .wouldBlock }
        throw SocketError(call: "\(name)", errno: code)
    }
}

/// The address of the other end of a connection, as handlers see it.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    /// Numeric host: `172.30.32.2`, `::1`.
    public let host: String
    public let port: Int
    public init(host: String, port: Int) { self.host = host; self.port = port }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

enum SocketAddress {
    /// Builds a sockaddr for a numeric IPv4 or IPv6 host and calls `body` with it.
    static func withSockaddr<R>(host: String, port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t, Int32) throws(SocketError) -> R) throws(SocketError) -> R {
        if host.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw SocketError(call: "inet_pton(\(host))", errno: EINVAL) }
            return try withUnsafePointer(to: &address) { (pointer) throws(SocketError) -> R in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(SocketError) -> R in try body(sa, socklen_t(MemoryLayout<sockaddr_in6>.size), AF_INET6) }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw SocketError(call: "inet_pton(\(host))", errno: EINVAL) }
        return try withUnsafePointer(to: &address) { (pointer) throws(SocketError) -> R in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(SocketError) -> R in try body(sa, socklen_t(MemoryLayout<sockaddr_in>.size), AF_INET) }
        }
    }

    private static func string(_ text: [CChar]) -> String {
        String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func peer(_ storage: UnsafePointer<sockaddr_storage>) -> PeerAddress {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.pointee.ss_family) {
        case AF_INET:
            return storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                var addr = address.pointee.sin_addr
                inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
                return PeerAddress(host: string(text), port: Int(UInt16(bigEndian: address.pointee.sin_port)))
            }
        case AF_INET6:
            return storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                var addr = address.pointee.sin6_addr
                inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
                return PeerAddress(host: string(text), port: Int(UInt16(bigEndian: address.pointee.sin6_port)))
            }
        default:
            return PeerAddress(host: "unknown", port: 0)
        }
    }
}

/// A listening TCP socket. The server owns it and closes it once.
final class ListeningSocket: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init(host: String, port: Int, backlog: Int32 = 1024) throws(SocketError) {
        let (fd, boundPort) = try SocketAddress.withSockaddr(host: host, port: port) { (address, length, family) throws(SocketError) -> (Int32, Int) in
            let fd = Sys.socket(family)
            guard fd >= 0 else { throw SocketError.last("socket") }
            do throws(SocketError) {
                _ = Sys.setReuseAddress(fd)
                guard Sys.bind(fd, address, length) == 0 else { throw SocketError.last("bind(\(host):\(port))") }
                guard Sys.listen(fd, backlog) == 0 else { throw SocketError.last("listen") }
                var storage = sockaddr_storage()
                var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let named = withUnsafeMutablePointer(to: &storage) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Sys.getsockname(fd, $0, &size) }
                }
                guard named == 0 else { throw SocketError.last("getsockname") }
                return (fd, withUnsafePointer(to: &storage) { SocketAddress.peer($0).port })
            } catch {
                Sys.close(fd)
                throw error
            }
        }
        self.fd = fd
        self.port = boundPort
    }

    /// Accepts one pending connection, or returns `.wouldBlock` when none is waiting.
    func accept() throws(SocketError) -> IOResult<(Int32, PeerAddress)> {
        var storage = sockaddr_storage()
        var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = try syscall("accept4") {
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Sys.accept(fd, $0, &size) }
            }
        }
        switch result {
        case .wouldBlock: return .wouldBlock
        case .value(let client):
            _ = Sys.setNoDelay(client)
            return .value((client, withUnsafePointer(to: &storage) { SocketAddress.peer($0) }))
        }
    }
}
