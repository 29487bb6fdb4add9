/// One schema step. Steps are applied in order, each in its own transaction, and never edited once
/// released: a change to the schema is a new step.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String
    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

public enum Migrations {
    /// The schema of this build.
    public static let all: [Migration] = [
        Migration(version: 1, name: "settings", sql: """
            CREATE TABLE settings (
                key TEXT PRIMARY KEY NOT NULL,
                value TEXT NOT NULL,
                updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            ) STRICT;
            """),
        Migration(version: 2, name: "large_uploads", sql: """
            CREATE TABLE large_uploads (
                file_id TEXT PRIMARY KEY NOT NULL,
                bucket_id TEXT NOT NULL,
                file_name TEXT NOT NULL,
                local_path TEXT NOT NULL,
                file_size INTEGER NOT NULL,
                modified_ms INTEGER NOT NULL,
                part_size INTEGER NOT NULL,
                sha1 TEXT NOT NULL,
                part_sha1s TEXT NOT NULL,
                started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
                UNIQUE (bucket_id, file_name)
            ) STRICT;
            CREATE TABLE large_upload_parts (
                file_id TEXT NOT NULL REFERENCES large_uploads (file_id) ON DELETE CASCADE,
                part_number INTEGER NOT NULL,
                sha1 TEXT NOT NULL,
                confirmed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
                PRIMARY KEY (file_id, part_number)
            ) STRICT;
            """),
        // Every pipeline run: a few columns to query history by, and the engine's full record as JSON
        // (its steps change between releases; the record is versioned by the engine, not by the schema).
        Migration(version: 3, name: "jobs", sql: """
            CREATE TABLE jobs (
                id TEXT PRIMARY KEY NOT NULL,
                kind TEXT NOT NULL,
                state TEXT NOT NULL,
                started_at REAL NOT NULL,
                finished_at REAL,
                record TEXT NOT NULL
            ) STRICT;
            CREATE INDEX jobs_by_start ON jobs (started_at);
            CREATE INDEX jobs_unfinished ON jobs (state) WHERE finished_at IS NULL;
            """),
    ]
}

/// Brings a database to the newest schema, recording each applied step in `schema_migrations`.
public enum Migrator {
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// The file was written by a newer release; running older code on it could lose data.
        case newerThanSupported(found: Int, supported: Int)
        case stepFailed(version: Int, name: String, DatabaseError)

        public var description: String {
            switch self {
            case .newerThanSupported(let found, let supported):
                "the state database has schema version \(found), newer than this release supports (\(supported)); update the add-on"
            case .stepFailed(let version, let name, let error):
                "schema migration \(version) (\(name)) failed and was rolled back: \(error)"
            }
        }
    }

    /// Applies the missing steps. Returns the versions applied (empty when up to date).
    @discardableResult
    public static func migrate(_ connection: SQLiteConnection, migrations: [Migration] = Migrations.all) throws -> [Int] {
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY NOT NULL,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            )
            """)
        let current = try version(connection)
        let supported = migrations.map(\.version).max() ?? 0
        if current > supported { throw Failure.newerThanSupported(found: current, supported: supported) }
        var applied: [Int] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) where migration.version > current {
            do {
                try connection.transaction {
                    try connection.execute(migration.sql)
                    try connection.query("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [.integer(Int64(migration.version)), .text(migration.name)])
                }
            } catch let error as DatabaseError {
                throw Failure.stepFailed(version: migration.version, name: migration.name, error)
            }
            applied.append(migration.version)
        }
        return applied
    }

    public static func version(_ connection: SQLiteConnection) throws(DatabaseError) -> Int {
        Int(try connection.query("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations").first?["version"]?.int ?? 0)
    }
}
