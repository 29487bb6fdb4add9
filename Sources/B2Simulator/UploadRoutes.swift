import Foundation
import Hashing
import HTTPServer
import Logging

/// The upload pods: `b2_upload_file` and `b2_upload_part` at the exact URLs the API handed out.
///
/// Bodies stream into a temporary file while their SHA-1 is computed, and move into place only once
/// verified; a failed or dropped upload leaves nothing behind.
/// - SeeAlso: https://www.backblaze.com/apidocs/b2-upload-file, https://www.backblaze.com/apidocs/b2-upload-part
enum UploadRoutes {
    static func router(_ context: HandlerContext) -> Router {
        var router = Router()
        // No server-side cap: the handlers refuse oversized bodies themselves, with B2's error envelope.
        router.post("/b2api/:version/b2_upload_file/:bucketId/:uploadId", bodyLimit: Int.max) { request in
            try await upload(request, operation: "b2_upload_file", pathTarget: request.pathParameters["bucketId"] ?? "", context)
        }
        router.post("/b2api/:version/b2_upload_part/:fileId/:uploadId", bodyLimit: Int.max) { request in
            try await upload(request, operation: "b2_upload_part", pathTarget: request.pathParameters["fileId"] ?? "", context)
        }
        CatchAll.add(to: &router) { path in
            let parts = path.split(separator: "/")
            return parts.count == 5 && parts[0] == "b2api" && (parts[2] == "b2_upload_file" || parts[2] == "b2_upload_part")
        }
        return router
    }

    /// What `X-Bz-Content-Sha1` promised.
    enum Sha1Claim: Equatable {
        case hex(String)
        case atEnd
        case unverified
    }

    /// The request's headers, checked before any body byte is read.
    private struct Plan {
        var fileName = ""
        var contentType = ""
        var fileInfo: [String: String] = [:]
        var retention: B2Simulator.Retention?
        var partNumber = 0
        var claim = Sha1Claim.unverified
        var declaredLength = 0
        var dataLength: Int { declaredLength - (claim == .atEnd ? 40 : 0) }
    }

    private static func upload(_ request: HTTPRequest, operation: String, pathTarget: String, _ context: HandlerContext) async throws -> HTTPResponse {
        await context.state.count(operation)
        let uploadID = request.pathParameters["uploadId"] ?? ""
        if let failure = await APIRoutes.admissionFailure(operation, request, context) {
            // A pod that answers 5xx is done with this URL, whatever stage the failure is injected at.
            if failure.status >= 500 { await context.state.retireUpload(uploadID: uploadID) }
            throw failure
        }
        guard APIRoutes.supportedVersions.contains(request.pathParameters["version"] ?? "") else {
            throw B2Error(404, "not_found", "unsupported API version in \(request.path)")
        }
        let ticket = try await context.state.beginUpload(uploadID: uploadID, pathTarget: pathTarget,
                                                         authorization: request.headers["Authorization"])
        do {
            let response = try await receive(request, operation: operation, ticket: ticket, context)
            await context.state.endUpload(ticket, retire: false)
            return response
        } catch let error as B2Error {
            await context.state.endUpload(ticket, retire: error.status >= 500)
            throw error
        } catch {
            await context.state.endUpload(ticket, retire: false)
            throw error
        }
    }

    private static func receive(_ request: HTTPRequest, operation: String, ticket: SimulatorState.UploadTicket, _ context: HandlerContext) async throws -> HTTPResponse {
        let isPart = operation == "b2_upload_part"
        let plan = try makePlan(request, isPart: isPart, ticket: ticket, context)
        let temporary = context.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        let received: BodyReceiver.Received
        do {
            received = try await BodyReceiver.receive(request.body, declaredLength: plan.declaredLength, trailerLength: plan.claim == .atEnd ? 40 : 0,
                                                      to: temporary, resetAfter: await context.faults.resetPoint(operation))
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        // Injected and test-mode failures come after the body is read, so the client sees the status.
        var failure: B2Error?
        if isPart { failure = await context.faults.uploadPartFailure() }
        if failure == nil, APIRoutes.testMode(request) == "fail_some_uploads", await context.state.testModeTriggers("fail_some_uploads") {
            failure = B2Error(503, "service_unavailable", FaultInjector.defaultMessage("service_unavailable"))
        }
        let expected: String? = switch plan.claim {
        case .hex(let sha1): sha1
        case .atEnd: received.trailer.lowercased()
        case .unverified: nil
        }
        if failure == nil, let expected, expected != received.sha1 {
            failure = B2Error.badRequest("Sha1 did not match data received")
        }
        if let failure {
            try? FileManager.default.removeItem(at: temporary)
            throw failure
        }
        let json: JSON
        if isPart {
            json = try await context.state.commitPart(ticket, partNumber: plan.partNumber, sha1: received.sha1, length: plan.dataLength, temporary: temporary)
        } else {
            // B2 reports an unchecked SHA-1 with this prefix; b2sdk and rclone strip it.
            let sha1 = plan.claim == .unverified ? "unverified:\(received.sha1)" : received.sha1
            json = try await context.state.commitFile(ticket, name: plan.fileName, contentType: plan.contentType, sha1: sha1,
                                                      length: plan.dataLength, fileInfo: plan.fileInfo, retention: plan.retention, temporary: temporary)
        }
        context.logger.debug("B2 upload stored", metadata: ["b2.operation": "\(operation)", "b2.bytes": "\(plan.dataLength)"])
        return .b2JSON(json)
    }

    /// Checks the headers B2 requires, in the order a body-less refusal is cheapest.
    private static func makePlan(_ request: HTTPRequest, isPart: Bool, ticket: SimulatorState.UploadTicket, _ context: HandlerContext) throws(B2Error) -> Plan {
        let headers = request.headers
        var plan = Plan()
        // "Content-Length: required … chunked transfer encoding is not supported."
        guard let declared = request.body.declaredLength else {
            throw B2Error(411, "length_required", "Content-Length is required; chunked transfer encoding is not supported")
        }
        plan.declaredLength = declared
        switch headers["X-Bz-Content-Sha1"]?.lowercased() {
        case nil: throw B2Error.badRequest("Missing header: X-Bz-Content-Sha1")
        case "hex_digits_at_end"?: plan.claim = .atEnd
        case "do_not_verify"? where !isPart: plan.claim = .unverified
        case let value? where Hex.isSHA1(value): plan.claim = .hex(value)
        case let value?: throw B2Error.badRequest("X-Bz-Content-Sha1 must be 40 hex digits or hex_digits_at_end\(isPart ? "" : " or do_not_verify"): \(value)")
        }
        if plan.claim == .atEnd, declared < 40 {
            throw B2Error.badRequest("Content-Length \(declared) is too short for hex_digits_at_end (40 digits)")
        }
        guard plan.dataLength <= context.configuration.maxSimpleUploadBytes else {
            throw B2Error.badRequest("\(isPart ? "part" : "file") is \(plan.dataLength) bytes; the limit is \(context.configuration.maxSimpleUploadBytes)")
        }
        if headers["X-Bz-Server-Side-Encryption-Customer-Algorithm"] != nil {
            throw B2Error.badRequest("SSE-C is not supported by this simulator")
        }
        if let sse = headers["X-Bz-Server-Side-Encryption"], sse != "AES256" {
            throw B2Error.badRequest("X-Bz-Server-Side-Encryption must be AES256: \(sse)")
        }
        if isPart {
            guard let text = headers["X-Bz-Part-Number"] else { throw B2Error.badRequest("Missing header: X-Bz-Part-Number") }
            guard let number = Int(text), (1...SimulatorState.maxPartNumber).contains(number) else {
                throw B2Error.badRequest("Part number must be in range 1 - \(SimulatorState.maxPartNumber): \(text)")
            }
            plan.partNumber = number
            return plan
        }
        for name in FileRules.refusedUploadHeaders where headers[name] != nil {
            throw B2Error.badRequest("\(name) is not allowed on uploads; use X-Bz-Info-b2-\(name.lowercased())")
        }
        guard let encodedName = headers["X-Bz-File-Name"] else { throw B2Error.badRequest("Missing header: X-Bz-File-Name") }
        guard let name = B2StringEncoding.decode(encodedName) else {
            throw B2Error.badRequest("X-Bz-File-Name is not percent-encoded UTF-8: \(encodedName)")
        }
        try FileRules.validate(name: name)
        plan.fileName = name
        guard let contentType = headers["Content-Type"], !contentType.isEmpty else { throw B2Error.badRequest("Missing header: Content-Type") }
        plan.contentType = FileRules.resolveContentType(contentType, fileName: name)
        var info: [String: String] = [:]
        for field in headers where field.name.lowercased().hasPrefix("x-bz-info-") {
            let key = String(field.name.dropFirst("x-bz-info-".count))
            guard let value = B2StringEncoding.decode(field.value) else {
                throw B2Error.badRequest("\(field.name) is not percent-encoded UTF-8")
            }
            guard info[key.lowercased()] == nil else { throw B2Error.badRequest("\(field.name) is given twice") }
            info[key.lowercased()] = value
        }
        plan.retention = try ObjectLock.parse(headers)
        plan.fileInfo = try FileRules.normalizedInfo(info, fileName: name, withRetention: plan.retention != nil)
        try ObjectLock.checkNew(plan.retention, bucket: ticket.bucket, account: ticket.account, now: context.configuration.nowMillis)
        return plan
    }
}

/// Streams a request body to a file, hashing it on the way; never holds more than a buffer in memory.
enum BodyReceiver {
    struct Received {
        /// Hex SHA-1 of the data (the body without a trailing checksum).
        let sha1: String
        /// The last `trailerLength` bytes of the body, as text (`hex_digits_at_end`).
        let trailer: String
    }

    static let flushSize = 256 * 1024

    /// - Parameters:
    ///   - trailerLength: bytes at the end that are a checksum, not data.
    ///   - resetAfter: drop the connection (``AbortConnection``) once this many body bytes were read.
    static func receive(_ body: RequestBody, declaredLength: Int, trailerLength: Int, to url: URL, resetAfter: Int?) async throws -> Received {
        guard FileManager.default.createFile(atPath: url.path, contents: nil), let handle = FileHandle(forWritingAtPath: url.path) else {
            throw B2Error(500, "internal_error", "the simulator cannot create \(url.path)")
        }
        defer { try? handle.close() }
        if resetAfter == 0 { throw AbortConnection() }
        let digest = StreamingDigest(.sha1)
        let dataLength = declaredLength - trailerLength
        var received = 0
        var buffer: [UInt8] = []
        buffer.reserveCapacity(flushSize)
        var trailer: [UInt8] = []
        func flush() throws {
            guard !buffer.isEmpty else { return }
            do {
                try handle.write(contentsOf: buffer)
            } catch {
                throw B2Error(500, "internal_error", "the simulator cannot write \(url.path): \(error.localizedDescription)")
            }
            buffer.removeAll(keepingCapacity: true)
        }
        while let chunk = try await body.next() {
            let dataEnd = max(0, min(chunk.count, dataLength - received))
            if dataEnd > 0 {
                chunk[0..<dataEnd].withUnsafeBytes { digest.update($0) }
                buffer += chunk[0..<dataEnd]
                if buffer.count >= flushSize { try flush() }
            }
            if dataEnd < chunk.count { trailer += chunk[dataEnd...] }
            received += chunk.count
            if let resetAfter, received >= resetAfter { throw AbortConnection() }
        }
        try flush()
        // The server stops at Content-Length and fails the read if the client sends less.
        guard received == declaredLength else {
            throw B2Error.badRequest("received \(received) of \(declaredLength) bytes")
        }
        return Received(sha1: digest.hexDigest(), trailer: String(decoding: trailer, as: UTF8.self))
    }
}
