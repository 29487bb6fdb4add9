/// Makes the simulated Supervisor fail the ways a real one does, so clients' recovery paths can be tested.
///
/// Each rule has a remaining count and is used up as requests match it; ``clear()`` removes them all.
public actor SupervisorFaultInjector {
    private var backupFailures: [String] = []
    private var busyCount = 0
    private var extraJobTime: Duration = .zero
    private var downloadDrops: [(afterBytes: Int, remaining: Int)] = []
    private var coreOutages = 0
    private var uploadFailures = 0

    init() {}

    /// The next backup job fails part-way: it ends `done: true`, `progress: 100` with this message in its
    /// `errors` (type `BackupError`), and no backup file is left, as when an add-on or folder cannot be saved.
    public func failNextBackup(message: String = "Backup failed, see supervisor logs") {
        backupFailures.append(message)
    }

    /// The next `times` backup or restore requests are refused with 400 as if another backup or restore
    /// were running: `'BackupManager.do_backup_full' blocked from execution, system is not running - freeze`.
    public func busy(times: Int = 1) {
        busyCount += max(0, times)
    }

    /// Every backup and restore job takes this much longer (until ``clear()``).
    public func slowJobs(by extra: Duration) {
        extraJobTime = extra
    }

    /// The next `times` downloads send their headers (full `Content-Length`), `afterBytes` bytes of the
    /// body, then drop the connection.
    public func dropDownload(afterBytes: Int, times: Int = 1) {
        guard times > 0 else { return }
        downloadDrops.append((max(0, afterBytes), times))
    }

    /// The next `times` Core proxy calls answer `502: Bad Gateway`, as while Core restarts.
    public func coreUnavailable(times: Int = 1) {
        coreOutages += max(0, times)
    }

    /// The next `times` uploads read the body and then fail as when the file cannot be written:
    /// 400 `Unknown error, see Supervisor logs`.
    public func failUpload(times: Int = 1) {
        uploadFailures += max(0, times)
    }

    /// Removes every rule.
    public func clear() {
        backupFailures.removeAll()
        busyCount = 0
        extraJobTime = .zero
        downloadDrops.removeAll()
        coreOutages = 0
        uploadFailures = 0
    }

    /// Rules not yet used up (a job slowdown counts as one while it is set).
    public var pendingRuleCount: Int {
        backupFailures.count + busyCount + downloadDrops.reduce(0) { $0 + $1.remaining } + coreOutages + uploadFailures
            + (extraJobTime == .zero ? 0 : 1)
    }

    // MARK: Queried by the handlers

    func takeBackupFailure() -> String? {
        backupFailures.isEmpty ? nil : backupFailures.removeFirst()
    }

    func takeBusy() -> Bool {
        guard busyCount > 0 else { return false }
        busyCount -= 1
        return true
    }

    var jobSlowdown: Duration { extraJobTime }

    func takeDownloadDrop() -> Int? {
        guard !downloadDrops.isEmpty else { return nil }
        let bytes = downloadDrops[0].afterBytes
        downloadDrops[0].remaining -= 1
        if downloadDrops[0].remaining <= 0 { downloadDrops.removeFirst() }
        return bytes
    }

    func takeCoreOutage() -> Bool {
        guard coreOutages > 0 else { return false }
        coreOutages -= 1
        return true
    }

    func takeUploadFailure() -> Bool {
        guard uploadFailures > 0 else { return false }
        uploadFailures -= 1
        return true
    }
}
