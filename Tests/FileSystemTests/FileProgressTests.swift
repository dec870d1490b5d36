import BlockCache
@testable import FileSystem
import Foundation
import Locking
import Logging
import ObjectStore
import TestSupport
import XCTest

/// "In progress" through the core: rows come from the block tables and the downloads' reports.
final class FileProgressTests: XCTestCase {
    /// Delivers half of each range, then waits for the test to open the gate.
    final class GatedSource: ObjectSource, Sendable {
        let inner: InMemorySource
        let gate = DispatchSemaphore(value: 0)
        let halfway = DispatchSemaphore(value: 0)
        init(_ inner: InMemorySource) { self.inner = inner }
        var diagnosticSources: [Source] { [] }
        func list(bucket: String, prefix: String) throws(FetchError) -> (listing: Listing, rejected: [String]) {
            try inner.list(bucket: bucket, prefix: prefix)
        }
        func fetch(bucket: String, key: String, objectSize: Int, etag: String, range: Range<Int>,
                   into buffer: UnsafeMutableRawBufferPointer, progress: ((Int) -> Void)?, arrived: ((Int) -> Void)?) throws(FetchError) {
            try inner.fetch(bucket: bucket, key: key, objectSize: objectSize, etag: etag, range: range, into: buffer, progress: nil, arrived: nil)
            progress?(range.count / 2)
            arrived?(range.count / 2)
            halfway.signal()
            gate.wait()
            progress?(range.count - range.count / 2)
            arrived?(range.count)
        }
    }

    func testAReaderWaitingForABlockIsOneRowThatGrowsAndGoes() throws {
        let directory = NSTemporaryDirectory() + "goesfs-progress-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bucket = "noaa-goes16", key = "ABI-L1b-RadC/2023/066/14/OR_ABI-L1b-RadC-M6C13_G16_s20230661401172_e20230661403545_c20230661404012.nc"
        let memory = InMemorySource()
        memory.put(bucket: bucket, key: key, bytes: [UInt8](repeating: 7, count: 3 << 20), etag: "\"v1\"")
        let source = GatedSource(memory)
        var configuration = MountConfiguration(buckets: [bucket], cacheDirectory: directory, cacheLimit: 1 << 30, downloadThreads: 2)
        configuration.prefetch = false
        let index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        let fs = GOESFileSystem(configuration: configuration, client: source, index: index, statistics: Statistics(), logger: Logger(label: "test"))
        let path: MountPath = [bucket] + key.split(separator: "/").map(String.init)

        let handle = try fs.open(path)
        defer { fs.release(handle: handle) }
        let replied = DispatchSemaphore(value: 0)
        // One request of 1 MiB (64 blocks of 16 KiB), half delivered while the test looks.
        fs.read(handle: handle, offset: 1 << 20, length: 1 << 20) { _ in replied.signal() }
        XCTAssertEqual(source.halfway.wait(timeout: .now() + 10), .success)

        let during = fs.snapshot()
        XCTAssertEqual(during.files.count, 1, "one row per file")
        let row = try XCTUnwrap(during.files.first)
        XCTAssertEqual(row.key, key)
        XCTAssertEqual(row.size, 3 << 20)
        XCTAssertEqual(row.present, 1 << 19, "half of the request it waits for")
        XCTAssertEqual(row.fetching, 1 << 19)
        XCTAssertEqual(row.driver, .reader)
        XCTAssertEqual(row.coverage, .requestedBlocks, "a reader that asked for one MiB is promised no more")
        XCTAssertEqual(row.remaining, 1 << 19)
        XCTAssertEqual(during.requestsInFlight, 1)
        XCTAssertEqual(during.openFiles.map(\.handles), [1])
        let json = StatsJSON.render(during)
        XCTAssertTrue(json.contains("\"eta_of\" : \"requested_blocks\""), json)
        XCTAssertTrue(StatsReport.text(during).contains("1. noaa-goes16/.../\(key.split(separator: "/").last!): 524288 / 3145728 bytes (16.7%)"))

        source.gate.signal()
        XCTAssertEqual(replied.wait(timeout: .now() + 10), .success)
        // The reader is answered from the arrived bytes; the request then stores and ends.
        var after = fs.snapshot()
        let deadline = Date() + 10
        while !after.files.isEmpty || after.openFiles.first?.present != 1 << 20, Date() < deadline {
            usleep(1000)
            after = fs.snapshot()
        }
        XCTAssertTrue(after.files.isEmpty, "nothing being fetched: no row")
        XCTAssertEqual(after.openFiles.first?.present, 1 << 20)
        XCTAssertEqual(after.bytesReceived, 1 << 20)
    }
}
