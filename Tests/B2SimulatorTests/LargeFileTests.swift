import B2Simulator
import Foundation
import Testing

/// The large-file cycle: start, parts, list, finish (and its refusals), cancel.
/// The test configuration's minimum part size is 1000 bytes.
@Suite(.timeLimit(.minutes(1)))
struct LargeFileTests {
    func start(_ harness: Harness, _ session: Session, _ bucketID: String, name: String = "big.tar", info: [String: String] = [:]) async throws -> String {
        let json = try await harness.ok(session, "b2_start_large_file", ["bucketId": bucketID, "fileName": name,
                                                                          "contentType": "application/x-tar", "fileInfo": info])
        #expect(json["action"] as? String == "start")
        #expect(json["contentSha1"] as? String == "none")
        return try #require(json["fileId"] as? String)
    }

    @Test func threePartsBecomeOneFile() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize("bucket-key-id", "bucket-key")
            let bucketID = try await harness.bucketID(session)
            let parts = [bytes(1000, seed: 1), bytes(1500, seed: 2), bytes(10, seed: 3)]
            let whole = parts.flatMap { $0 }
            let info = ["large_file_sha1": sha1(whole), "src_last_modified_millis": "1700000000000"]
            let fileID = try await start(harness, session, bucketID, info: info)
            let target = try await harness.partURL(session, fileID: fileID)
            #expect(target.url.contains("/b2api/v4/b2_upload_part/\(fileID)/"))

            // Part 2 first uploaded with other bytes, then again: the second upload wins.
            #expect(try await harness.uploadPart(to: target, number: 2, bytes(1500, seed: 9)).status == 200)
            let first = try await harness.uploadPart(to: target, number: 1, parts[0])
            #expect(first.status == 200)
            #expect(first.json["partNumber"] as? Int == 1)
            #expect(first.json["contentLength"] as? Int == 1000)
            #expect(first.string("contentSha1") == sha1(parts[0]))
            #expect(first.string("fileId") == fileID)
            let second = try await harness.uploadPart(to: target, number: 2, parts[1] + Array(sha1(parts[1]).utf8), sha1: "hex_digits_at_end")
            #expect(second.status == 200)
            #expect(second.string("contentSha1") == sha1(parts[1]))
            #expect(second.json["contentLength"] as? Int == 1500)
            #expect(try await harness.uploadPart(to: target, number: 3, parts[2]).status == 200)

            let page = try await harness.ok(session, "b2_list_parts", ["fileId": fileID, "maxPartCount": 2])
            #expect((page["parts"] as? [[String: Any]])?.compactMap { $0["partNumber"] as? Int } == [1, 2])
            #expect((page["parts"] as? [[String: Any]])?.last?["contentSha1"] as? String == sha1(parts[1]))
            #expect(page["nextPartNumber"] as? Int == 3)
            let rest = try await harness.ok(session, "b2_list_parts", ["fileId": fileID, "startPartNumber": 3])
            #expect((rest["parts"] as? [[String: Any]])?.count == 1)
            #expect(rest["nextPartNumber"] is NSNull)

            let unfinished = try await harness.ok(session, "b2_list_unfinished_large_files", ["bucketId": bucketID])
            #expect((unfinished["files"] as? [[String: Any]])?.compactMap { $0["fileId"] as? String } == [fileID])
            #expect(await harness.simulator.unfinishedLargeFiles(bucket: "ha-backups").map(\.fileID) == [fileID])

            let wrong = try await harness.call(session, "b2_finish_large_file", ["fileId": fileID, "partSha1Array": [sha1(parts[0]), sha1(parts[0]), sha1(parts[2])]])
            #expect(wrong.status == 400)
            #expect(wrong.code == "part_sha1_mismatch")
            let short = try await harness.call(session, "b2_finish_large_file", ["fileId": fileID, "partSha1Array": [sha1(parts[0]), sha1(parts[1])]])
            #expect(short.status == 400)

            let finished = try await harness.ok(session, "b2_finish_large_file", ["fileId": fileID, "partSha1Array": parts.map(sha1)])
            #expect(finished["action"] as? String == "upload")
            #expect(finished["fileId"] as? String == fileID)
            #expect(finished["contentLength"] as? Int == whole.count)
            #expect(finished["contentSha1"] as? String == "none")
            #expect(finished["contentType"] as? String == "application/x-tar")
            #expect(finished["fileInfo"] as? [String: String] == info)
            #expect(await harness.simulator.unfinishedLargeFiles(bucket: "ha-backups").isEmpty)
            #expect(try await harness.simulator.contents(fileID: fileID) == whole)

            let download = try await harness.downloadByName(session, encodedName: "big.tar")
            #expect(download.body == whole)
            #expect(download.header("X-Bz-Content-Sha1") == "none")
            #expect(download.header("X-Bz-Info-large_file_sha1") == sha1(whole))
            // A range across the part boundaries.
            let across = try await harness.downloadByID(session, fileID: fileID, headers: [("Range", "bytes=990-2505")])
            #expect(across.status == 206)
            #expect(across.body == Array(whole[990...2505]))

            let again = try await harness.call(session, "b2_finish_large_file", ["fileId": fileID, "partSha1Array": parts.map(sha1)])
            #expect(again.status == 400)
            #expect(again.message == "No active upload for: \(fileID)")
            #expect(await harness.simulator.requestCount("b2_upload_part") == 4)
        }
    }

    @Test func finishRefusesSmallPartsOnePartAndMissingParts() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)

            let small = try await start(harness, session, bucketID, name: "small-parts.tar")
            let smallURL = try await harness.partURL(session, fileID: small)
            let smallParts = [bytes(999), bytes(1000)]
            for (index, part) in smallParts.enumerated() { #expect(try await harness.uploadPart(to: smallURL, number: index + 1, part).status == 200) }
            let tooSmall = try await harness.call(session, "b2_finish_large_file", ["fileId": small, "partSha1Array": smallParts.map(sha1)])
            #expect(tooSmall.status == 400)
            #expect(tooSmall.code == "bad_request")
            #expect(tooSmall.message?.contains("at least 1000 bytes") == true)

            let single = try await start(harness, session, bucketID, name: "one-part.tar")
            let singleURL = try await harness.partURL(session, fileID: single)
            #expect(try await harness.uploadPart(to: singleURL, number: 1, bytes(5000)).status == 200)
            let onePart = try await harness.call(session, "b2_finish_large_file", ["fileId": single, "partSha1Array": [sha1(bytes(5000))]])
            #expect(onePart.status == 400)
            #expect(onePart.code == "bad_request")
            #expect(onePart.message == "large files must have at least 2 parts")

            let gap = try await start(harness, session, bucketID, name: "gap.tar")
            let gapURL = try await harness.partURL(session, fileID: gap)
            #expect(try await harness.uploadPart(to: gapURL, number: 1, bytes(1000)).status == 200)
            #expect(try await harness.uploadPart(to: gapURL, number: 3, bytes(10)).status == 200)
            let missing = try await harness.call(session, "b2_finish_large_file", ["fileId": gap, "partSha1Array": [sha1(bytes(1000)), sha1(bytes(5)), sha1(bytes(10))]])
            #expect(missing.status == 400)
            #expect(missing.code == "missing_part")

            for number in ["0", "10001", "x"] {
                let reply = try await harness.send("POST", gapURL.url, headers: [("Authorization", gapURL.token), ("X-Bz-Part-Number", number),
                                                                                 ("X-Bz-Content-Sha1", sha1([1]))], body: [1])
                #expect(reply.status == 400, "part number \(number)")
            }
            // All three are still unfinished, oldest first.
            let unfinished = try await harness.ok(session, "b2_list_unfinished_large_files", ["bucketId": bucketID, "maxFileCount": 2])
            #expect((unfinished["files"] as? [[String: Any]])?.compactMap { $0["fileId"] as? String } == [small, single])
            #expect(unfinished["nextFileId"] as? String == gap)
            let prefixed = try await harness.ok(session, "b2_list_unfinished_large_files", ["bucketId": bucketID, "namePrefix": "gap"])
            #expect((prefixed["files"] as? [[String: Any]])?.count == 1)
        }
    }

    @Test func cancelRemovesTheFileAndItsParts() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            let fileID = try await start(harness, session, bucketID)
            let target = try await harness.partURL(session, fileID: fileID)
            #expect(try await harness.uploadPart(to: target, number: 1, bytes(1000)).status == 200)
            #expect(await harness.simulator.fileVersions(bucket: "ha-backups").map(\.action) == [.start])

            let cancelled = try await harness.ok(session, "b2_cancel_large_file", ["fileId": fileID])
            #expect(cancelled["fileId"] as? String == fileID)
            #expect(cancelled["fileName"] as? String == "big.tar")
            #expect(cancelled["bucketId"] as? String == bucketID)
            #expect(cancelled["accountId"] as? String == session.accountID)
            #expect(await harness.simulator.fileVersions(bucket: "ha-backups").isEmpty)

            let again = try await harness.call(session, "b2_cancel_large_file", ["fileId": fileID])
            #expect(again.status == 400)
            #expect(again.code == "bad_request")
            #expect(again.message == "No active upload for: \(fileID)")
            let lateFinish = try await harness.call(session, "b2_finish_large_file", ["fileId": "4_zunknown", "partSha1Array": []])
            #expect(lateFinish.message == "No active upload for: 4_zunknown")
            // The part URL of a cancelled file takes no more parts.
            let late = try await harness.uploadPart(to: target, number: 2, bytes(10))
            #expect(late.status == 400)

            // delete_file_version on an unfinished large file cancels it too.
            let other = try await start(harness, session, bucketID, name: "other.tar")
            _ = try await harness.ok(session, "b2_delete_file_version", ["fileId": other, "fileName": "other.tar"])
            #expect(await harness.simulator.unfinishedLargeFiles(bucket: "ha-backups").isEmpty)
        }
    }
}
