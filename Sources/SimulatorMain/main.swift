import B2Simulator
import SupervisorSimulator
import Dispatch
import Foundation
import Glibc
import Logging

/// `b2-simulator`: the B2 simulator (and, with `--supervisor-backup-dir`, the Supervisor simulator) as a
/// process, for the demo and the benchmarks (never shipped in the image).
///
///     b2-simulator --storage DIR [--key-id ID --key KEY --bucket NAME] [--part-size BYTES] [--min-part-size BYTES]
///                  [--supervisor-backup-dir DIR]
///
/// Prints `b2-simulator realm=http://127.0.0.1:PORT` (and `supervisor=URL token=TOKEN`) once it listens;
/// stops on SIGTERM or SIGINT.
let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    let arguments = Array(CommandLine.arguments.dropFirst())
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}
guard let storage = option("--storage") else {
    FileHandle.standardError.write(Data("usage: b2-simulator --storage DIR [--key-id ID --key KEY --bucket NAME] [--part-size BYTES] [--min-part-size BYTES]\n".utf8))
    exit(2)
}
try FileManager.default.createDirectory(atPath: storage, withIntermediateDirectories: true)
var configuration = B2Simulator.demoConfiguration(storage: URL(fileURLWithPath: storage))
if let keyID = option("--key-id"), let key = option("--key") {
    let bucket = option("--bucket") ?? "ha-backups"
    configuration.accounts = [B2Simulator.Account(keyID: keyID, applicationKey: key, restrictedToBucket: option("--bucket") == nil ? nil : bucket,
                                                  capabilities: B2Simulator.Account.allCapabilities)]
    configuration.buckets = [bucket]
}
if let size = option("--part-size").flatMap(Int.init) { configuration.recommendedPartSize = size }
if let size = option("--min-part-size").flatMap(Int.init) { configuration.absoluteMinimumPartSize = size }
var logger = Logger(label: "b2-simulator")
logger.logLevel = .warning
let simulator = try B2Simulator(configuration: configuration, logger: logger)
simulator.start()
var supervisor: SupervisorSimulator?
if let backups = option("--supervisor-backup-dir") {
    try FileManager.default.createDirectory(atPath: backups, withIntermediateDirectories: true)
    let configuration = SupervisorSimulator.demoConfiguration(backupDirectory: URL(fileURLWithPath: backups))
    let started = try SupervisorSimulator(configuration: configuration, logger: logger)
    started.start()
    supervisor = started
}
var ready = "b2-simulator realm=\(simulator.realmURL)"
if let supervisor { ready += " supervisor=\(supervisor.url) token=\(supervisor.configuration.token)" }
FileHandle.standardOutput.write(Data((ready + "\n").utf8)) // unbuffered: readers wait for this line
let done = DispatchSemaphore(value: 0)
var sources: [any DispatchSourceSignal] = []
for number in [SIGTERM, SIGINT] {
    signal(number, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
    source.setEventHandler { @Sendable in done.signal() }
    source.resume()
    sources.append(source)
}
await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
    DispatchQueue.global().async { @Sendable in
        done.wait()
        continuation.resume()
    }
}
await simulator.shutdown()
await supervisor?.shutdown()
