// swift-tools-version:6.0
import PackageDescription

// One target per concern; dependencies point one way:
// GOESCatalog ← ObjectStore ← BlockCache ← FileSystem ← FUSEBridge ← goesfs (CLI).
let package = Package(
    name: "goesfs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "goesfs", targets: ["goesfs"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C libraries, each behind a tiny shim for what Swift cannot call (macros, variadics, bitfields).
        .systemLibrary(name: "CFuse", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CChecksum"),
        .systemLibrary(name: "CFileSpace"),

        .target(name: "GOESCatalog"),
        .target(name: "Locking"),
        // The log's output: whole lines with write(2) under a lock no cancelled thread can keep.
        .target(name: "LogOutput", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(name: "ObjectStore", dependencies: ["CCurl", "GOESCatalog", "Locking"]),
        .target(name: "BlockCache", dependencies: ["CSQLite", "CChecksum", "CFileSpace", "Locking"]),
        // The tiny HTTP server behind `--metrics` (no dependency: swift-nio would slow every build).
        .target(name: "MetricsHTTP", dependencies: ["Locking"]),
        .target(name: "FileSystem", dependencies: [
            "GOESCatalog", "ObjectStore", "BlockCache", "Locking",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "FUSEBridge", dependencies: [
            "CFuse", "FileSystem", "Locking",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "goesfs", dependencies: [
            "FUSEBridge", "FileSystem", "ObjectStore", "BlockCache", "GOESCatalog", "Locking", "LogOutput", "MetricsHTTP",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Fake object sources for tests of the core without a network (not a test bundle itself).
        .target(name: "TestSupport", dependencies: ["ObjectStore", "BlockCache", "Locking"], path: "Tests/TestSupport"),

        .testTarget(name: "GOESCatalogTests", dependencies: ["GOESCatalog"]),
        .testTarget(name: "ObjectStoreTests", dependencies: ["ObjectStore"]),
        .testTarget(name: "BlockCacheTests", dependencies: ["BlockCache"]),
        .testTarget(name: "MetricsHTTPTests", dependencies: ["MetricsHTTP"]),
        .testTarget(name: "LogOutputTests", dependencies: ["LogOutput", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "FileSystemTests", dependencies: [
            "FileSystem", "ObjectStore", "BlockCache", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
