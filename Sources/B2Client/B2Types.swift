import Foundation

/// An application key. The secret never appears in descriptions or logs.
public struct B2Credentials: Sendable, Hashable, CustomStringConvertible {
    public let keyID: String
    public let applicationKey: String
    public init(keyID: String, applicationKey: String) {
        self.keyID = keyID
        self.applicationKey = applicationKey
    }
    public var description: String { "B2Credentials(keyID: \(keyID), applicationKey: <redacted>)" }
}

/// What `b2_authorize_account` grants (v3 or v4 response, normalised).
public struct B2Authorization: Sendable, Hashable {
    public let accountID: String
    public let token: String
    public let apiURL: String
    public let downloadURL: String
    public let recommendedPartSize: Int64
    public let absoluteMinimumPartSize: Int64
    /// Buckets the key is restricted to; nil means all buckets of the account.
    public let allowedBuckets: [(id: String, name: String)]?
    public let capabilities: [String]
    public let namePrefix: String?

    public static func == (lhs: B2Authorization, rhs: B2Authorization) -> Bool { lhs.token == rhs.token && lhs.apiURL == rhs.apiURL }
    public func hash(into hasher: inout Hasher) { hasher.combine(token) }
}

public struct B2Bucket: Sendable, Hashable, Decodable {
    public let bucketId: String
    public let bucketName: String
    public let bucketType: String?
    /// Object Lock is enabled (`fileLockConfiguration.value.isFileLockEnabled`). False when B2 does not say, which
    /// it does not for a key without `readBucketRetentions`.
    public var fileLockEnabled: Bool
    /// The bucket's lifecycle rules (B2 deletes or hides files by them, behind any client's back).
    public var lifecycleRules: [B2LifecycleRule]

    private enum CodingKeys: String, CodingKey { case bucketId, bucketName, bucketType, fileLockConfiguration, lifecycleRules }
    private struct FileLockConfiguration: Decodable {
        struct Value: Decodable { let isFileLockEnabled: Bool? }
        let value: Value?
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        bucketId = try container.decode(String.self, forKey: .bucketId)
        bucketName = try container.decode(String.self, forKey: .bucketName)
        bucketType = try container.decodeIfPresent(String.self, forKey: .bucketType)
        // A shape we do not know must not make the bucket unusable: it only means "not known to be locked".
        let lock = try? container.decodeIfPresent(FileLockConfiguration.self, forKey: .fileLockConfiguration)
        fileLockEnabled = lock?.value?.isFileLockEnabled ?? false
        lifecycleRules = (try? container.decodeIfPresent([B2LifecycleRule].self, forKey: .lifecycleRules)) ?? []
    }
}

/// `lifecycleRules[]` of a bucket.
/// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-lifecycle-rules
public struct B2LifecycleRule: Sendable, Hashable, Decodable {
    public let fileNamePrefix: String
    public let daysFromUploadingToHiding: Int?
    public let daysFromHidingToDeleting: Int?
}

/// An Object Lock retention: until `retainUntil` the file version cannot be deleted (compliance), or only with
/// `bypassGovernance` by a key that has that capability (governance). B2 keeps milliseconds.
/// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-object-lock
public struct B2FileRetention: Sendable, Hashable {
    public enum Mode: String, Sendable {
        case governance, compliance
    }

    public var mode: Mode
    public var retainUntil: Date

    public init(mode: Mode, retainUntil: Date) {
        self.mode = mode
        self.retainUntil = retainUntil
    }

    /// `retainUntilTimestamp` on the wire: milliseconds since 1970.
    var retainUntilMillis: Int64 { Int64((retainUntil.timeIntervalSince1970 * 1000).rounded()) }

    /// `fileRetention` of `b2_start_large_file`.
    var json: [String: Any] { ["mode": mode.rawValue, "retainUntilTimestamp": retainUntilMillis] }

    /// `fileRetention` of a file object: `{isClientAuthorizedToRead, value: {mode, retainUntilTimestamp}}`; the value is
    /// null for a key without `readFileRetentions` and its fields null when the file has no retention.
    struct Envelope: Decodable {
        struct Value: Decodable {
            let mode: String?
            let retainUntilTimestamp: Int64?
        }
        let value: Value?

        var retention: B2FileRetention? {
            guard let mode = value?.mode.flatMap(Mode.init(rawValue:)), let millis = value?.retainUntilTimestamp else { return nil }
            return B2FileRetention(mode: mode, retainUntil: Date(timeIntervalSince1970: Double(millis) / 1000))
        }
    }
}

/// A file version as B2 reports it (upload, hide marker, unfinished large file, or folder).
public struct B2File: Sendable, Hashable, Decodable {
    public let fileId: String?
    public let fileName: String
    public let action: String?
    public let contentLength: Int64?
    public let contentSha1: String?
    public let contentType: String?
    public let fileInfo: [String: String]?
    public let uploadTimestamp: Int64?
    /// Object Lock retention; nil when there is none or the key may not read it (`readFileRetentions`).
    public var retention: B2FileRetention?

    private enum CodingKeys: String, CodingKey {
        case fileId, fileName, action, contentLength, contentSha1, contentType, fileInfo, uploadTimestamp, fileRetention
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        fileId = try container.decodeIfPresent(String.self, forKey: .fileId)
        fileName = try container.decode(String.self, forKey: .fileName)
        action = try container.decodeIfPresent(String.self, forKey: .action)
        contentLength = try container.decodeIfPresent(Int64.self, forKey: .contentLength)
        contentSha1 = try container.decodeIfPresent(String.self, forKey: .contentSha1)
        contentType = try container.decodeIfPresent(String.self, forKey: .contentType)
        fileInfo = try container.decodeIfPresent([String: String].self, forKey: .fileInfo)
        uploadTimestamp = try container.decodeIfPresent(Int64.self, forKey: .uploadTimestamp)
        retention = (try? container.decodeIfPresent(B2FileRetention.Envelope.self, forKey: .fileRetention))?.retention
    }

    /// The SHA-1 of the whole content: `contentSha1`, or `large_file_sha1` for large files ("none").
    public var sha1: String? {
        if let contentSha1, contentSha1 != "none" { return contentSha1.hasPrefix("unverified:") ? String(contentSha1.dropFirst(11)) : contentSha1 }
        return fileInfo?["large_file_sha1"]
    }
}

public struct B2Part: Sendable, Hashable, Decodable {
    public let fileId: String
    public let partNumber: Int
    public let contentLength: Int64
    public let contentSha1: String
}

/// An upload URL and its token; usable by one upload at a time.
public struct B2UploadTarget: Sendable, Hashable, Decodable {
    public let uploadUrl: String
    public let authorizationToken: String

    public static func == (lhs: B2UploadTarget, rhs: B2UploadTarget) -> Bool { lhs.uploadUrl == rhs.uploadUrl && lhs.authorizationToken == rhs.authorizationToken }
}

/// The body of every B2 error answer.
struct B2ErrorBody: Decodable {
    let status: Int?
    let code: String?
    let message: String?
}

/// Wire shape of `b2_authorize_account` v3/v4.
struct AuthorizeResponse: Decodable {
    struct APIInfo: Decodable { let storageApi: StorageAPI }
    struct StorageAPI: Decodable {
        let apiUrl: String
        let downloadUrl: String
        let recommendedPartSize: Int64
        let absoluteMinimumPartSize: Int64
        // v3
        let bucketId: String?
        let bucketName: String?
        let capabilities: [String]?
        let namePrefix: String?
        // v4
        let allowed: Allowed?
    }
    struct Allowed: Decodable {
        struct Bucket: Decodable { let id: String; let name: String? }
        let buckets: [Bucket]?
        let capabilities: [String]?
        let namePrefix: String?
    }
    let accountId: String
    let authorizationToken: String
    let apiInfo: APIInfo

    var normalised: B2Authorization {
        let storage = apiInfo.storageApi
        var buckets: [(id: String, name: String)]?
        if let allowed = storage.allowed {
            buckets = allowed.buckets?.map { ($0.id, $0.name ?? "") }
        } else if let id = storage.bucketId {
            buckets = [(id, storage.bucketName ?? "")]
        }
        return B2Authorization(accountID: accountId, token: authorizationToken, apiURL: storage.apiUrl, downloadURL: storage.downloadUrl,
                               recommendedPartSize: storage.recommendedPartSize, absoluteMinimumPartSize: storage.absoluteMinimumPartSize,
                               allowedBuckets: buckets, capabilities: storage.allowed?.capabilities ?? storage.capabilities ?? [],
                               namePrefix: storage.allowed?.namePrefix ?? storage.namePrefix)
    }
}

/// B2's file-name encoding for `X-Bz-File-Name` and download URLs: UTF-8, percent-encoded, with `/` and
/// the characters B2 lists as safe left literal.
public enum B2FileName {
    private static let literal: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/!$'()*-.:;=@_~".utf8))

    public static func encode(_ name: String) -> String {
        var out = ""
        for byte in name.utf8 {
            if literal.contains(byte) {
                out.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// Decodes `%XX` and `+` (space), as B2 does for header values.
    public static func decode(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                      let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
