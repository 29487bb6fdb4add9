@testable import HTTPServer
import Testing

@Suite struct RequestHeadParserTests {
    private func parse(_ text: String, limits: HeadLimits = .init()) throws(HTTPParseError) -> HTTPRequestHead? {
        if case .complete(let head, _) = try RequestHeadParser.parse(Array(text.utf8), limits: limits) { return head }
        return nil
    }

    @Test func parsesAGetWithQueryAndHeaders() throws {
        let head = try #require(try parse("GET /api/backups?limit=5&name=a%20b HTTP/1.1\r\nHost: x\r\nAccept:  */* \r\n\r\n"))
        #expect(head.method == .get)
        #expect(head.path == "/api/backups")
        #expect(head.query == "limit=5&name=a%20b")
        #expect(head.headers["accept"] == "*/*")
        #expect(head.keepAlive)
        #expect(head.framing == BodyFraming.none)
        #expect(PercentDecoding.queryItems(head.query).map(\.value) == ["5", "a b"])
    }

    @Test(arguments: [
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", BodyFraming.length(5)),
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", .length(5)),
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", .length(7)),
        ("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", .chunked),
        ("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", .chunked),
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", .none),
        ("POST /x HTTP/1.1\r\nHost: x\r\n\r\n", .none), // no length: empty body, RFC 9112 §6.3 (7)
        ("PUT /x HTTP/1.1\r\nHost: x\r\n\r\n", .none),
        ("GET /x HTTP/1.1\r\nHost: x\r\n\r\n", .none),
        ("GET /x HTTP/1.1\nHost: x\n\n", .none), // bare LF, RFC 9112 §2.2
        ("\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n", .none), // leading empty line
        ("GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n", .none),
        ("GET /x HTTP/1.0\r\n\r\n", .none),
    ])
    func framing(request: String, expected: BodyFraming) throws {
        let head = try #require(try parse(request))
        #expect(head.framing == expected)
    }

    /// Every malformed class gets its own status (RFC 9112 / RFC 9110).
    @Test(arguments: [
        ("GET /x HTTP/1.1\r\n\r\n", 400),                                         // no Host
        ("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),                   // two Hosts
        ("GET /x HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),                        // four parts
        ("GET  /x HTTP/1.1\r\nHost: x\r\n\r\n", 400),                             // double space
        ("GET x HTTP/1.1\r\nHost: x\r\n\r\n", 400),                               // not origin-form
        ("GET /a\u{7f}b HTTP/1.1\r\nHost: x\r\n\r\n", 400),                       // DEL in target
        ("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),                            // bad escape
        ("GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),                            // NUL
        ("G(T /x HTTP/1.1\r\nHost: x\r\n\r\n", 400),                              // method not a token
        ("BREW /x HTTP/1.1\r\nHost: x\r\n\r\n", 501),                             // unknown method
        ("GET /x HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("GET /x HTTP/0.9\r\nHost: x\r\n\r\n", 505),
        ("GET /x HTTP/1.x\r\nHost: x\r\n\r\n", 400),
        ("GET /x FTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\nHost : x\r\n\r\n", 400),                             // space before colon (§5.1)
        ("GET /x HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),                   // obs-fold (§5.2)
        ("GET /x HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", 400),
        ("GET /x HTTP/1.1\r\nHost: x\r\nX: a\u{1}b\r\n\r\n", 400),               // control in value
        ("GET /x HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),                        // bare CR
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n", 400),
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400),
        ("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400),
        ("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),  // chunked not final
        ("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501), // unknown coding
        ("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        ("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),          // TE in HTTP/1.0
        ("GET /x HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n", 417),
        ("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ])
    func malformedRequestsGetTheRightStatus(request: String, status: Int) {
        #expect { try parse(request) } throws: { ($0 as? HTTPParseError)?.status.code == status }
    }

    @Test func overLongTargetIs414AndGarbageIs400() {
        let limits = HeadLimits(maxRequestLineBytes: 64)
        let long = "GET /" + String(repeating: "a", count: 100)
        // Even before the line ends the parser knows it is too long.
        #expect { try parse(long, limits: limits) } throws: { ($0 as? HTTPParseError)?.status.code == 414 }
        #expect { try parse(long + " HTTP/1.1\r\nHost: x\r\n\r\n", limits: limits) } throws: { ($0 as? HTTPParseError)?.status.code == 414 }
        #expect { try parse(String(repeating: "z", count: 100), limits: limits) } throws: { ($0 as? HTTPParseError)?.status.code == 400 }
    }

    @Test func tooManyOrTooLargeHeadersAre431() {
        let limits = HeadLimits(maxHeaderBytes: 200, maxHeaderCount: 5)
        let many = "GET / HTTP/1.1\r\nHost: x\r\n" + (1...6).map { "X-\($0): y\r\n" }.joined() + "\r\n"
        #expect { try parse(many, limits: limits) } throws: { ($0 as? HTTPParseError)?.status.code == 431 }
        let large = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "b", count: 300) + "\r\n\r\n"
        #expect { try parse(large, limits: limits) } throws: { ($0 as? HTTPParseError)?.status.code == 431 }
        // Also while still incomplete: no need to wait for the end of an endless header.
        let endless = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "b", count: 300)
        #expect { try parse(endless, limits: limits) } throws: { ($0 as? HTTPParseError)?.status.code == 431 }
    }

    /// Found by the fuzzer (K1): a head at exactly the header limit, cut right after its final CR.
    @Test func aHeadAtTheLimitIsIncompleteNot431WhenCutBeforeTheLastLF() throws {
        let limits = HeadLimits(maxHeaderBytes: 64)
        let fields = "Host: x\r\nX: " + String(repeating: "a", count: 64 - 9 - 5) + "\r\n" // exactly 64 bytes of fields
        #expect(fields.utf8.count == 64)
        let head = Array(("GET / HTTP/1.1\r\n" + fields + "\r\n").utf8)
        #expect(try RequestHeadParser.parse(head.dropLast(), limits: limits) == .incomplete)
        guard case .complete = try RequestHeadParser.parse(head, limits: limits) else { Issue.record("expected a head"); return }
    }

    /// Found by the fuzzer (K2): token comparisons are ASCII byte comparisons, not Unicode ones.
    @Test(arguments: [
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chun\u{212A}ed\r\n\r\n", 400),  // Kelvin sign is not "k"
    ])
    func unicodeLookalikesAreNotTokens(request: String, status: Int) {
        #expect { try parse(request) } throws: { ($0 as? HTTPParseError)?.status.code == status }
    }

    @Test(arguments: [
        ("GET / HTTP/1.0\r\nConnection: \u{212A}eep-alive\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: close,\u{301}\r\n\r\n", false),
    ])
    func unicodeLookalikesDoNotChangeKeepAlive(request: String, keepAlive: Bool) throws {
        #expect(try #require(try parse(request)).keepAlive == keepAlive)
    }

    @Test func percentDecodingLooksAtBytes() {
        #expect(PercentDecoding.decode("%\u{301}") == nil) // K3: "%" + combining mark is still a bad escape
        #expect(PercentDecoding.decode("a+\u{301}b", plusAsSpace: true) == "a \u{301}b")
        #expect(Substring(" \u{301}x ").trimmingHTTPWhitespace() == "\u{301}x")
    }

    @Test(arguments: ["G", "GET / HTTP/1.1", "GET / HTTP/1.1\r\nHost: x", "GET / HTTP/1.1\r\nHost: x\r\n"])
    func incompleteHeadsWaitForMore(prefix: String) throws {
        #expect(try RequestHeadParser.parse(Array(prefix.utf8)) == .incomplete)
    }

    @Test func consumedStopsAtTheEndOfTheHead() throws {
        let text = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n"
        guard case .complete(let head, let consumed) = try RequestHeadParser.parse(Array(text.utf8)) else { Issue.record("incomplete"); return }
        #expect(head.path == "/a")
        #expect(String(decoding: Array(text.utf8)[consumed...], as: UTF8.self) == "GET /b HTTP/1.1\r\n")
    }

    @Test(arguments: [
        ("GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false),
        ("GET /x HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\r\n", true),
        ("GET /x HTTP/1.0\r\n\r\n", false),
        ("GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
    ])
    func keepAliveRules(request: String, keepAlive: Bool) throws {
        #expect(try #require(try parse(request)).keepAlive == keepAlive)
    }
}

@Suite struct ChunkedDecoderTests {
    private func decode(_ text: String, splitEvery step: Int = .max) throws -> (body: String, consumed: Int, done: Bool) {
        var decoder = ChunkedDecoder()
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        var consumed = 0
        while consumed < bytes.count, !decoder.isDone {
            let slice = bytes[consumed..<min(bytes.count, consumed + step)]
            let used = try slice.withUnsafeBufferPointer { try decoder.decode($0) { output += $0 } }
            consumed += used
            if used < slice.count { break } // the body ended inside this slice
        }
        return (String(decoding: output, as: UTF8.self), consumed, decoder.isDone)
    }

    @Test(arguments: [1, 2, 3, 7, 1000])
    func decodesAcrossAnySplit(step: Int) throws {
        let result = try decode("4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT", splitEvery: step)
        #expect(result.body == "Wikipedia in\r\n\r\nchunks.")
        #expect(result.done)
        #expect(result.consumed == "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n".utf8.count)
    }

    @Test(arguments: [
        ("zz\r\n", 400), ("\r\n", 400), ("4\r\nWikiXX", 400), ("FFFFFFFFFFFFFFFFFF\r\n", 413), ("0\r\nbad trailer\r\n\r\n", 400),
    ])
    func malformedChunks(text: String, status: Int) {
        #expect { try decode(text) } throws: { ($0 as? HTTPParseError)?.status.code == status }
    }
}

@Suite struct RouterTests {
    @Test func matchesParametersRestAnd405() {
        var router = Router()
        router.get("/api/backups/:slug") { _ in .text("") }
        router.delete("/api/backups/:slug") { _ in .text("") }
        router.get("/assets/*path") { _ in .text("") }
        if case .found(_, let parameters, _) = router.resolve(.get, "/api/backups/abc123") {
            #expect(parameters == ["slug": "abc123"])
        } else { Issue.record("no match") }
        if case .found(_, let parameters, _) = router.resolve(.head, "/assets/css/site.css") {
            #expect(parameters == ["path": "css/site.css"])
        } else { Issue.record("no match") }
        if case .methodNotAllowed(let allow) = router.resolve(.post, "/api/backups/abc") {
            #expect(allow == [.get, .head, .delete, .options])
        } else { Issue.record("expected 405") }
        if case .notFound = router.resolve(.get, "/api/backups/abc/extra") {} else { Issue.record("expected 404") }
    }
}
