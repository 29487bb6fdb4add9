import Foundation
import Logging

/// A configuration problem, naming the option (never its value: some are secrets).
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let option: String?
    public let message: String
    public var description: String { option.map { "option '\($0)': \(message)" } ?? message }
}

/// The add-on options the Supervisor writes to `/data/options.json` (schema in config.yaml).
public struct AddonOptions: Sendable, Equatable {
    public var b2KeyID: String?
    public var b2Key: String?
    public var b2Bucket: String?
    /// The folder inside the bucket, without leading or trailing slashes; may be empty.
    public var b2Prefix: String
    public var apiToken: String?
    public var logLevel: Logger.Level

    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// Shorter bearer tokens are too easy to guess for an API that can delete backups.
    public static let minimumAPITokenLength = 16

    public init(b2KeyID: String? = nil, b2Key: String? = nil, b2Bucket: String? = nil, b2Prefix: String = "homeassistant",
                apiToken: String? = nil, logLevel: Logger.Level = .info) {
        self.b2KeyID = b2KeyID
        self.b2Key = b2Key
        self.b2Bucket = b2Bucket
        self.b2Prefix = b2Prefix
        self.apiToken = apiToken
        self.logLevel = logLevel
    }

    /// Options needed before the first backup that are still unset, by option key.
    public var missingForBackups: [String] {
        [("b2_key_id", b2KeyID), ("b2_key", b2Key), ("b2_bucket", b2Bucket)].filter { $0.1 == nil }.map(\.0)
    }

    /// Reads and validates the options file.
    public static func load(from url: URL) throws(ConfigurationError) -> AddonOptions {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ConfigurationError(option: nil, message: "cannot read the options file \(url.path): \((error as NSError).localizedDescription)")
        }
        return try parse(data)
    }

    public static func parse(_ data: Data) throws(ConfigurationError) -> AddonOptions {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigurationError(option: nil, message: "the options file is not valid JSON")
        }
        guard let values = object as? [String: Any] else { throw ConfigurationError(option: nil, message: "the options file must hold a JSON object") }
        var options = AddonOptions()
        options.b2KeyID = try optionalString(values, "b2_key_id")
        options.b2Key = try optionalString(values, "b2_key")
        options.b2Bucket = try optionalString(values, "b2_bucket")
        options.apiToken = try optionalString(values, "api_token")
        options.b2Prefix = try optionalString(values, "b2_prefix").map(normalizedPrefix) ?? "homeassistant"
        if let level = try optionalString(values, "log_level") {
            guard logLevels.contains(level), let parsed = Logger.Level(rawValue: level) else {
                throw ConfigurationError(option: "log_level", message: "'\(level)' is not one of \(logLevels.joined(separator: ", "))")
            }
            options.logLevel = parsed
        }
        try options.validate()
        return options
    }

    /// Empty strings count as unset: the Supervisor UI leaves them when a field is cleared.
    private static func optionalString(_ values: [String: Any], _ key: String) throws(ConfigurationError) -> String? {
        guard let raw = values[key], !(raw is NSNull) else { return nil }
        guard let text = raw as? String else { throw ConfigurationError(option: key, message: "must be a string") }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    static func normalizedPrefix(_ prefix: String) -> String {
        prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
    }

    func validate() throws(ConfigurationError) {
        if let bucket = b2Bucket {
            // B2 bucket names: 6-63 characters, letters, digits and '-', not starting with "b2-".
            let allowed = bucket.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "-" }
            guard (6...63).contains(bucket.count), allowed, !bucket.lowercased().hasPrefix("b2-") else {
                throw ConfigurationError(option: "b2_bucket", message: "'\(bucket)' is not a valid B2 bucket name (6-63 letters, digits or '-', not starting with 'b2-')")
            }
        }
        if let keyID = b2KeyID, !keyID.unicodeScalars.allSatisfy({ $0.isASCII && CharacterSet.alphanumerics.contains($0) }) {
            throw ConfigurationError(option: "b2_key_id", message: "must contain only letters and digits, as the application key ID shown by Backblaze")
        }
        if let key = b2Key, key.contains(where: { $0.isWhitespace }) {
            throw ConfigurationError(option: "b2_key", message: "contains whitespace; paste the application key exactly as Backblaze shows it")
        }
        if let token = apiToken, token.count < Self.minimumAPITokenLength {
            throw ConfigurationError(option: "api_token", message: "is shorter than \(Self.minimumAPITokenLength) characters; use a long random value")
        }
        if !b2Prefix.isEmpty {
            let segments = b2Prefix.split(separator: "/", omittingEmptySubsequences: false)
            guard b2Prefix.utf8.count <= 200,
                  !b2Prefix.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "\\" }),
                  !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                throw ConfigurationError(option: "b2_prefix", message: "must be a folder path such as 'homeassistant' or 'homes/main' (no empty, '.' or '..' parts, no control characters, at most 200 bytes)")
            }
        }
    }
}

/// Settings that come from the environment rather than the options (tests and simulators set them).
public struct RuntimeEnvironment: Sendable, Equatable {
    public var supervisorURL: String
    public var supervisorToken: String?
    public var b2APIURL: String

    public static let defaultSupervisorURL = "http://supervisor"
    public static let defaultB2APIURL = "https://api.backblazeb2.com"

    public static func from(_ environment: [String: String]) throws(ConfigurationError) -> RuntimeEnvironment {
        let supervisor = environment["SUPERVISOR_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultSupervisorURL
        let b2 = environment["B2_API_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultB2APIURL
        for (name, value) in [("SUPERVISOR_URL", supervisor), ("B2_API_URL", b2)] {
            guard let url = URL(string: value), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
                throw ConfigurationError(option: nil, message: "environment variable \(name) must be an http(s) URL")
            }
        }
        let token = environment["SUPERVISOR_TOKEN"] ?? environment["HASSIO_TOKEN"]
        return RuntimeEnvironment(supervisorURL: trimmedURL(supervisor), supervisorToken: token.flatMap { $0.isEmpty ? nil : $0 }, b2APIURL: trimmedURL(b2))
    }

    private static func trimmedURL(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }
}
