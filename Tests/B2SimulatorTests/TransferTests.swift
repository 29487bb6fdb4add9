import TestSupport
import B2Simulator
import Foundation
import Testing

/// `b2_upload_file` and downloads: checksums, names, info headers, ranges, one request per upload token.
@Suite(.timeLimit(.minutes(1)))
struct TransferTests {
    @Test func smallUploadThenDownloadByNameAndID() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize("bucket-key-id", "bucket-key")
            let bucketID = try await harness.bucketID(session)
            let data = bytes(300_000) // several server reads and download chunks
            let file = try await harness.uploadOK(session, bucketID: bucketID, name: "backups/full.tar", data, headers: [
                ("X-Bz-Info-src_last_modified_millis", "1700000000000"),
                ("X-Bz-Info-Author", "J%C3%B6rg+Smith"),
            ])
            #expect(file["action"] as? String == "upload")
            #expect(file["fileName"] as? String == "backups/full.tar")
            #expect(file["contentLength"] as? Int == data.count)
            #expect(file["contentSha1"] as? String == sha1(data))
            #expect(file["contentType"] as? String == "application/octet-stream")
            #expect(file["bucketId"] as? String == bucketID)
            #expect(file["accountId"] as? String == session.accountID)
            #expect(file["uploadTimestamp"] is Int)
            // Keys are lower-cased and values percent-decoded (`+` is a space).
            #expect(file["fileInfo"] as? [String: String] == ["src_last_modified_millis": "1700000000000", "author": "Jörg Smith"])
            #expect((file["serverSideEncryption"] as? [String: String])?["mode"] == "SSE-B2")
            let fileID = try #require(file["fileId"] as? String)
            #expect(try await harness.simulator.contents(fileID: fileID) == data)

            let byName = try await harness.downloadByName(session, encodedName: "backups/full.tar")
            #expect(byName.status == 200)
            #expect(byName.body == data)
            #expect(byName.header("Content-Length") == String(data.count))
            #expect(byName.header("X-Bz-File-Id") == fileID)
            #expect(byName.header("X-Bz-File-Name") == "backups/full.tar")
            #expect(byName.header("X-Bz-Content-Sha1") == sha1(data))
            #expect(byName.header("X-Bz-Upload-Timestamp") == String(file["uploadTimestamp"] as? Int ?? -1))
            #expect(byName.header("X-Bz-Info-src_last_modified_millis") == "1700000000000")
            #expect(byName.header("X-Bz-Info-author") == "J%C3%B6rg%20Smith")
            #expect(byName.header("Content-Type") == "application/octet-stream")

            let byID = try await harness.downloadByID(session, fileID: fileID)
            #expect(byID.status == 200)
            #expect(byID.body == data)
            #expect(byID.header("X-Bz-File-Name") == "backups/full.tar")

            // The token may also travel in the query; without one, downloads are refused.
            let query = try await harness.send("GET", "\(session.downloadURL)/file/ha-backups/backups/full.tar?Authorization=\(session.token)")
            #expect(query.status == 200)
            let anonymous = try await harness.send("GET", "\(session.downloadURL)/file/ha-backups/backups/full.tar")
            #expect(anonymous.status == 401)
            #expect(await harness.simulator.requestCount("b2_download_file_by_name") == 3)
        }
    }

    @Test func rangesHeadAndMissingFiles() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            let data = bytes(1000)
            let file = try await harness.uploadOK(session, bucketID: bucketID, name: "r.bin", data)

            let middle = try await harness.downloadByName(session, encodedName: "r.bin", headers: [("Range", "bytes=10-19")])
            #expect(middle.status == 206)
            #expect(middle.header("Content-Range") == "bytes 10-19/1000")
            #expect(middle.body == Array(data[10...19]))
            let open = try await harness.downloadByName(session, encodedName: "r.bin", headers: [("Range", "bytes=990-")])
            #expect(open.body == Array(data[990...]))
            let suffix = try await harness.downloadByName(session, encodedName: "r.bin", headers: [("Range", "bytes=-5")])
            #expect(suffix.status == 206)
            #expect(suffix.body == Array(data[995...]))
            let clamped = try await harness.downloadByID(session, fileID: try #require(file["fileId"] as? String), headers: [("Range", "bytes=900-5000")])
            #expect(clamped.header("Content-Range") == "bytes 900-999/1000")
            #expect(clamped.body.count == 100)

            for range in ["bytes=1000-", "bytes=5-2", "bytes=abc"] {
                let refused = try await harness.downloadByName(session, encodedName: "r.bin", headers: [("Range", range)])
                #expect(refused.status == 416, "\(range)")
                #expect(refused.code == "range_not_satisfiable")
                #expect(refused.header("Content-Range") == "bytes */1000")
            }

            let head = try await harness.downloadByName(session, encodedName: "r.bin", method: "HEAD")
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == "1000")
            #expect(head.header("X-Bz-Content-Sha1") == sha1(data))
            #expect(head.body.isEmpty)

            let missing = try await harness.downloadByName(session, encodedName: "nope.bin")
            #expect(missing.status == 404)
            #expect(missing.code == "not_found")
            let missingID = try await harness.downloadByID(session, fileID: "4_zdeadbeef_f000000000000")
            #expect(missingID.status == 404)
        }
    }

    @Test func sha1IsVerifiedInEveryForm() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            let target = try await harness.uploadURL(session, bucketID: bucketID)
            let data = bytes(5000)

            let mismatch = try await harness.upload(to: target, encodedName: "a.bin", data, sha1: sha1([1, 2, 3]))
            #expect(mismatch.status == 400)
            #expect(mismatch.code == "bad_request")
            #expect(mismatch.message == "Sha1 did not match data received")

            // hex_digits_at_end: the 40 digits follow the data and count in Content-Length.
            let trailed = try await harness.upload(to: target, encodedName: "b.bin", data + Array(sha1(data).utf8), sha1: "hex_digits_at_end")
            #expect(trailed.status == 200)
            #expect(trailed.json["contentLength"] as? Int == data.count)
            #expect(trailed.string("contentSha1") == sha1(data))
            #expect(try await harness.simulator.contents(fileID: try #require(trailed.string("fileId"))) == data)
            let badTrailer = try await harness.upload(to: target, encodedName: "c.bin", data + Array(sha1([9]).utf8), sha1: "hex_digits_at_end")
            #expect(badTrailer.status == 400)
            #expect(badTrailer.message == "Sha1 did not match data received")

            let unverified = try await harness.upload(to: target, encodedName: "d.bin", data, sha1: "do_not_verify")
            #expect(unverified.status == 200)
            #expect(unverified.string("contentSha1") == "unverified:\(sha1(data))")

            let garbage = try await harness.upload(to: target, encodedName: "e.bin", data, sha1: "not-a-sha1")
            #expect(garbage.status == 400)

            let stored = await harness.simulator.fileVersions(bucket: "ha-backups").map(\.fileName)
            #expect(stored == ["b.bin", "d.bin"])
        }
    }

    @Test func headerRulesAreEnforced() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let target = try await harness.uploadURL(session, bucketID: try await harness.bucketID(session))
            let cases: [(String, [(String, String)])] = [
                ("//double", []),
                ("/leading", []),
                ("trailing/", []),
                ("bad%ZZescape", []),
                ("ok.bin", [("X-Bz-Info-b2-secret", "x")]),
                ("ok.bin", [("X-Bz-Info-big", String(repeating: "x", count: 7000))]),
                ("ok.bin", [("Content-Disposition", "attachment")]),
            ]
            for (name, headers) in cases {
                let reply = try await harness.upload(to: target, encodedName: name, [1], headers: headers)
                #expect(reply.status == 400, "\(name) \(headers)")
                #expect(reply.code == "bad_request")
            }
            let noName = try await harness.send("POST", target.url, headers: [("Authorization", target.token), ("Content-Type", "text/plain"),
                                                                              ("X-Bz-Content-Sha1", sha1([1]))], body: [1])
            #expect(noName.status == 400)
            let auto = try await harness.upload(to: target, encodedName: "notes.txt", [65], contentType: "b2/x-auto",
                                                headers: [("X-Bz-Info-b2-content-disposition", "attachment")])
            #expect(auto.string("contentType") == "text/plain")
            let download = try await harness.downloadByName(session, encodedName: "notes.txt")
            #expect(download.header("Content-Disposition") == "attachment")
            let wrongToken = try await harness.upload(to: UploadURL(url: target.url, token: session.token), encodedName: "x", [1])
            #expect(wrongToken.status == 401)
            #expect(wrongToken.code == "bad_auth_token")
        }
    }

    @Test func namesWithSpacesPlusAndUnicodeRoundTrip() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            let name = "backups/My Backup+1 ü €.tar"
            // Space as `+` on upload, as `%20` on download: both are B2 encodings of a space.
            let file = try await harness.uploadOK(session, bucketID: bucketID, name: "backups/My+Backup%2B1+%C3%BC+%E2%82%AC.tar", [7, 7, 7])
            #expect(file["fileName"] as? String == name)
            let listed = try await harness.ok(session, "b2_list_file_names", ["bucketId": bucketID])
            #expect((listed["files"] as? [[String: Any]])?.first?["fileName"] as? String == name)

            let download = try await harness.downloadByName(session, encodedName: "backups/My%20Backup%2B1%20%C3%BC%20%E2%82%AC.tar")
            #expect(download.status == 200)
            #expect(download.body == [7, 7, 7])
            let header = try #require(download.header("X-Bz-File-Name"))
            #expect(header == "backups/My%20Backup%2B1%20%C3%BC%20%E2%82%AC.tar")
            #expect(header.removingPercentEncoding == name)
        }
    }

    @Test func anUploadTokenServesOneRequestAtATime() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let target = try await harness.uploadURL(session, bucketID: try await harness.bucketID(session))
            let path = try #require(URLComponents(string: target.url)?.path)
            let data = bytes(2000)
            // Hold an upload open: the server says 100 Continue only once the handler has claimed the
            // token and asks for the body, so the second request below is certain to overlap.
            let held = try RawClient(url: target.url)
            try await held.send("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(target.token)\r\nX-Bz-File-Name: held.bin\r\n"
                + "Content-Type: application/octet-stream\r\nX-Bz-Content-Sha1: \(sha1(data))\r\nContent-Length: \(data.count)\r\nExpect: 100-continue\r\n\r\n")
            let interim = try await held.readResponse()
            #expect(interim.status == 100)

            let concurrent = try await harness.upload(to: target, encodedName: "second.bin", [1, 2, 3])
            #expect(concurrent.status == 400)
            #expect(concurrent.code == "auth_token_limit")
            #expect(concurrent.message == "more than one upload using auth token \(target.token)")

            try await held.send(data)
            let finished = try await held.readResponse()
            #expect(finished.status == 200)
            #expect(finished.json["fileName"] as? String == "held.bin")
            // Released: the same URL takes the next upload.
            let after = try await harness.upload(to: target, encodedName: "third.bin", [1, 2, 3])
            #expect(after.status == 200)
        }
    }

    @Test func chunkedUploadsAreRefused() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let target = try await harness.uploadURL(session, bucketID: try await harness.bucketID(session))
            let path = try #require(URLComponents(string: target.url)?.path)
            let connection = try RawClient(url: target.url)
            try await connection.send("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(target.token)\r\nX-Bz-File-Name: c.bin\r\n"
                + "Content-Type: application/octet-stream\r\nX-Bz-Content-Sha1: \(sha1([1, 2, 3]))\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n\u{1}\u{2}\u{3}\r\n0\r\n\r\n")
            let reply = try await connection.readResponse()
            #expect(reply.status == 411)
            #expect(reply.json["code"] as? String == "length_required")
            #expect(reply.json["status"] as? Int == 411)
            #expect(await harness.simulator.fileVersions(bucket: "ha-backups").isEmpty)
        }
    }

    @Test func tooLargeSimpleUploadIsRefusedBeforeTheBody() async throws {
        var configuration = B2Simulator.Configuration.make()
        configuration.maxSimpleUploadBytes = 100
        try await withSimulator(configuration) { harness in
            let session = try await harness.authorize()
            let target = try await harness.uploadURL(session, bucketID: try await harness.bucketID(session))
            let reply = try await harness.upload(to: target, encodedName: "big.bin", bytes(101))
            #expect(reply.status == 400)
            #expect(reply.code == "bad_request")
            let fits = try await harness.upload(to: target, encodedName: "fits.bin", bytes(100))
            #expect(fits.status == 200)
        }
    }
}
