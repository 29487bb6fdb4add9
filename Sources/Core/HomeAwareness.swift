import Foundation

/// An add-on as the Supervisor lists it.
public struct AddonIdentity: Sendable, Hashable, Codable {
    public var slug: String
    public var name: String
    public init(slug: String, name: String) {
        self.slug = slug
        self.name = name
    }
}

/// Whether one critical component is in a backup.
public struct ComponentCoverage: Sendable, Hashable, Codable {
    public var slug: String
    public var name: String
    public var included: Bool
}

/// Which critical components a backup holds (`GET /api/status` → `coverage`).
public struct Coverage: Sendable, Hashable, Codable {
    /// The backup's slug.
    public var backup: String
    public var backupName: String
    public var components: [ComponentCoverage]
    /// Things worth knowing beside the components (the `share` folder left out while Zigbee2MQTT is installed).
    public var notes: [String]

    public var missing: [ComponentCoverage] { components.filter { !$0.included } }
}

/// The add-ons whose loss hurts most after a disk failure: re-pairing every Zigbee device, re-flashing every
/// ESPHome node. Slugs carry a repository hash (`45df7312_zigbee2mqtt`), so defaults match the slug's end.
public enum CriticalComponents {
    public static let defaultSuffixes = ["zigbee2mqtt", "mosquitto", "esphome", "zwave_js", "matter_server"]

    /// The installed add-ons that are critical: the defaults, plus `overrides` slugs, minus `-slug` entries.
    public static func critical(installed: [AddonIdentity], overrides: [String]) -> [AddonIdentity] {
        let removed = Set(overrides.filter { $0.hasPrefix("-") }.map { String($0.dropFirst()) })
        let added = Set(overrides.filter { !$0.hasPrefix("-") })
        return installed.filter { addon in
            guard !removed.contains(addon.slug) else { return false }
            return added.contains(addon.slug) || defaultSuffixes.contains { addon.slug == $0 || addon.slug.hasSuffix("_" + $0) }
        }
    }

    /// The coverage of a backup with these facts, against the critical add-ons installed now.
    public static func coverage(of facts: BackupFacts, slug: String, name: String, critical: [AddonIdentity]) -> Coverage {
        let inBackup = Set(facts.addons)
        let components = critical.map { ComponentCoverage(slug: $0.slug, name: $0.name, included: inBackup.contains($0.slug)) }
        var notes: [String] = []
        if critical.contains(where: { $0.slug.hasSuffix("zigbee2mqtt") }), facts.type == "partial" || !facts.folders.isEmpty,
           !facts.folders.contains("share") {
            notes.append("the share folder is not in the backup; older Zigbee2MQTT installations keep their data in /share/zigbee2mqtt")
        }
        return Coverage(backup: slug, backupName: name, components: components, notes: notes)
    }
}

/// A condition on a Home Assistant entity that postpones a scheduled backup (`postpone_while`).
public struct QuietCondition: Sendable, Hashable {
    public var entity: String
    public var state: String?
    public var above: Double?
    public var below: Double?

    public init(entity: String, state: String? = nil, above: Double? = nil, below: Double? = nil) {
        self.entity = entity
        self.state = state
        self.above = above
        self.below = below
    }

    /// Whether the entity's state holds the backup back. Unknown, unavailable or unreadable never does:
    /// a broken sensor must not stop backups.
    public func holds(_ value: String?) -> Bool {
        guard let value, !["unavailable", "unknown", "none", ""].contains(value.lowercased()) else { return false }
        if let state { return value == state }
        guard let number = Double(value) else { return false }
        if let above, number <= above { return false }
        if let below, number >= below { return false }
        return above != nil || below != nil
    }

    /// "Hallway motion is on", "Processor temperature is 83 (above 80)".
    func describe(name: String?, value: String) -> String {
        let who = name ?? entity
        if state != nil { return "\(who) is \(value)" }
        var limits: [String] = []
        if let above { limits.append("above \(Self.format(above))") }
        if let below { limits.append("below \(Self.format(below))") }
        return "\(who) is \(value) (\(limits.joined(separator: ", ")))"
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int64(value)) : String(value)
    }
}

extension QuietCondition: CustomStringConvertible {
    /// "binary_sensor.hallway_motion is on", "sensor.processor_temperature above 80 and below 95".
    public var description: String {
        if let state { return "\(entity) is \(state)" }
        let limits = [above.map { "above \(Self.format($0))" }, below.map { "below \(Self.format($0))" }]
        return "\(entity) " + limits.compactMap { $0 }.joined(separator: " and ")
    }
}

/// Reads entity states for the quiet-time conditions.
public protocol EntityReader: Sendable {
    /// The state and friendly name, or nil when Home Assistant does not know the entity.
    func entity(_ entityID: String) async throws(PortError) -> (state: String, name: String?)?
}

/// When scheduled backups wait for a quiet house.
public struct QuietTime: Sendable {
    public var conditions: [QuietCondition]
    public var recheck: TimeInterval
    /// 0 turns postponing off.
    public var maxPostpone: TimeInterval

    public init(conditions: [QuietCondition], recheck: TimeInterval = 300, maxPostpone: TimeInterval = 7200) {
        self.conditions = conditions
        self.recheck = recheck
        self.maxPostpone = maxPostpone
    }

    /// The first condition that holds now, in words; nil when the house is quiet (or nothing can be read).
    public func blocking(_ reader: any EntityReader) async -> String? {
        for condition in conditions {
            guard let entity = try? await reader.entity(condition.entity), condition.holds(entity.state) else { continue }
            return condition.describe(name: entity.name, value: entity.state)
        }
        return nil
    }
}
