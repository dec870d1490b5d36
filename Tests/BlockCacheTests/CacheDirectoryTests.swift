@testable import BlockCache
import CChecksum
import Foundation
import XCTest

/// The cache directory's layout and the rules that keep a local user from redirecting its writes.
final class CacheDirectoryTests: XCTestCase {
    var base: String!
    var directory: String { base + "/cache" }
    var victim: String { base + "/victim" }
    let victimBytes = Data("do not touch".utf8)

    override func setUpWithError() throws {
        base = NSTemporaryDirectory() + "goesfs-dir-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        try victimBytes.write(to: URL(fileURLWithPath: victim))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: base)
    }

    private func mode(_ path: String) -> mode_t {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
    }

    private func assertVictimUntouched(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(FileManager.default.contents(atPath: victim), victimBytes, "the link was written through", file: file, line: line)
    }

    private func refusal(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "(accepted)"
    }

    // MARK: SHA-256

    private func sha256(_ bytes: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeBytes { input in digest.withUnsafeMutableBufferPointer { goesfs_sha256(input.baseAddress, input.count, $0.baseAddress) } }
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    /// FIPS 180-2 / NIST example vectors: empty, one block, two blocks (448 and 896 bits), a million bytes.
    func testSHA256StandardVectors() {
        XCTAssertEqual(sha256([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(sha256(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(sha256(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(sha256(Array(("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
                                     + "lmnopqrsmnopqrstnopqrstu").utf8)),
                       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        XCTAssertEqual(sha256([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Every length around the padding boundary (55, 56 and 64 bytes need one or two tail blocks).
        XCTAssertEqual(sha256([UInt8](repeating: 0x61, count: 55)), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318")
        XCTAssertEqual(sha256([UInt8](repeating: 0x61, count: 56)), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
        XCTAssertEqual(sha256([UInt8](repeating: 0x61, count: 64)), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
    }

    /// Data files are named by SHA-256 of bucket, NUL, key (python: hashlib.sha256(b"b\0k")).
    func testDataFileNameIsSHA256OfBucketNulKey() {
        let hex = "265def662ae3808168044d68d81cc945eebb382c7a3622ea0c50f92672565192"
        XCTAssertEqual(CacheDirectory.relativePath(bucket: "b", key: "k"), "objects/26/\(hex).data")
        XCTAssertNotEqual(CacheDirectory.relativePath(bucket: "b", key: "k"), CacheDirectory.relativePath(bucket: "bk", key: ""))
    }

    // MARK: The directory itself

    func testCreatesAMissingDirectoryWithMode0700() throws {
        umask(0o022)
        let cache = try CacheDirectory(path: directory, create: true)
        XCTAssertEqual(mode(directory), 0o700)
        _ = try cache.openDataFile(bucket: "b", key: "k")
        let file = directory + "/" + CacheDirectory.relativePath(bucket: "b", key: "k")
        XCTAssertEqual(mode(directory + "/objects"), 0o700)
        XCTAssertEqual(mode((file as NSString).deletingLastPathComponent), 0o700)
        XCTAssertEqual(mode(file), 0o600)
        let lock = try CacheLock(directory: cache)
        XCTAssertEqual(mode(directory + "/lock"), 0o600)
        let index = try CacheIndex(directory: cache)
        _ = try index.openObject(bucket: "b", key: "k", size: 1, etag: "e")
        for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
            XCTAssertEqual(mode(directory + "/" + name), 0o600, name)
        }
        withExtendedLifetime(lock) {}
    }

    /// An index an older goesfs made 0644 is tightened.
    func testExistingIndexFilesAreMadePrivate() throws {
        let cache = try CacheDirectory(path: directory, create: true)
        _ = FileManager.default.createFile(atPath: directory + "/index.sqlite", contents: nil)
        chmod(directory + "/index.sqlite", 0o644)
        _ = try CacheIndex(directory: cache)
        XCTAssertEqual(mode(directory + "/index.sqlite"), 0o600)
    }

    func testRefusesASymbolicLink() throws {
        try FileManager.default.createDirectory(atPath: base + "/real", withIntermediateDirectories: false)
        symlink(base + "/real", directory)
        let message = refusal { _ = try CacheDirectory(path: directory, create: true) }
        XCTAssertTrue(message.contains("is a symbolic link"), message)
    }

    func testRefusesAGroupOrWorldWritableDirectory() throws {
        for bad: mode_t in [0o770, 0o707, 0o1777] {
            try? FileManager.default.removeItem(atPath: directory)
            mkdir(directory, 0o700)
            chmod(directory, bad)
            let message = refusal { _ = try CacheDirectory(path: directory, create: true) }
            XCTAssertTrue(message.contains("is writable by others"), "\(String(bad, radix: 8)): \(message)")
        }
    }

    func testRefusesADirectoryOwnedByAnotherUser() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root to give the directory away")
        mkdir(directory, 0o700)
        chown(directory, 65534, 65534)
        let message = refusal { _ = try CacheDirectory(path: directory, create: true) }
        XCTAssertTrue(message.contains("belongs to uid 65534"), message)
    }

    // MARK: Links planted inside

    func testPlantedDataFileLinkIsReplacedNeverWrittenThrough() throws {
        let cache = try CacheDirectory(path: directory, create: true)
        let relative = CacheDirectory.relativePath(bucket: "b", key: "k")
        let planted = directory + "/" + relative
        try FileManager.default.createDirectory(atPath: (planted as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        symlink(victim, planted)
        let file = try cache.openDataFile(bucket: "b", key: "k")
        try Array("overwritten!".utf8).withUnsafeBytes { try file.write($0, at: 0) }
        try file.truncate()
        assertVictimUntouched()
        var st = stat()
        XCTAssertEqual(lstat(planted, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFREG, "the link was not replaced by a file of ours")
    }

    func testPlantedHardLinkIsReplaced() throws {
        let cache = try CacheDirectory(path: directory, create: true)
        let planted = directory + "/" + CacheDirectory.relativePath(bucket: "b", key: "k")
        try FileManager.default.createDirectory(atPath: (planted as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        XCTAssertEqual(link(victim, planted), 0)
        let file = try cache.openDataFile(bucket: "b", key: "k")
        try file.truncate()
        assertVictimUntouched()
    }

    func testPlantedFolderLinksAreNotFollowed() throws {
        let elsewhere = base + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: false)
        let cache = try CacheDirectory(path: directory, create: true)
        symlink(elsewhere, directory + "/objects")
        _ = try cache.openDataFile(bucket: "b", key: "k")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: elsewhere), [], "a file was created through the link")
    }

    func testPlantedLockAndIndexLinksAreRefused() throws {
        let cache = try CacheDirectory(path: directory, create: true)
        symlink(victim, directory + "/lock")
        let lockMessage = refusal { _ = try CacheLock(directory: cache) }
        XCTAssertTrue(lockMessage.contains("lock"), lockMessage)
        unlink(directory + "/lock")
        for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
            symlink(victim, directory + "/" + name)
            let message = refusal { _ = try CacheIndex(directory: cache) }
            XCTAssertTrue(message.contains("symbolic link"), "\(name): \(message)")
            unlink(directory + "/" + name)
        }
        assertVictimUntouched()
    }

    // MARK: Schema upgrade and damaged rows

    /// A version-2 cache (data files named by FNV-1a) is upgraded: its blocks are forgotten and its
    /// files removed, so no block is ever read from a file of the old naming.
    func testUpgradeFromSchema2ForgetsTheOldBlocks() throws {
        let cache = try CacheDirectory(path: directory, create: true)
        do {
            let index = try CacheIndex(directory: cache)
            let object = try index.openObject(bucket: "b", key: "k", size: 10, etag: "e")
            try index.recordBlock(objectID: object.id, block: 0, crc: 1, length: 10)
            try index.connection().execute("PRAGMA user_version = 2")
        }
        try FileManager.default.createDirectory(atPath: directory + "/objects/ab", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: directory + "/objects/ab/abcdef0123456789.data", contents: Data(count: 10))
        let index = try CacheIndex(directory: cache)
        XCTAssertNotNil(index.upgradeNote)
        XCTAssertTrue(index.upgradeNote?.contains("forgot 1 cached blocks") ?? false, index.upgradeNote ?? "")
        XCTAssertEqual(try index.openObject(bucket: "b", key: "k", size: 10, etag: "e").blocks, [:])
        XCTAssertEqual(try index.connection().query("PRAGMA user_version").first?.first?.int, Int64(CacheIndex.schemaVersion))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/objects/ab/abcdef0123456789.data"))
        XCTAssertNil(try CacheIndex(directory: cache).upgradeNote, "upgraded twice")
    }

    /// A version-3 cache recorded 1 MiB blocks: read as 16 KiB blocks its rows would point at the
    /// wrong bytes, so they are forgotten (never misread) and the note says why.
    func testUpgradeFromSchema3ForgetsTheMiBBlocks() throws {
        let cache = try CacheDirectory(path: directory, create: true)
        do {
            let index = try CacheIndex(directory: cache)
            let object = try index.openObject(bucket: "b", key: "k", size: 3 << 20, etag: "e")
            try index.recordBlocks(objectID: object.id, [(0, 1, 1 << 20), (1, 2, 1 << 20)])
            try index.connection().execute("PRAGMA user_version = 3")
        }
        let index = try CacheIndex(directory: cache)
        XCTAssertTrue(index.upgradeNote?.contains("16 KiB blocks instead of 1 MiB") ?? false, index.upgradeNote ?? "")
        XCTAssertTrue(index.upgradeNote?.contains("forgot 2 cached blocks") ?? false, index.upgradeNote ?? "")
        XCTAssertEqual(try index.openObject(bucket: "b", key: "k", size: 3 << 20, etag: "e").blocks, [:])
    }

    /// Rows no block could have written (a block number whose offset overflows, a negative or huge
    /// length) are reported as damaged and dropped by verify, never trapped on.
    func testVerifyReportsImpossibleRowsAsDamaged() throws {
        let cache = try CacheDirectory(path: directory, create: true)
        let index = try CacheIndex(directory: cache)
        let object = try index.openObject(bucket: "b", key: "k", size: 10, etag: "e")
        let file = try cache.openDataFile(bucket: "b", key: "k")
        let good: [UInt8] = Array(repeating: 7, count: 10)
        try good.withUnsafeBytes { try file.write($0, at: 0) }
        try index.recordBlock(objectID: object.id, block: 0, crc: good.withUnsafeBytes(blockChecksum), length: 10)
        let db = try index.connection()
        for (block, length) in [(Int64(1) << 62, Int64(10)), (5, -1), (6, Int64(1) << 40), (-3, 10)] {
            try db.query("INSERT INTO blocks(object_id, block, crc, length) VALUES(?, ?, 0, ?)", [.integer(object.id), .integer(block), .integer(length)])
        }
        try db.query("INSERT INTO blocks(object_id, block, crc, length) VALUES(?, 'x', 0, 1)", [.integer(object.id)])
        XCTAssertEqual(try index.openObject(bucket: "b", key: "k", size: 10, etag: "e").blocks.count, 1, "the mount's view ignores rows past the end of any file")
        let report = try CacheMaintenance.verify(directory: cache)
        XCTAssertEqual(report.blocksChecked, 6)
        XCTAssertEqual(report.damagedBlocks.count, 5, "\(report.damagedBlocks)")
        XCTAssertEqual(try index.blocks(objectID: object.id).count, 1, "damaged rows were not dropped")
    }

    func testVerifyRemovesStrayEntriesAndClearRemovesEverything() throws {
        let cache = try CacheDirectory(path: directory, create: true)
        _ = try CacheIndex(directory: cache)
        _ = try cache.openDataFile(bucket: "b", key: "stray")
        try FileManager.default.createDirectory(atPath: directory + "/objects/zz", withIntermediateDirectories: true)
        symlink(victim, directory + "/objects/zz/link.data")
        let report = try CacheMaintenance.verify(directory: cache)
        XCTAssertEqual(report.orphanFiles, 2)
        assertVictimUntouched()
        CacheMaintenance.clear(directory: cache)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [])
    }
}
