import B2Simulator
import Foundation
import Testing

/// Versions, hide markers, deletion and pagination: what retention needs.
@Suite(.timeLimit(.minutes(1)))
struct ListingTests {
    @Test func versionsHideAndDeleteWithPagination() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            var ids: [String: [String]] = [:] // name → file IDs, oldest first
            for (name, seed) in [("a.tar", 1), ("a.tar", 2), ("a.tar", 3), ("b.tar", 4), ("c/d.tar", 5)] {
                let file = try await harness.uploadOK(session, bucketID: bucketID, name: name, bytes(10, seed: UInt8(seed)))
                ids[name, default: []].append(try #require(file["fileId"] as? String))
            }
            let hidden = try await harness.ok(session, "b2_hide_file", ["bucketId": bucketID, "fileName": "b.tar"])
            #expect(hidden["action"] as? String == "hide")
            #expect(hidden["contentLength"] as? Int == 0)
            #expect(hidden["contentSha1"] is NSNull)
            #expect(hidden["contentType"] as? String == "application/x-bz-hide-marker")
            let markerID = try #require(hidden["fileId"] as? String)

            // All versions in pages of two: name order, newest first within a name, hide marker included.
            var listed: [(String, String, String)] = []
            var start: [String: Any] = [:]
            var pages = 0
            repeat {
                var parameters: [String: Any] = ["bucketId": bucketID, "maxFileCount": 2]
                parameters.merge(start) { $1 }
                let page = try await harness.ok(session, "b2_list_file_versions", parameters)
                let files = try #require(page["files"] as? [[String: Any]])
                #expect(files.count <= 2)
                listed += files.map { ($0["fileName"] as? String ?? "", $0["fileId"] as? String ?? "", $0["action"] as? String ?? "") }
                pages += 1
                if let name = page["nextFileName"] as? String {
                    start = ["startFileName": name, "startFileId": try #require(page["nextFileId"] as? String)]
                } else {
                    #expect(page["nextFileId"] is NSNull)
                    start = [:]
                }
            } while !start.isEmpty && pages < 10
            #expect(pages == 3)
            let expected = [("a.tar", ids["a.tar"]![2], "upload"), ("a.tar", ids["a.tar"]![1], "upload"), ("a.tar", ids["a.tar"]![0], "upload"),
                            ("b.tar", markerID, "hide"), ("b.tar", ids["b.tar"]![0], "upload"), ("c/d.tar", ids["c/d.tar"]![0], "upload")]
            #expect(listed.map { "\($0.0) \($0.1) \($0.2)" } == expected.map { "\($0.0) \($0.1) \($0.2)" })
            let inspected = await harness.simulator.fileVersions(bucket: "ha-backups")
            #expect(inspected.map(\.fileID) == expected.map(\.1))
            #expect(inspected.map(\.action) == [.upload, .upload, .upload, .hide, .upload, .upload])
            #expect(inspected[3].contentSha1 == nil)

            // Names: the current version of each visible name; b.tar is hidden.
            let names = try await harness.ok(session, "b2_list_file_names", ["bucketId": bucketID])
            #expect((names["files"] as? [[String: Any]])?.compactMap { $0["fileName"] as? String } == ["a.tar", "c/d.tar"])
            #expect((names["files"] as? [[String: Any]])?.first?["fileId"] as? String == ids["a.tar"]![2])
            #expect(names["nextFileName"] is NSNull)
            #expect(names["nextFileId"] == nil)
            let firstPage = try await harness.ok(session, "b2_list_file_names", ["bucketId": bucketID, "maxFileCount": 1])
            #expect(firstPage["nextFileName"] as? String == "c/d.tar")
            let folders = try await harness.ok(session, "b2_list_file_names", ["bucketId": bucketID, "delimiter": "/"])
            let folderEntries = try #require(folders["files"] as? [[String: Any]])
            #expect(folderEntries.compactMap { $0["fileName"] as? String } == ["a.tar", "c/"])
            #expect(folderEntries.last?["action"] as? String == "folder")
            let prefixed = try await harness.ok(session, "b2_list_file_versions", ["bucketId": bucketID, "prefix": "c/"])
            #expect((prefixed["files"] as? [[String: Any]])?.compactMap { $0["fileName"] as? String } == ["c/d.tar"])
            let viaGet = try await harness.send("GET", "\(session.apiURL)/b2api/v4/b2_list_file_names?bucketId=\(bucketID)&maxFileCount=1",
                                                headers: [("Authorization", session.token)])
            #expect((viaGet.json["files"] as? [[String: Any]])?.count == 1)
            let tooMany = try await harness.call(session, "b2_list_file_versions", ["bucketId": bucketID, "maxFileCount": 10001])
            #expect(tooMany.status == 400)

            // Hiding rules.
            let again = try await harness.call(session, "b2_hide_file", ["bucketId": bucketID, "fileName": "b.tar"])
            #expect(again.status == 400)
            #expect(again.code == "already_hidden")
            let nothing = try await harness.call(session, "b2_hide_file", ["bucketId": bucketID, "fileName": "zzz.tar"])
            #expect(nothing.status == 400)
            #expect(nothing.code == "no_such_file")
            #expect(try await harness.downloadByName(session, encodedName: "b.tar").status == 404)

            // Deleting the newest version makes the previous one current.
            let deleted = try await harness.ok(session, "b2_delete_file_version", ["fileName": "a.tar", "fileId": ids["a.tar"]![2]])
            #expect(deleted["fileId"] as? String == ids["a.tar"]![2])
            #expect(deleted["fileName"] as? String == "a.tar")
            #expect(try await harness.downloadByName(session, encodedName: "a.tar").body == bytes(10, seed: 2))
            // Deleting the hide marker makes b.tar visible again.
            _ = try await harness.ok(session, "b2_delete_file_version", ["fileName": "b.tar", "fileId": markerID])
            #expect(try await harness.downloadByName(session, encodedName: "b.tar").body == bytes(10, seed: 4))

            let gone = try await harness.call(session, "b2_delete_file_version", ["fileName": "a.tar", "fileId": ids["a.tar"]![2]])
            #expect(gone.status == 400)
            #expect(gone.code == "file_not_present")
            let wrongName = try await harness.call(session, "b2_delete_file_version", ["fileName": "x.tar", "fileId": ids["a.tar"]![1]])
            #expect(wrongName.code == "file_not_present")

            let info = try await harness.ok(session, "b2_get_file_info", ["fileId": ids["a.tar"]![0]])
            #expect(info["fileName"] as? String == "a.tar")
            #expect(info["contentSha1"] as? String == sha1(bytes(10, seed: 1)))
            let missingInfo = try await harness.call(session, "b2_get_file_info", ["fileId": ids["a.tar"]![2]])
            #expect(missingInfo.status == 404)
            #expect(missingInfo.code == "not_found")
        }
    }

    @Test func emptyBucketListsNothing() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session, "other-bucket")
            let versions = try await harness.ok(session, "b2_list_file_versions", ["bucketId": bucketID])
            #expect((versions["files"] as? [Any])?.isEmpty == true)
            #expect(versions["nextFileName"] is NSNull)
            #expect(versions["nextFileId"] is NSNull)
        }
    }
}
