import HTTPServer

/// The request schemas of `api/backups.py`, checked the way voluptuous checks them: unknown keys are
/// refused, and errors read like `humanize_error()` (`… for dictionary value @ data['filename']. Got 'a/b'`),
/// sorted and joined by newlines when there are several.
struct Schema: Sendable {
    enum Rule: Sendable {
        /// `str`
        case string
        /// `vol.Maybe(str)`
        case maybeString
        /// `vol.Boolean()`
        case boolean
        /// `vol.Maybe(vol.Boolean())`
        case maybeBoolean
        /// `dict`
        case dictionary
        /// `vol.Match(RE_BACKUP_FILENAME)`: `^[^\\\/]+\.tar$`
        case backupFileName
        /// `vol.All([str], vol.Unique())`
        case uniqueStrings
        /// `vol.Or("ALL", vol.All([str], vol.Unique()))`
        case addonsOrAll
        /// `vol.All([vol.In(_ALL_FOLDERS)], vol.Unique())`
        case folders
        /// `vol.All(_ensure_list, [vol.Maybe(str)], vol.Unique())`
        case locations
        /// `vol.All(int, vol.Range(min=1))`
        case positiveInt
    }

    let rules: [(key: String, rule: Rule)]

    /// `RE_BACKUP_FILENAME.pattern`, as voluptuous prints it.
    static let fileNamePattern = #"^[^\\\/]+\.tar$"#
    /// `_ALL_FOLDERS`: the folders plus the v1 `homeassistant` pseudo-folder.
    static let requestFolders = ["share", "addons/local", "ssl", "media", "homeassistant"]

    static let backupFull = Schema(rules: [
        ("name", .string), ("filename", .backupFileName), ("password", .maybeString), ("compressed", .maybeBoolean),
        ("location", .locations), ("homeassistant_exclude_database", .boolean), ("background", .boolean), ("extra", .dictionary),
    ])
    static let backupPartial = Schema(rules: backupFull.rules + [("addons", .addonsOrAll), ("folders", .folders), ("homeassistant", .boolean)])
    static let restoreFull = Schema(rules: [("password", .maybeString), ("background", .boolean), ("location", .maybeString)])
    static let restorePartial = Schema(rules: restoreFull.rules + [("homeassistant", .boolean), ("addons", .uniqueStrings), ("folders", .folders)])
    static let remove = Schema(rules: [("location", .locations)])
    static let freeze = Schema(rules: [("timeout", .positiveInt)])

    /// Reads a body as `api_validate` does (empty = `{}`, bad JSON = "Invalid json") and checks it.
    static func read(_ request: HTTPRequest, _ schema: Schema) async throws -> [String: JSONValue] {
        let bytes = try await request.body.collect()
        let text = bytes.filter { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        let value: JSONValue
        if text.isEmpty {
            value = .object([:])
        } else {
            do {
                value = try JSONValue.parse(bytes)
            } catch {
                throw APIError("Invalid json")
            }
        }
        return try schema.validate(value)
    }

    func validate(_ value: JSONValue) throws(APIError) -> [String: JSONValue] {
        guard case .object(let object) = value else { throw APIError("expected a dictionary. Got \(value.pythonRepr)") }
        var errors: [String] = []
        var result: [String: JSONValue] = [:]
        for (key, item) in object {
            guard let rule = rules.first(where: { $0.key == key })?.rule else {
                errors.append("extra keys not allowed @ data['\(key)']. Got \(item.pythonRepr)")
                continue
            }
            switch Self.check(item, rule) {
            case .success(let coerced): result[key] = coerced
            case .failure(let failure):
                if let index = failure.index {
                    errors.append("\(failure.message) @ data['\(key)'][\(index)]. Got \(failure.got.pythonRepr)")
                } else {
                    errors.append("\(failure.message) for dictionary value @ data['\(key)']. Got \(item.pythonRepr)")
                }
            }
        }
        guard errors.isEmpty else { throw APIError(errors.sorted().joined(separator: "\n")) }
        return result
    }

    struct Failure: Error {
        let message: String
        /// Set for an error inside a list, which voluptuous reports with the index and without "for dictionary value".
        var index: Int?
        var got: JSONValue = .null
    }

    private static func check(_ value: JSONValue, _ rule: Rule) -> Result<JSONValue, Failure> {
        switch rule {
        case .string:
            return value.stringValue != nil ? .success(value) : .failure(Failure(message: "expected str"))
        case .maybeString:
            return value.isNull || value.stringValue != nil ? .success(value) : .failure(Failure(message: "not a valid value"))
        case .boolean:
            return boolean(value).map { .success(.bool($0)) } ?? .failure(Failure(message: "expected boolean"))
        case .maybeBoolean:
            if value.isNull { return .success(.null) }
            return boolean(value).map { .success(.bool($0)) } ?? .failure(Failure(message: "not a valid value"))
        case .dictionary:
            return value.objectValue != nil ? .success(value) : .failure(Failure(message: "expected dict"))
        case .backupFileName:
            guard let name = value.stringValue else { return .failure(Failure(message: "expected string or buffer")) }
            return isBackupFileName(name) ? .success(value) : .failure(Failure(message: "does not match regular expression \(fileNamePattern)"))
        case .uniqueStrings:
            return strings(value, allowed: nil)
        case .addonsOrAll:
            if value == .string("ALL") { return .success(value) }
            guard value.arrayValue != nil else { return .failure(Failure(message: "not a valid value")) }
            return strings(value, allowed: nil)
        case .folders:
            return strings(value, allowed: requestFolders)
        case .locations:
            let items = value.arrayValue ?? [value]
            for (index, item) in items.enumerated() where !(item.isNull || item.stringValue != nil) {
                return .failure(Failure(message: "not a valid value", index: index, got: item))
            }
            return unique(items).map { .failure($0) } ?? .success(.array(items))
        case .positiveInt:
            guard let number = value.intValue else { return .failure(Failure(message: "expected int")) }
            return number >= 1 ? .success(value) : .failure(Failure(message: "value must be at least 1"))
        }
    }

    private static func strings(_ value: JSONValue, allowed: [String]?) -> Result<JSONValue, Failure> {
        guard let items = value.arrayValue else { return .failure(Failure(message: "expected list")) }
        for (index, item) in items.enumerated() {
            guard let text = item.stringValue else { return .failure(Failure(message: "expected str", index: index, got: item)) }
            if let allowed, !allowed.contains(text) {
                let choices = allowed.sorted().map { "'\($0)'" }.joined(separator: ", ")
                return .failure(Failure(message: "value must be one of [\(choices)]", index: index, got: item))
            }
        }
        return unique(items).map { .failure($0) } ?? .success(value)
    }

    private static func unique(_ items: [JSONValue]) -> Failure? {
        var seen: [JSONValue] = []
        var duplicates: [JSONValue] = []
        for item in items {
            if seen.contains(item) { if !duplicates.contains(item) { duplicates.append(item) } } else { seen.append(item) }
        }
        guard !duplicates.isEmpty else { return nil }
        return Failure(message: "contains duplicate items: \(JSONValue.array(duplicates).pythonRepr)")
    }

    /// `vol.Boolean()`: booleans, the strings it knows, and Python truthiness for anything else.
    static func boolean(_ value: JSONValue) -> Bool? {
        switch value {
        case .bool(let flag): return flag
        case .string(let text):
            switch text.lowercased() {
            case "1", "true", "yes", "on", "enable": return true
            case "0", "false", "no", "off", "disable": return false
            default: return nil
            }
        case .null: return false
        case .int(let number): return number != 0
        case .double(let number): return number != 0
        case .array(let items): return !items.isEmpty
        case .object(let object): return !object.isEmpty
        }
    }

    /// `^[^\\/]+\.tar$`: no slash or backslash, ends in `.tar`, at least one character before it.
    static func isBackupFileName(_ name: String) -> Bool {
        name.hasSuffix(".tar") && name.count > 4 && !name.contains("/") && !name.contains("\\") && !name.contains("\n")
    }
}
