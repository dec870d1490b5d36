import BlockCache
@testable import FileSystem
import Foundation
import Logging
import ObjectStore
import TestSupport
import XCTest

/// The read path in-process: the filesystem core against fake sources, with a real cache
/// directory but no kernel and no network.
final class ReadPathTests: XCTestCase {
    static let bucket = "noaa-goes16"
    static let hour = "ABI-L1b-RadC/2023/066/14/"
    static let name = "OR_ABI-L1b-RadC-M6C13_G16_s20230661401172_e20230661403545_c20230661404012.nc"
    static let key = hour + name
    static let mib = 1 << 20
    static let path: MountPath = [bucket] + key.split(separator: "/").map(String.init)

    var directory: String!
    var source: InMemorySource!
    var bytes: [UInt8]!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "goesfs-readpath-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        source = InMemorySource()
        let random = try XCTUnwrap(FileHandle(forReadingAtPath: "/dev/urandom"))
        bytes = [UInt8](random.readData(ofLength: 3 * ReadPathTests.mib + 12345))
        random.closeFile()
        source.put(bucket: ReadPathTests.bucket, key: ReadPathTests.key, bytes: bytes, etag: "\"v1\"")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    private func makeFileSystem(_ client: any ObjectSource) throws -> GOESFileSystem {
        var configuration = MountConfiguration(buckets: [ReadPathTests.bucket], cacheDirectory: directory, cacheLimit: 1 << 30, downloadThreads: 4)
        configuration.prefetch = false   // exact accounting: only what a test reads is fetched
        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        return GOESFileSystem(configuration: configuration, client: client, index: index, statistics: Statistics(), logger: Logger(label: "test"))
    }

    /// Opens, reads and releases, waiting for the reply (which may come on a download thread).
    private func read(_ fs: GOESFileSystem, offset: Int, length: Int, path: MountPath = ReadPathTests.path) throws -> Result<[UInt8], FSError> {
        let handle = try fs.open(path)
        defer { fs.release(handle: handle) }
        return Self.readOpen(fs, handle: handle, offset: offset, length: length)
    }

    private static func readOpen(_ fs: GOESFileSystem, handle: UInt64, offset: Int, length: Int) -> Result<[UInt8], FSError> {
        fs.readWaiting(handle: handle, offset: offset, length: length, seconds: 60) ?? .failure(.io("no reply within 60 s"))
    }

    /// Byte arrays compared without printing megabytes when they differ.
    private func assertBytes(_ got: [UInt8], _ want: [UInt8], _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
        guard got != want else { return }
        let first = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
        XCTFail("bytes differ (\(got.count) vs \(want.count) bytes, first at \(first)) \(message)", file: file, line: line)
    }

    func testReadsReturnTheSourceBytesAtBlockEdgesAndFetchOnlyTheirBlocks() throws {
        let fs = try makeFileSystem(source)
        let mib = ReadPathTests.mib
        for (offset, length) in [(0, 1), (mib - 1, 2), (mib, mib), (3 * mib, 12345), (3 * mib + 12000, 4096), (2 * mib + 5, 3)] {
            assertBytes(try read(fs, offset: offset, length: length).get(), Array(bytes[offset..<min(bytes.count, offset + length)]), "\(offset)+\(length)")
        }
        assertBytes(try read(fs, offset: bytes.count, length: 10).get(), [])
        assertBytes(try read(fs, offset: Int.max - 5, length: 1 << 20).get(), [], "a huge offset is past the end, not a trap")
        // Whole blocks only, no byte twice, and nothing beyond the blocks read plus the header
        // region a read at offset 0 brings (the policy's `headBytes`).
        let block = CacheIndex.blockSize
        let fetched = source.fetches.map(\.range).sorted { $0.lowerBound < $1.lowerBound }
        for (a, b) in zip(fetched, fetched.dropFirst()) { XCTAssertLessThanOrEqual(a.upperBound, b.lowerBound, "\(a) and \(b) overlap") }
        for range in fetched { XCTAssertEqual(range.lowerBound % block, 0, "\(range) starts inside a block") }
        let reads: [(Int, Int)] = [(0, 1), (mib - 1, 2), (mib, mib), (3 * mib, 12345), (3 * mib + 12000, 4096), (2 * mib + 5, 3)]
        var needed = Set(0..<(Policies().headBytes / block))
        for (offset, length) in reads {
            let last = (min(bytes.count, offset + length) - 1) / block
            needed.formUnion((offset / block)...last)
        }
        XCTAssertEqual(Set(fetched.flatMap { ($0.lowerBound / block)...(($0.upperBound - 1) / block) }), needed)
    }

    func testConcurrentReadersOfAMissingBlockShareOneFetch() throws {
        let slow = FaultySource(source)
        slow.arm(.latency(seconds: 0.3))
        let fs = try makeFileSystem(slow)
        let handle = try fs.open(ReadPathTests.path)
        defer { fs.release(handle: handle) }
        let results = ResultsBox()
        let finished = DispatchGroup()
        // Sixteen threads of their own (not a pool the size of the machine), all asking while the
        // one fetch is still under way.
        for i in 0..<16 {
            finished.enter()
            Thread.detachNewThread {
                results.append(Self.readOpen(fs, handle: handle, offset: 1000 + i, length: 100))
                finished.leave()
            }
        }
        finished.wait()
        XCTAssertEqual(results.values.count, 16)
        for (i, result) in results.values.enumerated() { XCTAssertEqual(try result.get().count, 100, "\(i)") }
        XCTAssertEqual(source.fetches.count, 1, "16 readers of one missing block: one fetch")
    }

    func testCachedBlocksSurviveANewMountAndDamageIsRepairedNotServed() throws {
        do {
            let fs = try makeFileSystem(source)
            assertBytes(try read(fs, offset: 0, length: bytes.count).get(), bytes)
        }
        source.resetCounts()
        do {
            let fs = try makeFileSystem(source)
            assertBytes(try read(fs, offset: 0, length: bytes.count).get(), bytes)
            XCTAssertEqual(source.fetches, [], "a new mount on the same cache reads it from disk")
        }
        // Flip a byte of block 1 on disk: the next mount checks it, drops it and fetches it again.
        let file = directory + "/" + CacheDirectory.relativePath(bucket: ReadPathTests.bucket, key: ReadPathTests.key)
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: file))
        handle.seek(toFileOffset: UInt64(ReadPathTests.mib + 77))
        handle.write(Data([bytes[ReadPathTests.mib + 77] ^ 0xFF]))
        handle.closeFile()
        source.resetCounts()
        let fs = try makeFileSystem(source)
        assertBytes(try read(fs, offset: 0, length: bytes.count).get(), bytes)
        XCTAssertEqual(source.fetches.map { $0.range.lowerBound / ReadPathTests.mib }, [1])
        XCTAssertEqual(fs.statistics.snapshot().repairs, 1)
    }

    /// Bytes changed in the cache while mounted (by another process) are checked again, not served:
    /// with the file open all along, and after it was closed and opened again.
    func testACacheFileChangedWhileMountedIsCheckedAgain() throws {
        let fs = try makeFileSystem(source)
        let file = directory + "/" + CacheDirectory.relativePath(bucket: ReadPathTests.bucket, key: ReadPathTests.key)
        func flip(_ offset: Int) throws {
            let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: file))
            handle.seek(toFileOffset: UInt64(offset))
            handle.write(Data([bytes[offset] ^ 0xFF]))
            handle.closeFile()
        }
        let handle = try fs.open(ReadPathTests.path)
        assertBytes(try Self.readOpen(fs, handle: handle, offset: 0, length: bytes.count).get(), bytes)
        source.resetCounts()
        try flip(ReadPathTests.mib + 5)
        assertBytes(try Self.readOpen(fs, handle: handle, offset: 0, length: bytes.count).get(), bytes)
        XCTAssertEqual(source.fetches.map { $0.range.lowerBound / ReadPathTests.mib }, [1], "the damaged block fetched again")
        fs.release(handle: handle)
        source.resetCounts()
        try flip(2 * ReadPathTests.mib + 9)
        assertBytes(try read(fs, offset: 0, length: bytes.count).get(), bytes)
        XCTAssertEqual(source.fetches.map { $0.range.lowerBound / ReadPathTests.mib }, [2])
    }

    func testAFailedBlockIsRememberedBrieflyNotRetriedAtOnce() throws {
        let faulty = FaultySource(source)
        faulty.arm(.fail(FetchError(category: .network, message: "connection reset"), count: 1))
        let fs = try makeFileSystem(faulty)
        let handle = try fs.open(ReadPathTests.path)
        defer { fs.release(handle: handle) }
        guard case .failure(.io) = Self.readOpen(fs, handle: handle, offset: 0, length: 10) else { return XCTFail("EIO expected") }
        // The kernel re-reads at once after a failed readahead: answered from memory, not fetched again.
        guard case .failure(.io) = Self.readOpen(fs, handle: handle, offset: 0, length: 10) else { return XCTFail("EIO expected at once") }
        XCTAssertEqual(source.fetches.count, 0, "the immediate re-read must not double every retry")
        faulty.arm(.fail(FetchError(category: .timeout, message: "deadline"), count: 1))
        guard case .failure(.timedOut) = Self.readOpen(fs, handle: handle, offset: ReadPathTests.mib, length: 10) else {
            return XCTFail("ETIMEDOUT expected for a deadline")
        }
    }

    func testAnObjectChangedAtTheSourceIsStaleAndItsListingForgotten() throws {
        let fs = try makeFileSystem(source)
        assertBytes(try read(fs, offset: 0, length: 10).get(), Array(bytes[0..<10]))
        // The source now holds another version: its ETag no longer matches the listed one.
        let v2 = bytes.map { $0 ^ 0x5A }
        source.put(bucket: ReadPathTests.bucket, key: ReadPathTests.key, bytes: v2, etag: "\"v2\"")
        let handle = try fs.open(ReadPathTests.path)
        guard case .failure(.stale) = Self.readOpen(fs, handle: handle, offset: 2 * ReadPathTests.mib, length: 10) else {
            return XCTFail("a read after the change must fail with ESTALE, never mix versions")
        }
        guard case .failure(.stale) = Self.readOpen(fs, handle: handle, offset: 0, length: 10) else {
            return XCTFail("the changed object fails every read until reopened")
        }
        fs.release(handle: handle)
        source.resetCounts()
        // Reopening lists the folder again and reads the new version, all of it.
        assertBytes(try read(fs, offset: 0, length: v2.count).get(), v2)
        XCTAssertEqual(source.listingRequests, [ReadPathTests.hour])
    }

    func testAKnownKeyIsFoundWithOneListingAndHostileNamesCostNothing() throws {
        let fs = try makeFileSystem(source)
        let attributes = try fs.attributes(ReadPathTests.path)
        XCTAssertEqual(attributes.size, bytes.count)
        for level in 2..<ReadPathTests.path.count { XCTAssertEqual(try fs.attributes(Array(ReadPathTests.path.prefix(level))).kind, .directory) }
        XCTAssertEqual(source.listingRequests, [ReadPathTests.hour], "only the hour folder is listed")
        source.resetCounts()
        for name in [".nc", "~.nc", "x", "2023-03-07T14:23Z~infh.nc", "2023-03-07T14:23Z~1e9h.nc", "9999-12-31T23:59:60Z.nc"] {
            XCTAssertThrowsError(try fs.attributes(["goes16", "RadC", "C13", "at", name]), name)
        }
        XCTAssertLessThanOrEqual(source.listingRequests.count, 1, "malformed names are refused before any listing")
    }
}

private final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Result<[UInt8], FSError>] = []
    func append(_ r: Result<[UInt8], FSError>) { lock.lock(); stored.append(r); lock.unlock() }
    var values: [Result<[UInt8], FSError>] { lock.lock(); defer { lock.unlock() }; return stored }
}
