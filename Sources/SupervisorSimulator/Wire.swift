import HTTPServer

// The Supervisor's two answer shapes: the JSON envelope of `api_process` (`api/utils.py`) and aiohttp's
// plain-text HTTP exceptions (`401: Unauthorized`), which the security middleware and proxy raise.

/// An API error in the envelope: `{"result":"error","message":…,"job_id"?}` with its status (400 by default).
struct APIError: HTTPResponseError, Sendable, CustomStringConvertible {
    let status: Int
    let message: String
    var jobID: String?

    init(_ message: String, status: Int = 400, jobID: String? = nil) {
        self.status = status
        self.message = message
        self.jobID = jobID
    }

    /// What `api_return_error()` says when a handler returns False without a message.
    static let unknown = APIError("Unknown error, see Supervisor logs")
    static let backupNotFound = APIError("Backup does not exist", status: 404)

    var response: HTTPResponse {
        var body: JSONObject = ["result": "error", "message": .string(message)]
        if let jobID { body["job_id"] = .string(jobID) }
        return Envelope.json(.object(body), status: status)
    }

    var description: String { "\(status): \(message)" }
}

/// An aiohttp `HTTPException` as the client sees it: `<code>: <reason>` in plain text.
struct PlainError: HTTPResponseError, Sendable, CustomStringConvertible {
    let status: HTTPStatus

    static let unauthorized = PlainError(status: .unauthorized)
    static let forbidden = PlainError(status: .forbidden)
    static let notFound = PlainError(status: .notFound)
    static let methodNotAllowed = PlainError(status: .methodNotAllowed)
    static let badRequest = PlainError(status: .badRequest)
    static let badGateway = PlainError(status: HTTPStatus(502, "Bad Gateway"))

    var response: HTTPResponse { .text("\(status.code): \(status.reason)", status: status) }

    var description: String { "\(status.code): \(status.reason)" }
}

/// What aiohttp answers when a handler raises something unexpected (e.g. a non-multipart upload).
struct InternalServerError: HTTPResponseError, Sendable {
    var response: HTTPResponse {
        .text("500 Internal Server Error\n\nServer got itself in trouble", status: .internalServerError)
    }
}

enum Envelope {
    /// `{"result":"ok","data":…}`; `data` is `{}` when the handler has nothing to say.
    static func ok(_ data: JSONObject = [:]) -> HTTPResponse {
        json(["result": "ok", "data": .object(data)])
    }

    /// `web.json_response`: `Content-Type: application/json; charset=utf-8`.
    static func json(_ value: JSONValue, status: Int = 200) -> HTTPResponse {
        HTTPResponse(httpStatus(status), headers: HTTPHeaders([("Content-Type", "application/json; charset=utf-8")]), body: .bytes(value.encoded()))
    }

    static func httpStatus(_ code: Int) -> HTTPStatus {
        switch code {
        case 200: .ok
        case 201: .created
        case 400: .badRequest
        case 401: .unauthorized
        case 403: .forbidden
        case 404: .notFound
        case 405: .methodNotAllowed
        case 500: .internalServerError
        case 502: HTTPStatus(502, "Bad Gateway")
        default: HTTPStatus(code, "Status \(code)")
        }
    }
}
