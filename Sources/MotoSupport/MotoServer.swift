import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HTTPClient
import Logging
import S3Client
import TestSupport
import Testing

/// moto's S3 in server mode (`moto_server`, installed by scripts/install-deps from PyPI), started once
/// per suite on a free port with authentication switched on.
///
/// How authentication is switched on (moto 5.x): moto checks signatures only after
/// `INITIAL_NO_AUTH_ACTION_COUNT` actions, and then validates the key id against its IAM backend, so
/// a key must exist in IAM first, with a policy allowing S3. Started with the count at 0, nothing could
/// create that key; so the server starts with authentication off (the default, unlimited count), we
/// create an IAM user, an access key and an `s3:*` inline policy through moto's IAM API, and then POST
/// `0` to `/moto-api/reset-auth`, which sets `INITIAL_NO_AUTH_ACTION_COUNT` to 0: from there every
/// request must be signed with that key and its secret. moto's fixed example keys are not accepted.
public final class MotoServer: Sendable {
    public let port: Int
    public let accessKeyID: String
    public let secretAccessKey: String
    private let process: Process

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// The installed `moto_server`, or nil.
    public static let executable: String? = {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return (paths + ["/usr/local/bin", "\(NSHomeDirectory())/.local/bin"]).map { "\($0)/moto_server" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    private init(port: Int, accessKeyID: String, secretAccessKey: String, process: Process) {
        self.port = port
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.process = process
    }

    /// scripts/moto-server: `moto_server` with the raw query string handed to its signature check (see there).
    static let launcher = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/moto-server").standardized.path

    public static func start() async throws -> MotoServer {
        guard executable != nil else { throw Failure("moto_server is not installed (scripts/install-deps installs moto[server])") }
        let port = try freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", launcher, "-H", "127.0.0.1", "-p", "\(port)"]
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "INITIAL_NO_AUTH_ACTION_COUNT") // off while we create the IAM key; see above
        process.environment = environment
        let log = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = log
        try process.run()
        do {
            try await onOwnThread { try Self.waitForBanner(log.fileHandleForReading, port: port) }
            let http = HTTPClient(logger: Logger(label: "moto-setup"))
            let iam = { (action: String, parameters: [(String, String)]) async throws -> String in
                try await iamCall(http: http, port: port, action: action, parameters: parameters)
            }
            _ = try await iam("CreateUser", [("UserName", "backup")])
            let created = try await iam("CreateAccessKey", [("UserName", "backup")])
            guard let keyID = between(created, "<AccessKeyId>", "</AccessKeyId>"),
                  let secret = between(created, "<SecretAccessKey>", "</SecretAccessKey>") else {
                throw Failure("moto CreateAccessKey answered: \(created)")
            }
            let policy = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
            _ = try await iam("PutUserPolicy", [("UserName", "backup"), ("PolicyName", "s3"), ("PolicyDocument", policy)])
            var reset = HTTPClientRequest(method: "POST", url: "http://127.0.0.1:\(port)/moto-api/reset-auth", body: Array("0".utf8))
            reset.headers = [("Content-Type", "text/plain")]
            let answer = try await http.send(reset)
            guard answer.status == 200 else { throw Failure("moto reset-auth answered \(answer.status): \(answer.text)") }
            return MotoServer(port: port, accessKeyID: keyID, secretAccessKey: secret, process: process)
        } catch {
            await kill(process)
            throw error
        }
    }

    /// SIGKILL: moto's werkzeug server does not exit on SIGTERM, and it holds nothing worth flushing.
    public func stop() async { await Self.kill(process) }

    private static func kill(_ process: Process) async {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        await process.exited()
    }

    /// A client for `bucket` with this server's key (or `secret` instead of the real one).
    /// Virtual-hosted clients use `localhost`: libcurl resolves `<bucket>.localhost` to the loopback itself.
    public func client(bucket: String, secret: String? = nil, addressing: S3Client.Addressing = .path) throws -> S3Client {
        let configuration = S3Client.Configuration(endpoint: addressing == .path ? endpoint : "http://localhost:\(port)", region: "us-east-1",
                                                   bucket: bucket, accessKeyID: accessKeyID, secretAccessKey: secret ?? secretAccessKey,
                                                   addressing: addressing, maxAttempts: 2, baseDelay: .milliseconds(50))
        return try S3Client(configuration: configuration, http: HTTPClient(logger: Logger(label: "s3-test")), logger: Logger(label: "s3-test"))
    }

    // MARK: Helpers

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// A port that was free a moment ago: bind port 0, read what the kernel chose, close.
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw Failure("cannot bind a local port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Reads moto's log until werkzeug says it is listening (it binds the socket first), then keeps
    /// draining the log on a thread of its own so request lines never fill the pipe and stall moto.
    private static func waitForBanner(_ log: FileHandle, port: Int) throws {
        var text = ""
        while !text.contains("Running on http://127.0.0.1:\(port)") {
            let data = log.availableData
            guard !data.isEmpty else { throw Failure("moto_server ended before it listened: \(text.suffix(500))") }
            text += String(decoding: data, as: UTF8.self)
        }
        Thread.detachNewThread { while !log.availableData.isEmpty {} }
    }

    /// One IAM query-API action, signed for service `iam` so that moto routes it to IAM.
    private static func iamCall(http: HTTPClient, port: Int, action: String, parameters: [(String, String)]) async throws -> String {
        let form = ([("Action", action), ("Version", "2010-05-08")] + parameters)
            .map { "\(SigV4Signer.encode($0.0))=\(SigV4Signer.encode($0.1))" }.joined(separator: "&")
        let body = Array(form.utf8)
        let date = Date()
        let hash = SigV4Signer.sha256Hex(body)
        let host = "127.0.0.1:\(port)"
        let signed: [(name: String, value: String)] = [("Host", host), ("X-Amz-Date", SigV4Signer.amzDate(date))]
        let signer = SigV4Signer(accessKeyID: "AKIASETUPONLY", secretAccessKey: "setup", region: "us-east-1", service: "iam")
        let authorization = signer.authorization(method: "POST", encodedPath: "/", query: [], headers: signed, payloadHash: hash, date: date)
        var request = HTTPClientRequest(method: "POST", url: "http://\(host)/", body: body)
        request.headers = signed.map { ($0.name, $0.value) } + [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", authorization)]
        let response = try await http.send(request)
        guard response.status == 200 else { throw Failure("moto IAM \(action) answered \(response.status): \(response.text)") }
        return response.text
    }

    private static func between(_ text: String, _ start: String, _ end: String) -> String? {
        guard let lower = text.range(of: start), let upper = text.range(of: end, range: lower.upperBound..<text.endIndex) else { return nil }
        return String(text[lower.upperBound..<upper.lowerBound])
    }
}

/// Starts one moto server around the whole suite and stops it afterwards.
public struct MotoTrait: SuiteTrait, TestScoping {
    @TaskLocal public static var server: MotoServer?

    public init() {}

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Without moto the suite is disabled (its `.enabled(if:)` trait says why); never fail here for it.
        guard MotoServer.executable != nil else { return try await function() }
        let server = try await MotoServer.start()
        do {
            try await Self.$server.withValue(server) { try await function() }
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}

extension Trait where Self == MotoTrait {
    public static var motoServer: Self { MotoTrait() }
}
