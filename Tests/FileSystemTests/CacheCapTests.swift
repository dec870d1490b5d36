import BlockCache
@testable import FileSystem
import Foundation
import Locking
import Logging
import ObjectStore
import TestSupport
import XCTest

/// The cache's cap in-process: room is reserved before a block is written, closed objects and cold
/// extents of open ones are evicted least recently used first, and bytes a reply is being served
/// from are never freed under it.
final class CacheCapTests: XCTestCase {
    static let bucket = "noaa-goes16"
    static let hour = "ABI-L1b-RadC/2023/066/14/"
    static let mib = 1 << 20
    static func name(_ n: Int) -> String {
        "OR_ABI-L1b-RadC-M6C\(String(format: "%02d", n))_G16_s20230661401172_e20230661403545_c20230661404012.nc"
    }
    static func path(_ n: Int) -> MountPath { [bucket] + (hour + name(n)).split(separator: "/").map(String.init) }

    var directory: String!
    var source: InMemorySource!
    var objects: [Int: [UInt8]] = [:]
    var index: CacheIndex!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "goesfs-cap-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        source = InMemorySource()
        let random = try XCTUnwrap(FileHandle(forReadingAtPath: "/dev/urandom"))
        for (n, size) in [(1, 6 * Self.mib + 777), (2, 2 * Self.mib), (3, 6 * Self.mib)] {
            let bytes = [UInt8](random.readData(ofLength: size))
            objects[n] = bytes
            source.put(bucket: Self.bucket, key: Self.hour + Self.name(n), bytes: bytes, etag: "\"v\(n)\"")
        }
        random.closeFile()
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    private func makeFileSystem(cap: Int) throws -> GOESFileSystem {
        var configuration = MountConfiguration(buckets: [Self.bucket], cacheDirectory: directory, cacheLimit: cap, downloadThreads: 4)
        configuration.prefetch = false   // only what a test reads is fetched
        index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        return GOESFileSystem(configuration: configuration, client: source, index: index, statistics: Statistics(), logger: Logger(label: "test"))
    }

    /// Bytes the data files take on disk (allocated blocks, as `du` counts them).
    private func dataOnDisk() -> Int {
        guard let walker = FileManager.default.enumerator(atPath: directory + "/objects") else { return 0 }
        var total = 0
        for case let name as String in walker {
            var st = stat()
            if stat(directory + "/objects/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { total += Int(st.st_blocks) * 512 }
        }
        return total
    }

    private func read(_ fs: GOESFileSystem, _ handle: UInt64, _ offset: Int, _ length: Int) throws -> [UInt8] {
        try XCTUnwrap(fs.readWaiting(handle: handle, offset: offset, length: length, seconds: 60), "no reply").get()
    }

    private func check(_ got: [UInt8], _ n: Int, _ offset: Int, _ length: Int, file: StaticString = #filePath, line: UInt = #line) {
        let want = objects[n]![offset..<min(objects[n]!.count, offset + length)]
        if got != Array(want) { XCTFail("object \(n) bytes \(offset)+\(length) differ", file: file, line: line) }
    }

    func testTheCapHoldsWhileOneFileBiggerThanItIsReadOpen() throws {
        let cap = 2 * Self.mib
        let fs = try makeFileSystem(cap: cap)
        let handle = try fs.open(Self.path(1))
        defer { fs.release(handle: handle) }
        let size = objects[1]!.count
        for pass in 0..<2 {
            for offset in stride(from: 0, to: size, by: 128 << 10) {
                check(try read(fs, handle, offset, 128 << 10), 1, offset, 128 << 10)
                XCTAssertLessThanOrEqual(fs.cacheCapacity().used, cap, "pass \(pass) at \(offset)")
                // A data file's last block may take a partial page more than its bytes.
                XCTAssertLessThanOrEqual(dataOnDisk(), cap + 4096, "pass \(pass) at \(offset)")
            }
        }
        XCTAssertLessThanOrEqual(try index.cachedBytes(), cap)
        let evictions = fs.snapshot().evictions
        XCTAssertGreaterThan(evictions.openExtents, 0, "the open file's cold parts were evicted")
        XCTAssertEqual(evictions.closedObjects, 0)
        // The second pass fetched again what the first had to evict: every byte twice, no more.
        let fetched = source.fetches.reduce(0) { $0 + $1.range.count }
        XCTAssertGreaterThanOrEqual(fetched, 2 * size - cap)
        XCTAssertLessThanOrEqual(fetched, 2 * size)
    }

    func testClosedObjectsLeaveBeforeTheRecentlyReadPartOfAnOpenOne() throws {
        let cap = 4 * Self.mib
        let fs = try makeFileSystem(cap: cap)
        // Object 2 (2 MiB) read whole and closed first: the least recently used.
        let two = try fs.open(Self.path(2))
        check(try read(fs, two, 0, 2 * Self.mib), 2, 0, 2 * Self.mib)
        fs.release(handle: two)
        // Object 1 open, its first MiB read; then 2 MiB of object 3 take the cache over its cap.
        let one = try fs.open(Self.path(1))
        defer { fs.release(handle: one) }
        check(try read(fs, one, 0, Self.mib), 1, 0, Self.mib)
        let three = try fs.open(Self.path(3))
        check(try read(fs, three, 0, 2 * Self.mib), 3, 0, 2 * Self.mib)
        fs.release(handle: three)
        let evictions = fs.snapshot().evictions
        XCTAssertEqual(evictions.closedObjects, 1, "object 2 went whole")
        XCTAssertEqual(evictions.openExtents, 0, "the open file's recent MiB stayed")
        source.resetCounts()
        check(try read(fs, one, 0, Self.mib), 1, 0, Self.mib)
        XCTAssertEqual(source.fetches.count, 0, "object 1's first MiB was still cached")
        XCTAssertLessThanOrEqual(dataOnDisk(), cap + 4096)
    }

    func testBytesAReplyIsServedFromAreNotFreedUnderIt() throws {
        let cap = 2 * Self.mib
        let fs = try makeFileSystem(cap: cap)
        let one = try fs.open(Self.path(1))
        defer { fs.release(handle: one) }
        check(try read(fs, one, 0, 256 << 10), 1, 0, 256 << 10)
        fs.finishDownloads(within: 30)   // answered from the request's buffer; on disk once it ends
        // A splice reply of the now cached bytes, held as the kernel would hold it.
        let held = Locked<ReadData?>(nil)
        let replied = DispatchSemaphore(value: 0)
        fs.read(handle: one, offset: 0, length: 128 << 10) { result in
            held.withLock { $0 = try? result.get() }
            replied.signal()
        }
        XCTAssertEqual(replied.wait(timeout: .now() + 30), .success)
        guard case .fileRange(let descriptor, let offset, let length, _)? = held.withLock({ $0 }) else {
            return XCTFail("a read of cached blocks is answered as a splice")
        }
        // 6 MiB of another object through a 2 MiB cap: everything else of object 1 is evicted.
        let three = try fs.open(Self.path(3))
        for at in stride(from: 0, to: 6 * Self.mib, by: 512 << 10) { check(try read(fs, three, at, 512 << 10), 3, at, 512 << 10) }
        fs.release(handle: three)
        XCTAssertGreaterThan(fs.snapshot().evictions.openExtents, 0)
        XCTAssertGreaterThanOrEqual(fs.snapshot().pinnedBytes, length)
        var out = [UInt8](repeating: 0, count: length)
        XCTAssertEqual(pread(descriptor, &out, length, off_t(offset)), length)
        check(out, 1, offset, length)
        held.withLock { $0 = nil }
        XCTAssertEqual(fs.snapshot().pinnedBytes, 0, "released with the reply")
    }

    func testNoRoomAtAllServesEveryByteFromMemory() throws {
        let fs = try makeFileSystem(cap: 0)
        let handle = try fs.open(Self.path(2))
        defer { fs.release(handle: handle) }
        for offset in stride(from: 0, to: 2 * Self.mib, by: 256 << 10) { check(try read(fs, handle, offset, 256 << 10), 2, offset, 256 << 10) }
        XCTAssertEqual(dataOnDisk(), 0)
        XCTAssertEqual(try index.cachedBytes(), 0)
        XCTAssertGreaterThan(fs.snapshot().evictions.refused, 0)
    }

    /// Many readers over three objects through a cap of a third of them: every byte right, the cap
    /// held at every look, and evictions of blocks readers are about to use handled.
    func testConcurrentRandomReadersKeepTheCapAndGetTheRightBytes() throws {
        let cap = 3 * Self.mib
        let fs = try makeFileSystem(cap: cap)
        let objects = objects
        let handles = try [1, 2, 3].map { ($0, try fs.open(Self.path($0))) }
        defer { for (_, h) in handles { fs.release(handle: h) } }
        let failures = Locked<[String]>([])
        let worst = Locked(0)
        let stop = Locked(false)
        let sampler = Thread {
            while !stop.withLock({ $0 }) {
                let used = fs.cacheCapacity().used
                worst.withLock { $0 = max($0, used) }
                usleep(200)
            }
        }
        sampler.start()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<60 {
                let (n, handle) = handles[Int.random(in: 0..<3, using: &rng)]
                let size = objects[n]!.count
                let length = Int.random(in: 1...(300 << 10), using: &rng)
                let offset = Int.random(in: 0..<size, using: &rng)
                guard let result = fs.readWaiting(handle: handle, offset: offset, length: length, seconds: 60) else {
                    failures.withLock { $0.append("no reply for \(n) at \(offset)") }
                    continue
                }
                let want = Array(objects[n]![offset..<min(size, offset + length)])
                switch result {
                case .success(let got) where got == want: break
                case .success: failures.withLock { $0.append("object \(n) \(offset)+\(length): wrong bytes") }
                case .failure(let error): failures.withLock { $0.append("object \(n) \(offset)+\(length): \(error)") }
                }
            }
        }
        stop.withLock { $0 = true }
        XCTAssertEqual(failures.withLock { $0 }, [])
        XCTAssertLessThanOrEqual(worst.withLock { $0 }, cap)
        XCTAssertLessThanOrEqual(dataOnDisk(), cap + 3 * 4096)
        XCTAssertGreaterThan(fs.snapshot().evictions.count, 0)
    }
}
