import Foundation
import HTTPServer
import Logging

/// The API host: `b2_authorize_account` and the JSON calls, at `/b2api/v1|v2|v3|v4/<operation>`.
/// - SeeAlso: https://www.backblaze.com/apidocs/introduction-to-the-b2-native-api
enum APIRoutes {
    /// v2 answers the flat authorize shape; v3 groups it under `apiInfo.storageApi`; v4 adds
    /// `allowed.buckets`. v1 (what rclone 1.60 speaks) is v2's flat shape plus `minimumPartSize`, and
    /// its file objects differ where ``VersionOne`` says.
    static let supportedVersions: Set<String> = ["v1", "v2", "v3", "v4"]
    static let operations: Set<String> = [
        "b2_authorize_account", "b2_list_buckets", "b2_get_upload_url", "b2_start_large_file", "b2_get_upload_part_url",
        "b2_finish_large_file", "b2_cancel_large_file", "b2_list_parts", "b2_list_unfinished_large_files",
        "b2_list_file_names", "b2_list_file_versions", "b2_hide_file", "b2_delete_file_version", "b2_get_file_info",
        "b2_update_file_retention",
    ]
    /// JSON bodies are small; the largest, a finish with 10 000 SHA-1s, is under 0.5 MB.
    static let jsonBodyLimit = 4 << 20

    static func router(_ context: HandlerContext) -> Router {
        var router = Router()
        router.get("/b2api/:version/:operation") { request in try await handle(request, context) }
        router.post("/b2api/:version/:operation", bodyLimit: jsonBodyLimit) { request in try await handle(request, context) }
        CatchAll.add(to: &router) { path in
            let parts = path.split(separator: "/")
            return parts.count == 3 && parts[0] == "b2api" && operations.contains(String(parts[2]))
        }
        return router
    }

    /// The `X-Bz-Test-Mode` header B2 honours for integration tests, lower-cased.
    /// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-integration-checklist
    static func testMode(_ request: HTTPRequest) -> String? { request.headers["X-Bz-Test-Mode"]?.lowercased() }

    /// Failures that come before authentication: caps (injected or `force_cap_exceeded`), rate limits
    /// and scripted errors.
    static func admissionFailure(_ operation: String, _ request: HTTPRequest, _ context: HandlerContext) async -> B2Error? {
        if testMode(request) == "force_cap_exceeded" { return B2Error(403, "cap_exceeded", "Cap exceeded.") }
        return await context.faults.admissionFailure(operation)
    }

    private static func handle(_ request: HTTPRequest, _ context: HandlerContext) async throws -> HTTPResponse {
        let version = request.pathParameters["version"] ?? ""
        let operation = request.pathParameters["operation"] ?? ""
        guard supportedVersions.contains(version), operations.contains(operation) else {
            throw B2Error(404, "not_found", "no such API: \(request.path)")
        }
        await context.state.count(operation)
        context.logger.debug("B2 call", metadata: ["b2.operation": "\(operation)", "b2.api_version": "\(version)"])
        if let failure = await admissionFailure(operation, request, context) { throw failure }
        let body = try await readBody(request, operation: operation, context)

        if operation == "b2_authorize_account" {
            guard request.method == .get else { throw B2Error(405, "method_not_allowed", "b2_authorize_account must be called with GET") }
            return try await authorize(request, version: version, context)
        }
        let parameters = try Parameters.read(request, body: body)
        let caller = try await context.state.authenticate(request.headers["Authorization"])
        if testMode(request) == "expire_some_account_authorization_tokens", await context.state.testModeTriggers("expire_some_account_authorization_tokens") {
            await context.state.expire(token: caller.token)
            throw B2Error.expiredAuthToken
        }
        let state = context.state
        let p = parameters
        let result: JSON
        switch operation {
        case "b2_list_buckets":
            result = try await state.listBuckets(caller, accountID: try p.requiredString("accountId"), bucketID: try p.string("bucketId"),
                                                 bucketName: try p.string("bucketName"), bucketTypes: try p.stringArray("bucketTypes"))
        case "b2_get_upload_url":
            result = try await state.getUploadURL(caller, apiVersion: version, bucketID: try p.requiredString("bucketId"))
        case "b2_start_large_file":
            result = try await state.startLargeFile(caller, bucketID: try p.requiredString("bucketId"), fileName: try p.requiredString("fileName"),
                                                    contentType: try p.requiredString("contentType"), fileInfo: try p.stringMap("fileInfo") ?? [:],
                                                    retention: try ObjectLock.parse(p.json("fileRetention")))
        case "b2_get_upload_part_url":
            result = try await state.getUploadPartURL(caller, apiVersion: version, fileID: try p.requiredString("fileId"))
        case "b2_finish_large_file":
            guard let sha1s = try p.stringArray("partSha1Array") else { throw B2Error.missingField("partSha1Array") }
            result = try await state.finishLargeFile(caller, fileID: try p.requiredString("fileId"), partSha1Array: sha1s)
        case "b2_cancel_large_file":
            result = try await state.cancelLargeFile(caller, fileID: try p.requiredString("fileId"))
        case "b2_list_parts":
            result = try await state.listParts(caller, fileID: try p.requiredString("fileId"), startPartNumber: try p.int("startPartNumber"),
                                               maxPartCount: try p.int("maxPartCount"))
        case "b2_list_unfinished_large_files":
            result = try await state.listUnfinishedLargeFiles(caller, bucketID: try p.requiredString("bucketId"), namePrefix: try p.string("namePrefix"),
                                                              startFileID: try p.string("startFileId"), maxFileCount: try p.int("maxFileCount"))
        case "b2_list_file_names", "b2_list_file_versions":
            let versions = operation == "b2_list_file_versions"
            result = try await state.listFiles(caller, versions: versions, bucketID: try p.requiredString("bucketId"),
                                               startFileName: try p.string("startFileName"), startFileID: versions ? try p.string("startFileId") : nil,
                                               maxFileCount: try p.int("maxFileCount"), prefix: try p.string("prefix"), delimiter: try p.string("delimiter"))
        case "b2_hide_file":
            result = try await state.hideFile(caller, bucketID: try p.requiredString("bucketId"), fileName: try p.requiredString("fileName"))
        case "b2_delete_file_version":
            result = try await state.deleteFileVersion(caller, fileName: try p.requiredString("fileName"), fileID: try p.requiredString("fileId"),
                                                       bypassGovernance: try p.bool("bypassGovernance") ?? false)
        case "b2_update_file_retention":
            guard let retention = p.json("fileRetention") else { throw B2Error.missingField("fileRetention") }
            result = try await state.updateFileRetention(caller, fileName: try p.requiredString("fileName"), fileID: try p.requiredString("fileId"),
                                                         retention: try ObjectLock.parse(retention), bypassGovernance: try p.bool("bypassGovernance") ?? false)
        case "b2_get_file_info":
            result = try await state.getFileInfo(caller, fileID: try p.requiredString("fileId"))
        default:
            throw B2Error(404, "not_found", "no such API: \(request.path)")
        }
        return .b2JSON(version == "v1" ? VersionOne.adapt(operation, result) : result)
    }

    /// Reads a JSON call's body; a `resetConnection` rule drops the connection part-way.
    static func readBody(_ request: HTTPRequest, operation: String, _ context: HandlerContext) async throws -> [UInt8] {
        let resetAfter = await context.faults.resetPoint(operation)
        if resetAfter == 0 { throw AbortConnection() }
        var bytes: [UInt8] = []
        while let chunk = try await request.body.next() {
            bytes += chunk
            guard bytes.count <= jsonBodyLimit else { throw B2Error.badRequest("the request body is larger than \(jsonBodyLimit) bytes") }
            if let resetAfter, bytes.count >= resetAfter { throw AbortConnection() }
        }
        if resetAfter != nil { throw AbortConnection() }
        return bytes
    }

    /// `b2_authorize_account` with `Authorization: Basic base64(keyId:applicationKey)`.
    /// - SeeAlso: https://www.backblaze.com/apidocs/b2-authorize-account
    private static func authorize(_ request: HTTPRequest, version: String, _ context: HandlerContext) async throws -> HTTPResponse {
        guard let header = request.headers["Authorization"], header.lowercased().hasPrefix("basic "),
              let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let credentials = String(data: decoded, encoding: .utf8), let colon = credentials.firstIndex(of: ":") else {
            throw B2Error.unauthorized("b2_authorize_account needs Authorization: Basic base64(keyId:applicationKey)")
        }
        let keyID = String(credentials[..<colon])
        let key = String(credentials[credentials.index(after: colon)...])
        let caller = try await context.state.authorizeAccount(keyID: keyID, applicationKey: key)
        let bucket = await context.state.allowedBucket(caller.account)
        let account = caller.account
        let urls = context.endpoints.current
        let capabilities = JSON.array(account.capabilities.map(JSON.string))
        let limits: [(String, JSON)] = [
            ("absoluteMinimumPartSize", .int(context.configuration.absoluteMinimumPartSize)),
            ("recommendedPartSize", .int(context.configuration.recommendedPartSize)),
        ]
        // No S3 API here; the API host answers its paths with B2's 404.
        let hosts: [(String, JSON)] = [("apiUrl", .string(urls.api)), ("downloadUrl", .string(urls.download)), ("s3ApiUrl", .string(urls.api))]
        let response: JSON
        switch version {
        case "v1", "v2":
            let allowed = JSON.object([("bucketId", .optional(bucket?.id)), ("bucketName", .optional(bucket?.name)),
                                       ("capabilities", capabilities), ("namePrefix", .optional(account.namePrefix))])
            // v1 also sends the deprecated `minimumPartSize`, always equal to `recommendedPartSize`.
            let deprecated: [(String, JSON)] = version == "v1" ? [("minimumPartSize", limits[1].1)] : []
            response = .object([("absoluteMinimumPartSize", limits[0].1), ("accountId", .string(account.accountID)), ("allowed", allowed),
                                ("apiUrl", hosts[0].1), ("authorizationToken", .string(caller.token)), ("downloadUrl", hosts[1].1)]
                               + deprecated + [("recommendedPartSize", limits[1].1), ("s3ApiUrl", hosts[2].1)])
        case "v3":
            let storage = JSON.object(limits + hosts + [
                ("bucketId", .optional(bucket?.id)), ("bucketName", .optional(bucket?.name)), ("capabilities", capabilities),
                ("infoType", .string("storageApi")), ("namePrefix", .optional(account.namePrefix)),
            ])
            response = .object([("accountId", .string(account.accountID)), ("apiInfo", .object([("storageApi", storage)])),
                                ("applicationKeyExpirationTimestamp", .null), ("authorizationToken", .string(caller.token))])
        default:
            let buckets: JSON = bucket.map { .array([.object([("id", .string($0.id)), ("name", .string($0.name))])]) } ?? .null
            let allowed = JSON.object([("buckets", buckets), ("capabilities", capabilities), ("namePrefix", .optional(account.namePrefix))])
            let storage = JSON.object(limits + [("allowed", allowed)] + hosts + [("infoType", .string("storageApi"))])
            response = .object([("accountId", .string(account.accountID)), ("apiInfo", .object([("storageApi", storage)])),
                                ("applicationKeyExpirationTimestamp", .null), ("authorizationToken", .string(caller.token))])
        }
        return .b2JSON(response)
    }
}

/// Answers every path no route takes with B2's envelope: 405 for a known call with the wrong
/// method, else 404 (the server's own answers use a different JSON shape).
enum CatchAll {
    static func add(to router: inout Router, isKnownPath: @escaping @Sendable (String) -> Bool) {
        for method in [HTTPMethod.get, .post, .put, .delete, .patch] {
            router.add(method, "/*rest") { request in
                if isKnownPath(request.path) {
                    throw B2Error(405, "method_not_allowed", "\(request.method.rawValue) is not allowed for \(request.path)")
                }
                throw B2Error(404, "not_found", "no such API: \(request.path)")
            }
        }
    }
}
