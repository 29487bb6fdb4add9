/// A request handler: turns a request into a response.
public typealias HTTPHandler = @Sendable (HTTPRequest) async throws -> HTTPResponse

/// Routes by method and path pattern. Patterns are `/literal/:parameter/*rest`; `*name` takes the rest
/// of the path. The first route registered that matches wins; a path that matches only other methods
/// is answered 405 with `Allow`. `HEAD` is served by the `GET` route without the body.
public struct Router: Sendable {
    struct Route: Sendable {
        let method: HTTPMethod
        let segments: [Segment]
        let bodyLimit: Int?
        let handler: HTTPHandler
    }

    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
        case rest(String)
    }

    enum Resolution {
        case found(handler: HTTPHandler, parameters: [String: String], bodyLimit: Int?)
        case methodNotAllowed(allow: [HTTPMethod])
        case notFound
    }

    private var routes: [Route] = []

    public init() {}

    /// Adds a route.
    /// - Parameters:
    ///   - bodyLimit: the largest request body this route accepts; nil uses the server's default.
    public mutating func add(_ method: HTTPMethod, _ pattern: String, bodyLimit: Int? = nil, _ handler: @escaping HTTPHandler) {
        let segments = pattern.split(separator: "/", omittingEmptySubsequences: true).map { part -> Segment in
            if part.hasPrefix(":") { return .parameter(String(part.dropFirst())) }
            if part.hasPrefix("*") { return .rest(String(part.dropFirst())) }
            return .literal(String(part))
        }
        precondition(segments.dropLast().allSatisfy { if case .rest = $0 { false } else { true } }, "'*' must be the last segment of \(pattern)")
        routes.append(Route(method: method, segments: segments, bodyLimit: bodyLimit, handler: handler))
    }

    /// Every route as `(method, path)`, parameters written OpenAPI-style (`/api/jobs/{id}`): for checking
    /// the API document against what is served.
    public var documentedPaths: [(method: HTTPMethod, path: String)] {
        routes.map { route in
            (route.method, "/" + route.segments.map { segment in
                switch segment {
                case .literal(let text): text
                case .parameter(let name), .rest(let name): "{\(name)}"
                }
            }.joined(separator: "/"))
        }
    }

    public mutating func get(_ pattern: String, _ handler: @escaping HTTPHandler) { add(.get, pattern, handler) }
    public mutating func post(_ pattern: String, bodyLimit: Int? = nil, _ handler: @escaping HTTPHandler) { add(.post, pattern, bodyLimit: bodyLimit, handler) }
    public mutating func delete(_ pattern: String, _ handler: @escaping HTTPHandler) { add(.delete, pattern, handler) }

    func resolve(_ method: HTTPMethod, _ path: String) -> Resolution {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        var allowed: Set<HTTPMethod> = []
        let lookup = method == .head ? HTTPMethod.get : method
        for route in routes {
            guard let parameters = Self.match(route.segments, parts) else { continue }
            if route.method == lookup { return .found(handler: route.handler, parameters: parameters, bodyLimit: route.bodyLimit) }
            allowed.insert(route.method)
            if route.method == .get { allowed.insert(.head) }
        }
        if allowed.isEmpty { return .notFound }
        allowed.insert(.options)
        return .methodNotAllowed(allow: allowed.sorted())
    }

    /// The methods a path supports, for `OPTIONS`.
    func allowedMethods(_ path: String) -> [HTTPMethod] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        var allowed: Set<HTTPMethod> = []
        for route in routes where Self.match(route.segments, parts) != nil {
            allowed.insert(route.method)
            if route.method == .get { allowed.insert(.head) }
        }
        if !allowed.isEmpty { allowed.insert(.options) }
        return allowed.sorted()
    }

    private static func match(_ segments: [Segment], _ parts: [Substring]) -> [String: String]? {
        var parameters: [String: String] = [:]
        for (index, segment) in segments.enumerated() {
            switch segment {
            case .rest(let name):
                parameters[name] = parts[min(index, parts.count)...].joined(separator: "/")
                return parameters
            case .literal(let literal):
                guard index < parts.count, parts[index] == literal else { return nil }
            case .parameter(let name):
                guard index < parts.count else { return nil }
                parameters[name] = String(parts[index])
            }
        }
        return segments.count == parts.count ? parameters : nil
    }
}
