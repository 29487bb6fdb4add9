import Logging

/// The add-on's state database (`/data/state.db`): one connection, owned by this actor.
public actor StateStore {
    private let connection: SQLiteConnection
    public nonisolated let path: String

    /// Opens the database, enables WAL and a busy timeout, and applies pending migrations.
    /// - Throws: `DatabaseError` or `Migrator.Failure` naming what failed.
    public init(path: String, migrations: [Migration] = Migrations.all, logger: Logger) throws {
        self.path = path
        connection = try SQLiteConnection(path: path)
        connection.setBusyTimeout(milliseconds: 5_000)
        // WAL: readers never block the writer, and a crash mid-write leaves the last commit intact.
        try connection.query("PRAGMA journal_mode = WAL")
        try connection.execute("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON")
        let applied = try Migrator.migrate(connection, migrations: migrations)
        if !applied.isEmpty {
            logger.info("state database migrated", metadata: ["db.path": "\(path)", "db.applied": "\(applied)"])
        }
    }

    /// Runs statements that change state in one transaction.
    @discardableResult
    func write<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try connection.transaction { try body(connection) }
    }

    func read<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try body(connection)
    }

    public func schemaVersion() throws -> Int { try Migrator.version(connection) }

    public func journalMode() throws -> String {
        try connection.query("PRAGMA journal_mode").first?.values.first?.string ?? ""
    }

    /// A cheap read proving the database answers (for `/health`).
    public func check() throws {
        try connection.query("SELECT 1")
    }

    public func setting(_ key: String) throws -> String? {
        try connection.query("SELECT value FROM settings WHERE key = ?", [.text(key)]).first?["value"]?.string
    }

    public func setSetting(_ key: String, _ value: String) throws {
        try connection.query("""
            INSERT INTO settings (key, value) VALUES (?, ?)
            ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
            """, [.text(key), .text(value)])
    }
}
