import B2Client
import Storage

/// The upload engine's resume journal, kept in the state database.
struct StoredUploadJournal: UploadJournal {
    let store: StateStore

    func record(bucketID: String, fileName: String) async throws -> LargeUploadRecord? {
        try await store.largeUpload(bucketID: bucketID, fileName: fileName).map {
            LargeUploadRecord(bucketID: $0.bucketID, fileName: $0.fileName, fileID: $0.fileID, localPath: $0.localPath, fileSize: $0.fileSize,
                              modifiedMillis: $0.modifiedMillis, partSize: $0.partSize, sha1: $0.sha1, partSHA1s: $0.partSHA1s)
        }
    }

    func save(_ record: LargeUploadRecord) async throws {
        try await store.saveLargeUpload(StoredLargeUpload(fileID: record.fileID, bucketID: record.bucketID, fileName: record.fileName,
                                                          localPath: record.localPath, fileSize: record.fileSize, modifiedMillis: record.modifiedMillis,
                                                          partSize: record.partSize, sha1: record.sha1, partSHA1s: record.partSHA1s))
    }

    func partConfirmed(fileID: String, partNumber: Int, sha1: String) async throws {
        try await store.confirmLargeUploadPart(fileID: fileID, partNumber: partNumber, sha1: sha1)
    }

    func confirmedParts(fileID: String) async throws -> [Int: String] {
        try await store.confirmedLargeUploadParts(fileID: fileID)
    }

    func remove(fileID: String) async throws {
        try await store.removeLargeUpload(fileID: fileID)
    }
}

/// A journal that keeps nothing: for stores that only read, or write small files (the catalog index).
struct MemoryLessJournal: UploadJournal {
    func record(bucketID: String, fileName: String) async throws -> LargeUploadRecord? { nil }
    func save(_ record: LargeUploadRecord) async throws {}
    func partConfirmed(fileID: String, partNumber: Int, sha1: String) async throws {}
    func confirmedParts(fileID: String) async throws -> [Int: String] { [:] }
    func remove(fileID: String) async throws {}
}
