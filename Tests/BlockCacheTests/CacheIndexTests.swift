@testable import BlockCache
import Foundation
import XCTest

final class CacheIndexTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "goesfs-index-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func testObjectBlocksRoundTripAndInvalidation() throws {
        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        let first = try index.openObject(bucket: "b", key: "k", size: 10, etag: "e1")
        XCTAssertEqual(first.blocks, [:])
        try index.recordBlock(objectID: first.id, block: 3, crc: 0xDEADBEEF, length: 100)
        try index.recordBlock(objectID: first.id, block: 4, crc: 7, length: 100)
        try index.dropBlocks(objectID: first.id, [4])
        let again = try index.openObject(bucket: "b", key: "k", size: 10, etag: "e1")
        XCTAssertEqual(again.id, first.id)
        XCTAssertEqual(again.blocks, [3: 0xDEADBEEF])
        XCTAssertFalse(again.invalidated)
        let changed = try index.openObject(bucket: "b", key: "k", size: 10, etag: "e2")
        XCTAssertTrue(changed.invalidated)
        XCTAssertEqual(changed.blocks, [:])
    }

    func testIndexSurvivesReopening() throws {
        do {
            let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
            let object = try index.openObject(bucket: "b", key: "k", size: 1, etag: "e")
            try index.recordBlock(objectID: object.id, block: 0, crc: 42, length: 1)
        }
        let reopened = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        XCTAssertEqual(try reopened.openObject(bucket: "b", key: "k", size: 1, etag: "e").blocks, [0: 42])
    }

    func testGarbageIndexIsMovedAsideAndRebuilt() throws {
        let path = directory + "/index.sqlite"
        try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: path))
        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        XCTAssertNotNil(index.recoveredFromCorruption)
        XCTAssertEqual(try index.openObject(bucket: "b", key: "k", size: 1, etag: "e").blocks, [:])
        let aside = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".corrupt-") }
        XCTAssertEqual(aside.count, 1)
    }

    /// Many threads write and read at once, each on its own connection; exiting threads close theirs.
    func testConcurrentThreadsEachUseAndCloseTheirOwnConnection() throws {
        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        let threads = 16, blocksPerThread = 50
        let failures = LockedCounter()
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                do {
                    let object = try index.openObject(bucket: "b", key: "key-\(t % 4)", size: 1 << 30, etag: "e")
                    for block in 0..<blocksPerThread {
                        try index.recordBlock(objectID: object.id, block: t * blocksPerThread + block, crc: UInt32(block), length: 1)
                    }
                    _ = try index.storedListing(bucket: "b", prefix: "p")
                } catch {
                    failures.add()
                }
            }
            thread.start()
        }
        group.wait()
        XCTAssertEqual(failures.value, 0)
        // Thread-exit destructors run after the body returns; wait for them without sleeping blindly.
        let deadline = Date().addingTimeInterval(5)
        while index.openConnectionCount > 0 && Date() < deadline { usleep(1000) }
        XCTAssertEqual(index.openConnectionCount, 0)
        var total = 0
        for k in 0..<4 { total += try index.openObject(bucket: "b", key: "key-\(k)", size: 1 << 30, etag: "e").blocks.count }
        XCTAssertEqual(total, threads * blocksPerThread)
    }

    /// Open descriptors of the index files (database, WAL, shared memory) in this process.
    private func indexDescriptors() -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { fd in
            ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd)) ?? "").hasPrefix(directory + "/index.sqlite")
        }.count
    }

    /// SQLite may keep a closed connection's descriptors for reuse while another connection of the
    /// process holds the WAL open (POSIX locks are per process): the count must stay small and
    /// flat, whatever the number of threads that came and went.
    func testShortLivedThreadsLeaveNoDescriptorsBehind() throws {
        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        _ = try index.cachedBytes() // this thread's connection stays open throughout
        func runThreads(_ count: Int) {
            for round in 0..<count {
                let done = DispatchSemaphore(value: 0)
                let thread = Thread {
                    _ = try? index.openObject(bucket: "b", key: "k\(round)", size: 1, etag: "e")
                    done.signal()
                }
                thread.start()
                done.wait()
            }
            let deadline = Date().addingTimeInterval(5)
            while index.openConnectionCount > 1 && Date() < deadline { usleep(1000) }
        }
        runThreads(60)
        XCTAssertEqual(index.openConnectionCount, 1)
        // This thread's connection holds 3 (database, WAL, shared memory); SQLite may park up to a
        // few more for reuse. Sixty leaked connections would hold 180.
        XCTAssertLessThanOrEqual(indexDescriptors(), 6, "descriptors grew with the number of threads")
    }

    func testDataFileWritesAtOffsetsAndChecksums() throws {
        let cache = try CacheDirectory(path: directory, create: false)
        let file = try cache.openDataFile(bucket: "b", key: "../../etc/passwd")
        XCTAssertTrue(file.path.hasPrefix(directory + "/objects/"))
        let bytes: [UInt8] = Array(0..<200).map { UInt8($0) }
        try bytes.withUnsafeBytes { try file.write($0, at: 1000) }
        var back = [UInt8](repeating: 0, count: 300)
        let got = try back.withUnsafeMutableBytes { try file.read(into: $0, at: 1000) }
        XCTAssertEqual(got, 200)
        XCTAssertEqual(Array(back[0..<200]), bytes)
        XCTAssertEqual("123456789".utf8.withContiguousStorageIfAvailable { blockChecksum(UnsafeRawBufferPointer($0)) }, 0xE3069283) // CRC-32C check value
    }

    /// Pruning drops the listings fetched longest ago (not those stored first) down to 90 % of the
    /// bound, counting bytes of UTF-8, and stores report the size of the body they replace.
    func testPruneListingsDropsTheOldestFetchedFirst() throws {
        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        let body = String(repeating: "é", count: 50) // 100 bytes, 50 characters
        for i in 0..<10 {
            // Stored in order 0…9, fetched in reverse: 9 is the oldest.
            XCTAssertNil(try index.storeListing(bucket: "b", prefix: "p\(i)/", fetchedAt: Double(1000 - i), body: body))
        }
        XCTAssertEqual(try index.storeListing(bucket: "b", prefix: "p0/", fetchedAt: 1000, body: body), 100)
        XCTAssertEqual(try index.listingSummary().count, 10)
        XCTAssertEqual(try index.listingSummary().bytes, 1000)
        XCTAssertEqual(try index.pruneListings(maxBytes: 1000).removed, 0)
        let left = try index.pruneListings(maxBytes: 999)
        XCTAssertEqual(left.removed, 2) // down to 899 bytes at most
        XCTAssertEqual(left.count, 8)
        XCTAssertEqual(left.bytes, 800)
        XCTAssertNil(try index.storedListing(bucket: "b", prefix: "p9/"))
        XCTAssertNil(try index.storedListing(bucket: "b", prefix: "p8/"))
        XCTAssertNotNil(try index.storedListing(bucket: "b", prefix: "p7/"))
        XCTAssertEqual(try index.dropListing(bucket: "b", prefix: "p7/"), 100)
        XCTAssertNil(try index.dropListing(bucket: "b", prefix: "p7/"))
        XCTAssertEqual(try index.listingSummary().bytes, 700)
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

final class RuntimeCorruptionTests: XCTestCase {
    /// An index whose first page is fine (so it opens) but whose interior pages are garbage: the
    /// damage shows only when a query reaches them, long after the mount started. It used to fail
    /// every open with EIO and no log line; now it is moved aside and replaced, and the query succeeds.
    func testDamagedInteriorPagesAreFoundWhileRunningAndReplaced() throws {
        let directory = NSTemporaryDirectory() + "goesfs-corrupt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
            for n in 0..<400 {
                let object = try index.openObject(bucket: "b", key: "key-\(n)-" + String(repeating: "x", count: 200), size: 1 << 30, etag: "e")
                for block in 0..<8 { try index.recordBlock(objectID: object.id, block: block, crc: UInt32(block), length: 1 << 20) }
            }
            try index.checkpoint()
        }
        let file = directory + "/index.sqlite"
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: file)[.size] as? Int)
        XCTAssertGreaterThan(size, 64 << 10)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: file))
        handle.seek(toFileOffset: 8192)   // page 1 (the header and schema) stays intact
        handle.write(Data(repeating: 0xA5, count: size - 8192))
        handle.closeFile()

        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        XCTAssertNil(index.recoveredFromCorruption, "the damage must not be visible at open for this test to mean anything")
        let notes = NoteBox()
        index.onRecovery { notes.append($0) }
        let object = try index.openObject(bucket: "b", key: "key-7-" + String(repeating: "x", count: 200), size: 1 << 30, etag: "e")
        XCTAssertEqual(object.blocks, [:], "the fresh index knows no blocks")
        XCTAssertEqual(notes.values.count, 1)
        XCTAssertTrue(notes.values.first?.contains("damaged") ?? false)
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: directory).contains { $0.contains(".corrupt-") })
        // And it goes on working, on this thread and others.
        try index.recordBlock(objectID: object.id, block: 0, crc: 1, length: 10)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            XCTAssertEqual(try? index.cachedBytes(), 10)
            done.signal()
        }
        done.wait()
        XCTAssertEqual(try index.cachedBytes(), 10)
    }
}

private final class NoteBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ note: String) { lock.lock(); stored.append(note); lock.unlock() }
    var values: [String] { lock.lock(); defer { lock.unlock() }; return stored }
}

final class NewerSchemaTests: XCTestCase {
    func testAnIndexFromANewerGoesfsIsRefusedNotMisread() throws {
        let directory = NSTemporaryDirectory() + "goesfs-newer-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
            try index.connection().execute("PRAGMA user_version = \(CacheIndex.schemaVersion + 1)")
        }
        XCTAssertThrowsError(try CacheIndex(directory: CacheDirectory(path: directory, create: false))) { error in
            XCTAssertTrue("\(error)".contains("newer goesfs"), "\(error)")
        }
    }
}
