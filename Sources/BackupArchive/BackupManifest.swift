import Foundation

/// backup.json checked against the Supervisor's schema (`validate.py SCHEMA_BACKUP`, reference §2): the
/// verifier must fail on what makes the Supervisor refuse the file, which ``BackupMetadata``, a lenient
/// reader for listing backups, lets through.
struct BackupManifest {
    /// One archive backup.json promises, and what it is in plain words.
    struct ExpectedArchive: Hashable {
        let fileName: String
        /// "homeassistant", the add-on slug, or "folder share".
        let listedAs: String
        let isAddon: Bool
    }

    static let folders: Set<String> = ["share", "addons/local", "ssl", "media"]

    let slug: String
    let type: String
    let protected: Bool
    let expectedArchives: [ExpectedArchive]

    /// Why backup.json is unusable, in the words of the report.
    struct Problems: Error { let list: [String] }

    static func parse(_ bytes: [UInt8]) -> Result<BackupManifest, Problems> {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else {
            return .failure(Problems(list: ["backup.json is not valid JSON"]))
        }
        guard case .object(let object) = value else { return .failure(Problems(list: ["backup.json is not a JSON object"])) }
        var problems: [String] = []
        func string(_ key: String) -> String? {
            switch object[key] {
            case .string(let text)?: return text
            case nil: problems.append("backup.json has no \(key)")
            default: problems.append("backup.json: \(key) is not a string")
            }
            return nil
        }
        let slug = string("slug")
        _ = string("name")
        _ = string("date")
        let type = string("type")
        if let type, type != "full", type != "partial" { problems.append("backup.json: type is \"\(type)\", not full or partial") }

        var version = 1
        switch object["version"] {
        case nil: break
        case .number(let number)? where number == 1 || number == 2: version = Int(number)
        default: problems.append("backup.json: version is not 1 or 2")
        }
        var compressed = true
        switch object["compressed"] {
        case nil: break
        case .bool(let flag)?: compressed = flag
        default: problems.append("backup.json: compressed is not true or false")
        }
        var protected = false
        switch object["protected"] {
        case nil: break
        case .bool(let flag)?: protected = flag
        case .string?: protected = true // version 1 stored the cipher's name here
        default: problems.append("backup.json: protected is not true or false")
        }
        var hasHomeAssistant = false
        switch object["homeassistant"] {
        case nil, .null?: break
        case .object(let core)?:
            hasHomeAssistant = true
            if let version = core["version"], !version.isString { problems.append("backup.json: homeassistant.version is not a string") }
        default: problems.append("backup.json: homeassistant is neither null nor an object")
        }
        func list(_ key: String) -> [JSONValue] {
            switch object[key] {
            case nil: return []
            case .array(let items)?: return items
            default:
                problems.append("backup.json: \(key) is not a list")
                return []
            }
        }
        var folders: [String] = []
        for item in list("folders") {
            guard case .string(let folder) = item else { problems.append("backup.json: folders holds a non-string"); continue }
            // Version 1 files listed "homeassistant" as a folder; the Supervisor drops it.
            if folder == "homeassistant" && version == 1 { continue }
            if !Self.folders.contains(folder) { problems.append("backup.json lists unknown folder \(folder)") }
            if folders.contains(folder) { problems.append("backup.json lists folder \(folder) twice") }
            folders.append(folder)
        }
        var addons: [String] = []
        for item in list("addons") {
            guard case .object(let addon) = item, case .string(let addonSlug)? = addon["slug"] else {
                problems.append("backup.json: an add-on has no slug")
                continue
            }
            if addons.contains(addonSlug) { problems.append("backup.json lists add-on \(addonSlug) twice") }
            addons.append(addonSlug)
        }
        for key in ["repositories", "extra"] {
            switch (key, object[key]) {
            case (_, nil), ("repositories", .array?), ("extra", .object?): continue
            default: problems.append("backup.json: \(key) has the wrong type")
            }
        }
        guard problems.isEmpty, let slug, let type else { return .failure(Problems(list: problems)) }

        let suffix = compressed ? ".tar.gz" : ".tar"
        var expected: [ExpectedArchive] = []
        if hasHomeAssistant { expected.append(.init(fileName: "homeassistant" + suffix, listedAs: "homeassistant", isAddon: false)) }
        expected += addons.map { ExpectedArchive(fileName: $0 + suffix, listedAs: $0, isAddon: true) }
        expected += folders.map {
            ExpectedArchive(fileName: $0.replacingOccurrences(of: "/", with: "_") + suffix, listedAs: "folder \($0)", isAddon: false)
        }
        return .success(BackupManifest(slug: slug, type: type, protected: protected, expectedArchives: expected))
    }
}

/// Any JSON value, so that types are checked as the schema says instead of coerced.
enum JSONValue: Decodable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let items = try? container.decode([JSONValue].self) {
            self = .array(items)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    var isString: Bool { if case .string = self { true } else { false } }
}
