import BlockCache
@testable import FileSystem
import Foundation
import Logging
import ObjectStore
import TestSupport
import XCTest

/// The read path on a store other than the disk one: the `BlockStore` seam is the whole contract.
final class BlockStoreTests: XCTestCase {
    static let bucket = "noaa-goes16"
    static let key = "ABI-L1b-RadC/2023/066/14/OR_ABI-L1b-RadC-M6C13_G16_s20230661401172_e20230661403545_c20230661404012.nc"
    static let path: MountPath = [bucket] + key.split(separator: "/").map(String.init)

    var directory: String!
    var source: InMemorySource!
    var bytes: [UInt8]!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "goesfs-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        source = InMemorySource()
        bytes = (0..<(6 << 20) + 4321).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        source.put(bucket: Self.bucket, key: Self.key, bytes: bytes, etag: "\"v1\"")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    private func makeFileSystem(store: MemoryBlockStore, cap: Int) throws -> GOESFileSystem {
        var configuration = MountConfiguration(buckets: [Self.bucket], cacheDirectory: directory, cacheLimit: cap, downloadThreads: 4)
        configuration.prefetch = false
        // The index holds listings only; blocks go to the store in memory.
        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        return GOESFileSystem(configuration: configuration, client: source, index: index, store: store,
                              statistics: Statistics(), logger: Logger(label: "test"))
    }

    private func readAll(_ fs: GOESFileSystem, piece: Int) throws -> [UInt8] {
        let handle = try fs.open(Self.path)
        defer { fs.release(handle: handle) }
        var out: [UInt8] = []
        for offset in stride(from: 0, to: bytes.count, by: piece) {
            out += try XCTUnwrap(fs.readWaiting(handle: handle, offset: offset, length: piece, seconds: 60)).get()
        }
        return out
    }

    func testTheReadPathCachesInAStoreInMemory() throws {
        let store = MemoryBlockStore()
        let fs = try makeFileSystem(store: store, cap: 1 << 30)
        XCTAssertTrue(try readAll(fs, piece: 1 << 20) == bytes, "first read")
        fs.finishDownloads(within: 30)
        XCTAssertEqual(store.recordedBytes(bucket: Self.bucket, key: Self.key), bytes.count)
        let fetched = source.fetches.count
        XCTAssertTrue(try readAll(fs, piece: 128 << 10) == bytes, "second read, from the store")
        XCTAssertEqual(source.fetches.count, fetched, "nothing fetched again")
        let walker = FileManager.default.enumerator(atPath: directory + "/objects")
        let files = (walker?.allObjects as? [String] ?? []).filter {
            (try? FileManager.default.attributesOfItem(atPath: directory + "/objects/" + $0)[.type] as? FileAttributeType) == .typeRegular
        }
        XCTAssertEqual(files, [], "no data file was written")
    }

    func testTheCapHoldsOnAnyStore() throws {
        let store = MemoryBlockStore()
        let cap = 2 << 20
        let fs = try makeFileSystem(store: store, cap: cap)
        XCTAssertTrue(try readAll(fs, piece: 256 << 10) == bytes)
        fs.finishDownloads(within: 30)
        XCTAssertLessThanOrEqual(try store.storedBytes(), cap)
        XCTAssertGreaterThan(fs.snapshot().evictions.openExtents, 0)
    }
}
