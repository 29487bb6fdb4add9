import B2Simulator
import Foundation
import HTTPClient
import Testing

/// Every fault rule and B2's `X-Bz-Test-Mode` header.
@Suite(.timeLimit(.minutes(1)))
struct FaultTests {
    @Test func everyNthPartFailsWith503AndRetiresItsURL() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            let fileID = try #require(try await harness.ok(session, "b2_start_large_file", ["bucketId": bucketID, "fileName": "f.tar", "contentType": "b2/x-auto"])["fileId"] as? String)
            await harness.simulator.faults.failUploadParts(every: 2)
            let target = try await harness.partURL(session, fileID: fileID)
            #expect(try await harness.uploadPart(to: target, number: 1, bytes(1000)).status == 200)
            let failed = try await harness.uploadPart(to: target, number: 2, bytes(1000))
            #expect(failed.status == 503)
            #expect(failed.code == "service_unavailable")
            // "You can use this URL until it returns a 50X error": this one is done.
            let reused = try await harness.uploadPart(to: target, number: 2, bytes(1000))
            #expect(reused.status == 503)
            let fresh = try await harness.partURL(session, fileID: fileID)
            #expect(try await harness.uploadPart(to: fresh, number: 2, bytes(1000)).status == 200)
            let parts = try await harness.ok(session, "b2_list_parts", ["fileId": fileID])
            #expect((parts["parts"] as? [[String: Any]])?.count == 2)
            #expect(await harness.simulator.requestCount("b2_upload_part") == 4)
        }
    }

    @Test func tooManyRequestsCarriesRetryAfter() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            await harness.simulator.faults.tooManyRequests(operation: "b2_list_buckets", retryAfterSeconds: 7, times: 2)
            for _ in 0..<2 {
                let limited = try await harness.call(session, "b2_list_buckets", ["accountId": session.accountID])
                #expect(limited.status == 429)
                #expect(limited.code == "too_many_requests")
                #expect(limited.header("Retry-After") == "7")
            }
            #expect(try await harness.call(session, "b2_list_buckets", ["accountId": session.accountID]).status == 200)
            #expect(await harness.simulator.faults.pendingRuleCount == 0)
        }
    }

    @Test func scriptedFailuresUseTheGivenStatus() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            await harness.simulator.faults.fail(operation: "b2_get_upload_url", status: 500, code: "internal_error")
            let failed = try await harness.call(session, "b2_get_upload_url", ["bucketId": try await harness.bucketID(session)])
            #expect(failed.status == 500)
            #expect(failed.code == "internal_error")
            #expect(failed.json["status"] as? Int == 500)

            // On an upload call a scripted 5xx retires the URL, as a failing pod would.
            let target = try await harness.uploadURL(session, bucketID: try await harness.bucketID(session))
            await harness.simulator.faults.fail(operation: "b2_upload_file", status: 503, code: "service_unavailable")
            #expect(try await harness.upload(to: target, encodedName: "a.bin", [1]).status == 503)
            #expect(try await harness.upload(to: target, encodedName: "a.bin", [1]).status == 503)
            let fresh = try await harness.uploadURL(session, bucketID: try await harness.bucketID(session))
            #expect(try await harness.upload(to: fresh, encodedName: "a.bin", [1]).status == 200)
        }
    }

    @Test func expiredTokensAre401ForCallsUploadsAndDownloads() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            _ = try await harness.uploadOK(session, bucketID: bucketID, name: "a.bin", [1, 2, 3])
            let target = try await harness.uploadURL(session, bucketID: bucketID)
            await harness.simulator.faults.expireAuthTokens()

            let call = try await harness.call(session, "b2_list_buckets", ["accountId": session.accountID])
            #expect(call.status == 401)
            #expect(call.code == "expired_auth_token")
            let upload = try await harness.upload(to: target, encodedName: "b.bin", [4])
            #expect(upload.status == 401)
            #expect(upload.code == "expired_auth_token")
            let download = try await harness.downloadByName(session, encodedName: "a.bin")
            #expect(download.status == 401)
            #expect(download.code == "expired_auth_token")

            // Re-authorizing and a new upload URL recover.
            let renewed = try await harness.authorize()
            let fresh = try await harness.uploadURL(renewed, bucketID: bucketID)
            #expect(try await harness.upload(to: fresh, encodedName: "b.bin", [4]).status == 200)
        }
    }

    @Test func resetConnectionDropsAnUploadMidBodyAndStoresNothing() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let target = try await harness.uploadURL(session, bucketID: try await harness.bucketID(session))
            await harness.simulator.faults.resetConnection(operation: "b2_upload_file", afterBytes: 1000)
            await #expect(throws: HTTPClientError.self) {
                _ = try await harness.upload(to: target, encodedName: "cut.bin", bytes(200_000))
            }
            #expect(await harness.simulator.fileVersions(bucket: "ha-backups").isEmpty)
            // The token was released: the same URL works again.
            #expect(try await harness.upload(to: target, encodedName: "whole.bin", bytes(2000)).status == 200)

            await harness.simulator.faults.resetConnection(operation: "b2_list_file_names", afterBytes: 0)
            await #expect(throws: HTTPClientError.self) {
                _ = try await harness.call(session, "b2_list_file_names", ["bucketId": "x"])
            }
        }
    }

    @Test func truncatedAndCorruptedDownloads() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let data = bytes(600_000)
            _ = try await harness.uploadOK(session, bucketID: try await harness.bucketID(session), name: "d.bin", data)

            await harness.simulator.faults.truncateDownload(afterBytes: 300_000)
            await #expect(throws: HTTPClientError.self) {
                _ = try await harness.downloadByName(session, encodedName: "d.bin")
            }
            #expect(try await harness.downloadByName(session, encodedName: "d.bin").body == data)

            await harness.simulator.faults.corruptDownload()
            // HEAD has no body and leaves the rule for the next GET.
            #expect(try await harness.downloadByName(session, encodedName: "d.bin", method: "HEAD").status == 200)
            let corrupted = try await harness.downloadByName(session, encodedName: "d.bin")
            #expect(corrupted.status == 200)
            #expect(corrupted.body.count == data.count)
            #expect(zip(corrupted.body, data).filter { $0 != $1 }.count == 1)
            #expect(corrupted.header("X-Bz-Content-Sha1") == sha1(data))
            #expect(sha1(corrupted.body) != sha1(data))
            #expect(try await harness.downloadByName(session, encodedName: "d.bin").body == data)
        }
    }

    @Test func capExceededLastsUntilCleared() async throws {
        try await withSimulator { harness in
            let session = try await harness.authorize()
            let target = try await harness.uploadURL(session, bucketID: try await harness.bucketID(session))
            await harness.simulator.faults.capExceeded(operation: "b2_upload_file")
            for _ in 0..<2 {
                let capped = try await harness.upload(to: target, encodedName: "c.bin", [1])
                #expect(capped.status == 403)
                #expect(capped.code == "cap_exceeded")
            }
            await harness.simulator.faults.clear()
            #expect(try await harness.upload(to: target, encodedName: "c.bin", [1]).status == 200)
        }
    }

    @Test func testModeHeadersAreHonoured() async throws {
        try await withSimulator(.make(testModeFailureInterval: 2)) { harness in
            let session = try await harness.authorize()
            let bucketID = try await harness.bucketID(session)
            let failSome = [("X-Bz-Test-Mode", "fail_some_uploads")]
            var statuses: [Int] = []
            for index in 0..<4 {
                let target = try await harness.uploadURL(session, bucketID: bucketID)
                statuses.append(try await harness.upload(to: target, encodedName: "t\(index).bin", [UInt8(index)], headers: failSome).status)
            }
            #expect(statuses == [200, 503, 200, 503])

            let capped = try await harness.call(session, "b2_list_buckets", ["accountId": session.accountID], headers: [("X-Bz-Test-Mode", "force_cap_exceeded")])
            #expect(capped.status == 403)
            #expect(capped.code == "cap_exceeded")

            let expire = [("X-Bz-Test-Mode", "expire_some_account_authorization_tokens")]
            #expect(try await harness.call(session, "b2_list_buckets", ["accountId": session.accountID], headers: expire).status == 200)
            let expired = try await harness.call(session, "b2_list_buckets", ["accountId": session.accountID], headers: expire)
            #expect(expired.code == "expired_auth_token")
            #expect(try await harness.call(session, "b2_list_buckets", ["accountId": session.accountID]).code == "expired_auth_token")
        }
    }
}
