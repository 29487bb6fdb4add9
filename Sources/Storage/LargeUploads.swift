import Foundation

/// A large upload in progress, as stored: enough to resume it after a restart or kill -9.
public struct StoredLargeUpload: Sendable, Hashable {
    public var fileID: String
    public var bucketID: String
    public var fileName: String
    public var localPath: String
    public var fileSize: Int64
    public var modifiedMillis: Int64
    public var partSize: Int64
    public var sha1: String
    public var partSHA1s: [String]

    public init(fileID: String, bucketID: String, fileName: String, localPath: String, fileSize: Int64, modifiedMillis: Int64,
                partSize: Int64, sha1: String, partSHA1s: [String]) {
        self.fileID = fileID
        self.bucketID = bucketID
        self.fileName = fileName
        self.localPath = localPath
        self.fileSize = fileSize
        self.modifiedMillis = modifiedMillis
        self.partSize = partSize
        self.sha1 = sha1
        self.partSHA1s = partSHA1s
    }
}

extension StateStore {
    public func largeUpload(bucketID: String, fileName: String) throws -> StoredLargeUpload? {
        try largeUploadRow(bucketID: bucketID, fileName: fileName)
    }

    /// Records a started upload, replacing any earlier record for the same name.
    public func saveLargeUpload(_ upload: StoredLargeUpload) throws {
        let hashes = String(decoding: try JSONEncoder().encode(upload.partSHA1s), as: UTF8.self)
        try write { connection in
            try connection.query("DELETE FROM large_uploads WHERE bucket_id = ? AND file_name = ?", [.text(upload.bucketID), .text(upload.fileName)])
            try connection.query("""
                INSERT INTO large_uploads (file_id, bucket_id, file_name, local_path, file_size, modified_ms, part_size, sha1, part_sha1s)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(upload.fileID), .text(upload.bucketID), .text(upload.fileName), .text(upload.localPath), .integer(upload.fileSize),
                      .integer(upload.modifiedMillis), .integer(upload.partSize), .text(upload.sha1), .text(hashes)])
        }
    }

    public func confirmLargeUploadPart(fileID: String, partNumber: Int, sha1: String) throws {
        try write { connection in
            try connection.query("INSERT OR REPLACE INTO large_upload_parts (file_id, part_number, sha1) VALUES (?, ?, ?)",
                                 [.text(fileID), .integer(Int64(partNumber)), .text(sha1)])
        }
    }

    public func confirmedLargeUploadParts(fileID: String) throws -> [Int: String] {
        var parts: [Int: String] = [:]
        for row in try read({ try $0.query("SELECT part_number, sha1 FROM large_upload_parts WHERE file_id = ?", [.text(fileID)]) }) {
            if let number = row["part_number"]?.int, let sha1 = row["sha1"]?.string { parts[Int(number)] = sha1 }
        }
        return parts
    }

    public func removeLargeUpload(fileID: String) throws {
        try write { try $0.query("DELETE FROM large_uploads WHERE file_id = ?", [.text(fileID)]) }
    }

    public func largeUploads() throws -> [StoredLargeUpload] {
        try read { try $0.query("SELECT * FROM large_uploads ORDER BY started_at") }.compactMap(Self.decode)
    }

    private func largeUploadRow(bucketID: String, fileName: String) throws -> StoredLargeUpload? {
        try read { try $0.query("SELECT * FROM large_uploads WHERE bucket_id = ? AND file_name = ?", [.text(bucketID), .text(fileName)]) }
            .first.flatMap(Self.decode)
    }

    private static func decode(_ row: Row) -> StoredLargeUpload? {
        guard let fileID = row["file_id"]?.string, let bucketID = row["bucket_id"]?.string, let fileName = row["file_name"]?.string,
              let localPath = row["local_path"]?.string, let size = row["file_size"]?.int, let modified = row["modified_ms"]?.int,
              let partSize = row["part_size"]?.int, let sha1 = row["sha1"]?.string, let hashes = row["part_sha1s"]?.string,
              let partSHA1s = try? JSONDecoder().decode([String].self, from: Data(hashes.utf8)) else { return nil }
        return StoredLargeUpload(fileID: fileID, bucketID: bucketID, fileName: fileName, localPath: localPath, fileSize: size,
                                 modifiedMillis: modified, partSize: partSize, sha1: sha1, partSHA1s: partSHA1s)
    }
}
