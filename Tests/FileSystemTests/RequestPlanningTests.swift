import BlockCache
@testable import FileSystem
import Foundation
import Locking
import Logging
import ObjectStore
import TestSupport
import XCTest

/// How reads turn into requests, through the core against fake sources: streaming answers,
/// growing sequential requests, small fetches for scattered reads, background fill, cut requests.
final class RequestPlanningTests: XCTestCase {
    static let bucket = "noaa-goes16"
    static let key = "ABI-L1b-RadF/2023/066/14/OR_ABI-L1b-RadF-M6C02_G16_s20230661400204_e20230661409512_c20230661409548.nc"
    static let path: MountPath = [bucket] + key.split(separator: "/").map(String.init)
    let block = CacheIndex.blockSize

    var directory: String!
    var source: InMemorySource!
    var bytes: [UInt8]!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "goesfs-planning-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        source = InMemorySource()
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    private func put(size: Int) {
        let random = FileHandle(forReadingAtPath: "/dev/urandom")!
        bytes = [UInt8](random.readData(ofLength: size))
        random.closeFile()
        source.put(bucket: Self.bucket, key: Self.key, bytes: bytes, etag: "\"v1\"")
    }

    private func makeFileSystem(_ client: any ObjectSource, prefetch: Bool = true) throws -> GOESFileSystem {
        var configuration = MountConfiguration(buckets: [Self.bucket], cacheDirectory: directory, cacheLimit: 1 << 30, downloadThreads: 8)
        configuration.prefetch = prefetch
        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        return GOESFileSystem(configuration: configuration, client: client, index: index, statistics: Statistics(), logger: Logger(label: "test"))
    }

    private func read(_ fs: GOESFileSystem, _ handle: UInt64, offset: Int, length: Int) -> Result<[UInt8], FSError> {
        let result = fs.readWaiting(handle: handle, offset: offset, length: length)
        XCTAssertNotNil(result, "no reply within 30 s")
        return result ?? .failure(.io("no reply"))
    }

    /// Waits (bounded) until `condition` holds: for background work nobody replies to.
    private func eventually(_ what: String, within seconds: Double = 20, _ condition: () -> Bool) {
        let deadline = Date() + seconds
        while !condition() && Date() < deadline { usleep(2000) }
        XCTAssertTrue(condition(), what)
    }

    private func fetchedBlocks() -> [Int] {
        source.fetches.flatMap { ($0.range.lowerBound / block)...(($0.range.upperBound - 1) / block) }
    }

    /// Delivers the first `early` bytes of each fetch, then holds the rest until the gate opens.
    final class HeldSource: ObjectSource, Sendable {
        let inner: InMemorySource
        let early: Int
        let gate = DispatchSemaphore(value: 0)
        init(_ inner: InMemorySource, early: Int) { self.inner = inner; self.early = early }
        var diagnosticSources: [Source] { [] }
        func list(bucket: String, prefix: String) throws(FetchError) -> (listing: Listing, rejected: [String]) {
            try inner.list(bucket: bucket, prefix: prefix)
        }
        func fetch(bucket: String, key: String, objectSize: Int, etag: String, range: Range<Int>,
                   into buffer: UnsafeMutableRawBufferPointer, progress: ((Int) -> Void)?, arrived: ((Int) -> Void)?) throws(FetchError) {
            try inner.fetch(bucket: bucket, key: key, objectSize: objectSize, etag: etag, range: range, into: buffer, progress: nil, arrived: nil)
            arrived?(min(early, range.count))
            gate.wait()
            arrived?(range.count)
        }
    }

    func testAReaderIsAnsweredFromTheFirstBytesWhileTheRestOfTheRequestStillArrives() throws {
        put(size: 4 << 20)
        let held = HeldSource(source, early: 20 << 10)
        let fs = try makeFileSystem(held, prefetch: false)
        let handle = try fs.open(Self.path)
        defer { fs.release(handle: handle) }
        // The first read of a cold file asks for the header region in one request, but its own
        // 16 KiB are answered as soon as they are in.
        XCTAssertTrue(try read(fs, handle, offset: 0, length: 16 << 10).get() == Array(bytes[0..<(16 << 10)]), "bytes differ")
        XCTAssertEqual(source.fetches.map(\.range), [0..<Policies().headBytes], "one request for the header region")
        held.gate.signal()
        // The rest of that request lands in the cache: no new request for it.
        XCTAssertTrue(try read(fs, handle, offset: 16 << 10, length: Policies().headBytes - (16 << 10)).get() == Array(bytes[(16 << 10)..<Policies().headBytes]), "bytes differ")
        XCTAssertEqual(source.fetches.count, 1)
    }

    func testASequentialReaderGetsGrowingRequestsSeveralInFlightAndNoByteTwice() throws {
        let size = 40 << 20
        put(size: size)
        let slow = FaultySource(source)
        slow.arm(.latency(seconds: 0.02))
        let fs = try makeFileSystem(slow)
        let handle = try fs.open(Self.path)
        defer { fs.release(handle: handle) }
        var got: [UInt8] = []
        let chunk = 128 << 10
        for offset in stride(from: 0, to: size, by: chunk) { got += try read(fs, handle, offset: offset, length: chunk).get() }
        XCTAssertTrue(got == bytes, "bytes differ from the source")
        let sizes = source.fetches.sorted { $0.range.lowerBound < $1.range.lowerBound }.map(\.range.count)
        // A quarter of the run each; the window (four times the run) reaches the end of 40 MiB
        // early, so here they grow to about 2 MiB (8 MiB on big files).
        XCTAssertGreaterThan(sizes.max() ?? 0, 1 << 20, "requests grow as the run goes on: \(sizes)")
        XCTAssertLessThanOrEqual(sizes.max() ?? 0, Policies().maxRequestBytes)
        XCTAssertLessThan(source.fetches.count, 50, "40 MiB in MiB-sized requests after a short ramp, not one per block: \(sizes)")
        XCTAssertGreaterThanOrEqual(slow.mostConcurrentFetches, 2, "several requests in flight for one reader")
        eventually("readahead past the end never happens; what was fetched is all there is") { fetchedBlocks().count == size / block }
        XCTAssertEqual(Set(fetchedBlocks()).count, fetchedBlocks().count, "no block fetched twice")
    }

    func testScatteredReadsFetchOnlyTheirBlocksUntilManyMissesThenTheRestComesInTheBackground() throws {
        let size = 32 << 20
        put(size: size)
        let fs = try makeFileSystem(source)
        let handle = try fs.open(Self.path)
        defer { fs.release(handle: handle) }
        let policies = Policies()
        // Far-apart 4 KiB reads, each inside one block, away from offset 0 (no header region).
        let offsets = (1...policies.backgroundFillAfterMisses).map { $0 * (2 << 20) + 1000 }
        for offset in offsets.dropLast() {
            XCTAssertTrue(try read(fs, handle, offset: offset, length: 4096).get() == Array(bytes[offset..<(offset + 4096)]), "bytes differ")
        }
        XCTAssertEqual(fetchedBlocks().sorted(), offsets.dropLast().map { $0 / block }, "one block per scattered read, no readahead")
        // One more miss: the object counts as randomly read, and the rest is fetched in the background.
        let last = offsets.last!
        XCTAssertTrue(try read(fs, handle, offset: last, length: 4096).get() == Array(bytes[last..<(last + 4096)]), "bytes differ")
        eventually("the whole object arrives in the background") { Set(fetchedBlocks()).count == size / block }
        XCTAssertEqual(fetchedBlocks().count, size / block, "no block fetched twice")
        XCTAssertLessThanOrEqual(source.fetches.map(\.range.count).max() ?? 0, policies.maxRequestBytes)
        source.resetCounts()
        XCTAssertTrue(try read(fs, handle, offset: 5 << 20, length: 1 << 20).get() == Array(bytes[(5 << 20)..<(6 << 20)]), "bytes differ")
        XCTAssertEqual(source.fetches.count, 0, "after the fill every read is local")
    }

    func testASliceOfAFileStaysASlice() throws {
        put(size: 24 << 20)
        let fs = try makeFileSystem(source)
        let handle = try fs.open(Self.path)
        defer { fs.release(handle: handle) }
        // h5netcdf opening a file and reading a 100×100 slice: header reads, the trailer, a few chunks.
        for i in 0..<100 { _ = try read(fs, handle, offset: (i * 7919) % 100_000, length: 512).get() }
        _ = try read(fs, handle, offset: bytes.count - 1024, length: 1024).get()
        for chunk in [3, 7, 11, 19] { _ = try read(fs, handle, offset: chunk << 20, length: 40_000).get() }
        let fetched = fetchedBlocks().count * block
        XCTAssertLessThanOrEqual(fetched, 320 << 10, "a slice fetches what it reads, rounded to blocks: \(fetched) bytes")
    }

    func testACutRequestKeepsTheBlocksThatArrivedAndFailsOnlyTheRest() throws {
        put(size: 4 << 20)
        let faulty = FaultySource(source)
        faulty.arm(.cut(afterBytes: 40 << 10))
        let fs = try makeFileSystem(faulty, prefetch: false)
        let handle = try fs.open(Self.path)
        defer { fs.release(handle: handle) }
        // The header request (64 KiB) is cut after 40 KiB: the reader of the first 16 KiB has its bytes.
        XCTAssertTrue(try read(fs, handle, offset: 0, length: 16 << 10).get() == Array(bytes[0..<(16 << 10)]), "bytes differ")
        guard case .failure(.io) = read(fs, handle, offset: 48 << 10, length: 1000) else { return XCTFail("the block that never arrived fails (EIO)") }
        source.resetCounts()
        // The two whole blocks that arrived were stored: read again, from disk.
        XCTAssertTrue(try read(fs, handle, offset: 0, length: 32 << 10).get() == Array(bytes[0..<(32 << 10)]), "bytes differ")
        XCTAssertEqual(source.fetches.count, 0, "complete blocks of a cut request are kept")
    }

    func testAWalkThroughScansPrefetchesWhatWasReadOfTheLastScanNotWholeFilesNorHiddenDuplicates() throws {
        let hour = "ABI-L1b-RadC/2023/066/14/"
        func name(_ minute: Int, created: Int = 30) -> String {
            String(format: "OR_ABI-L1b-RadC-M6C13_G16_s202306614%02d171_e202306614%02d544_c202306614%02d%03d.nc", minute, minute + 2, minute + 3, created)
        }
        let size = 8 << 20
        let random = FileHandle(forReadingAtPath: "/dev/urandom")!
        for minute in [1, 6, 11, 16] {
            source.put(bucket: Self.bucket, key: hour + name(minute), bytes: [UInt8](random.readData(ofLength: size)), etag: "\"\(minute)\"")
        }
        // An older processing of the 11-minute scan: the friendly view hides it, so prefetch must too.
        source.put(bucket: Self.bucket, key: hour + name(11, created: 10), bytes: [UInt8](random.readData(ofLength: size)), etag: "\"old\"")
        random.closeFile()
        let fs = try makeFileSystem(source)
        func path(_ minute: Int) -> MountPath { [Self.bucket] + (hour + name(minute)).split(separator: "/").map(String.init) }
        // Scan 1: the header and a slice's chunks, then closed.
        let first = try fs.open(path(1))
        for (offset, length) in [(0, 40_000), (3 << 20, 100_000), (size - 2000, 2000)] { _ = try read(fs, first, offset: offset, length: length).get() }
        fs.release(handle: first)
        source.resetCounts()
        // Scan 2 opened: a walk. Scans 3 and 4 get scan 1's ranges (with slack), nothing more.
        let second = try fs.open(path(6))
        defer { fs.release(handle: second) }
        let replayed = ScanPrefetcher.replay(.init(size: size, ranges: [0..<(3 * block), (3 << 20)..<((3 << 20) + 7 * block), (size - block)..<size]), onto: size)
        eventually("scans 3 and 4 are prefetched") { Set(source.fetches.map(\.key)) == [hour + name(11), hour + name(16)] }
        for fetch in source.fetches {
            XCTAssertTrue(replayed.contains { $0.lowerBound - block < fetch.range.lowerBound && fetch.range.upperBound < $0.upperBound + block },
                          "\(fetch.range) of \(fetch.key) is outside the replayed ranges \(replayed)")
        }
        let perScan = source.fetches.filter { $0.key == hour + name(11) }.reduce(0) { $0 + $1.range.count }
        XCTAssertLessThan(perScan, size / 4, "a slice's worth per scan, not the whole file")
    }
}
