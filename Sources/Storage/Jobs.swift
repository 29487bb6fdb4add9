import Foundation

/// One pipeline run as stored. `record` is the engine's own JSON; Storage only indexes the columns.
public struct StoredJob: Sendable, Hashable {
    public var id: String
    public var kind: String
    public var state: String
    /// Seconds since 1970 (UTC).
    public var startedAt: Double
    public var finishedAt: Double?
    public var record: String

    public init(id: String, kind: String, state: String, startedAt: Double, finishedAt: Double?, record: String) {
        self.id = id
        self.kind = kind
        self.state = state
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.record = record
    }
}

extension StateStore {
    /// Inserts or replaces a job row; each step of a run saves through here, so a restart sees the last step.
    public func saveJob(_ job: StoredJob) throws {
        try write { connection in
            try connection.query("""
                INSERT INTO jobs (id, kind, state, started_at, finished_at, record) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, state = excluded.state, started_at = excluded.started_at,
                    finished_at = excluded.finished_at, record = excluded.record
                """, [.text(job.id), .text(job.kind), .text(job.state), .real(job.startedAt),
                      job.finishedAt.map { .real($0) } ?? .null, .text(job.record)])
        }
    }

    public func job(id: String) throws -> StoredJob? {
        try read { try $0.query("SELECT * FROM jobs WHERE id = ?", [.text(id)]).first.map(Self.storedJob) }
    }

    /// Jobs that have not finished, oldest first: after a restart these are continued.
    public func unfinishedJobs() throws -> [StoredJob] {
        try read { try $0.query("SELECT * FROM jobs WHERE finished_at IS NULL ORDER BY started_at").map(Self.storedJob) }
    }

    /// The newest jobs first, optionally of one kind and state.
    public func recentJobs(kind: String? = nil, state: String? = nil, limit: Int = 50) throws -> [StoredJob] {
        var sql = "SELECT * FROM jobs WHERE 1 = 1"
        var arguments: [SQLValue] = []
        if let kind { sql += " AND kind = ?"; arguments.append(.text(kind)) }
        if let state { sql += " AND state = ?"; arguments.append(.text(state)) }
        sql += " ORDER BY started_at DESC LIMIT ?"
        arguments.append(.integer(Int64(max(0, limit))))
        return try read { try $0.query(sql, arguments).map(Self.storedJob) }
    }

    private static func storedJob(_ row: Row) -> StoredJob {
        StoredJob(id: row["id"]?.string ?? "", kind: row["kind"]?.string ?? "", state: row["state"]?.string ?? "",
                  startedAt: row["started_at"]?.double ?? 0, finishedAt: row["finished_at"]?.double, record: row["record"]?.string ?? "{}")
    }
}
