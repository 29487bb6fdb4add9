// swift-tools-version: 6.1
import PackageDescription

/// Every Swift target: language mode 6, explicit `any`, imports that say what they use.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "b2-backup",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "b2-backup", targets: ["B2BackupMain"]),
        // The simulators as a process, for the demo and bench/; not part of the add-on image.
        .executable(name: "b2-simulator", targets: ["SimulatorMain"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Tests only: random histories for the retention invariants.
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // C libraries: a module map and a shim for what Swift cannot import. Each is imported by one Swift module.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // epoll and eventfd headers, which Glibc's module map leaves out; imported by HTTPServer only.
        .systemLibrary(name: "CLinux"),

        .target(name: "Compression", dependencies: ["CZlib"], swiftSettings: strict),
        .target(name: "Hashing", dependencies: ["CCrypto"], swiftSettings: strict),
        .target(name: "HTTPServer", dependencies: [
            "Compression", "CLinux", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .target(name: "HTTPClient", dependencies: [
            "CCurl", "Hashing", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .target(name: "B2Client", dependencies: [
            "HTTPClient", "Hashing", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // S3-compatible object storage (AWS Signature V4 over HTTPClient): groundwork for a second destination.
        .target(name: "S3Client", dependencies: [
            "HTTPClient", "Hashing", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // A faithful B2 native-API server for tests and the demo; never used by production code paths.
        .target(name: "B2Simulator", dependencies: [
            "HTTPServer", "Hashing", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Home Assistant backup files: tar reading/writing and finding a backup by its backup.json.
        .target(name: "BackupArchive", dependencies: ["Compression", "Hashing"], swiftSettings: strict),
        .target(name: "SupervisorClient", dependencies: [
            "HTTPClient", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // A faithful Supervisor (backup API, jobs, Core proxy) for tests and the demo; never used by production code paths.
        .target(name: "SupervisorSimulator", dependencies: [
            "BackupArchive", "HTTPServer", "Compression", "Hashing", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .target(name: "Storage", dependencies: [
            "CSQLite", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // The engine: backup jobs, schedule, Home Assistant surfaces. Talks to the Supervisor, B2 and the
        // state database only through protocols it declares; App supplies the adapters.
        .target(name: "Core", dependencies: [.product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .target(name: "WebAPI", dependencies: [
            "HTTPServer", "Core", .product(name: "Logging", package: "swift-log"),
        ], exclude: ["Web"], swiftSettings: strict), // Web/ is compiled in via scripts/embed-web-assets
        .target(name: "App", dependencies: [
            "HTTPServer", "HTTPClient", "Storage", "WebAPI", "B2Client", "S3Client", "Core", "SupervisorClient", "BackupArchive", "Hashing",
            // Only for the `demo` command, which runs the add-on against them.
            "B2Simulator", "SupervisorSimulator",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict),
        // Helpers shared by the test targets (a raw HTTP client, waiting for child processes off the
        // cooperative pool); never a dependency of the add-on.
        .target(name: "TestSupport", swiftSettings: strict),
        // moto's S3 server with authentication on, started by the S3 and pipeline tests; never in the add-on.
        .target(name: "MotoSupport", dependencies: [
            "HTTPClient", "S3Client", "TestSupport", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .executableTarget(name: "B2BackupMain", dependencies: ["App"], swiftSettings: strict),
        .executableTarget(name: "SimulatorMain", dependencies: [
            "B2Simulator", "SupervisorSimulator", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),

        .testTarget(name: "HashingTests", dependencies: ["Hashing"], swiftSettings: strict),
        .testTarget(name: "CompressionTests", dependencies: ["Compression"], swiftSettings: strict),
        .testTarget(name: "HTTPServerTests", dependencies: [
            "HTTPServer", "TestSupport", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "HTTPClientTests", dependencies: ["HTTPClient", "HTTPServer", "Hashing"], swiftSettings: strict),
        .testTarget(name: "B2SimulatorTests", dependencies: [
            "B2Simulator", "TestSupport", "HTTPClient", "Hashing", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "B2ClientTests", dependencies: [
            "B2Client", "B2Simulator", "HTTPClient", "Hashing", "Storage", "TestSupport", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "S3ClientTests", dependencies: [
            "S3Client", "MotoSupport", "HTTPClient", "HTTPServer", "Hashing", "TestSupport", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "BackupArchiveTests", dependencies: ["BackupArchive", "Compression"], swiftSettings: strict),
        .testTarget(name: "SupervisorSimulatorTests", dependencies: [
            "SupervisorSimulator", "BackupArchive", "HTTPClient", "Compression", "Hashing", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "SupervisorClientTests", dependencies: [
            "SupervisorClient", "SupervisorSimulator", "HTTPClient", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "CoreTests", dependencies: [
            "Core", .product(name: "Logging", package: "swift-log"), .product(name: "PropertyBased", package: "swift-property-based"),
        ], swiftSettings: strict),
        .testTarget(name: "StorageTests", dependencies: ["Storage"], swiftSettings: strict),
        .testTarget(name: "WebAPITests", dependencies: [
            "WebAPI", "HTTPServer", "HTTPClient", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "AppTests", dependencies: [
            "App", "HTTPServer", "HTTPClient", "Storage", "WebAPI", "Core", "B2Client", "B2Simulator", "S3Client", "SupervisorClient",
            "SupervisorSimulator", "BackupArchive", "TestSupport", "MotoSupport",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
    ]
)
