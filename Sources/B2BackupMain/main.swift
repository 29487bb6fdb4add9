import App

await B2BackupEntry.main()
