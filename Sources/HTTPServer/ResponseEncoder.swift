/// Serialises response heads and chunked framing.
enum ResponseEncoder {
    static func head(_ status: HTTPStatus, _ headers: HTTPHeaders) -> [UInt8] {
        var text = "HTTP/1.1 \(status.code) \(status.reason)\r\n"
        for field in headers {
            text += field.name
            text += ": "
            text += field.value
            text += "\r\n"
        }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// One chunk of a chunked body (RFC 9112 §7.1).
    static func chunk(_ bytes: [UInt8]) -> [UInt8] {
        var framed = Array((String(bytes.count, radix: 16) + "\r\n").utf8)
        framed.reserveCapacity(framed.count + bytes.count + 2)
        framed += bytes
        framed += [0x0D, 0x0A]
        return framed
    }

    static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)
    static let continueLine: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// A complete error response that closes the connection; the body is the standard JSON error.
    static func errorResponse(_ error: HTTPParseError, retryAfter: Int? = nil) -> [UInt8] {
        let body = errorBody(code: error.status.errorCode, message: error.reason)
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json")
        headers.add("Content-Length", String(body.count))
        headers.add("Connection", "close")
        headers.add("Date", Sys.httpDate())
        if let retryAfter { headers.add("Retry-After", String(retryAfter)) }
        return head(error.status, headers) + body
    }

    static func errorBody(code: String, message: String) -> [UInt8] {
        Array("{\"error\":{\"code\":\(jsonString(code)),\"message\":\(jsonString(message))}}".utf8)
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += unicodeEscape(scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static func unicodeEscape(_ value: UInt32) -> String {
        let hex = String(value, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
    }
}
