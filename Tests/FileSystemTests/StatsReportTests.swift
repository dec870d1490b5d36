@testable import FileSystem
import ObjectStore
import XCTest

final class StatsReportTests: XCTestCase {
    final class FakeClock: @unchecked Sendable {
        var now = 1_764_370_330.0
    }

    func testReportShowsCountsCategoriesAndRings() {
        let clock = FakeClock()
        let stats = Statistics(sessionID: "1764370330-4567", hostname: "dev-machine.local", clock: { clock.now })
        clock.now += 1
        stats.transferSucceeded(key: "ABI-L1b-RadC/2023/066/14/OR_a.nc", bytes: 1_048_576, seconds: 0.5, attempt: 1)
        stats.transferFailed(kind: .data, key: "ABI/b.nc", error: FetchError.http(status: 503, s3Code: "SlowDown"),
                             seconds: 0.25, attempt: 1, maxAttempts: 5, retryDelay: 0.25)
        stats.transferSucceeded(key: "ABI/b.nc", bytes: 4_882_560, seconds: 1.5, attempt: 2)
        stats.transferFailed(kind: .data, key: "ABI/c.nc", error: FetchError.http(status: 404, s3Code: "NoSuchKey"),
                             seconds: 0.1, attempt: 1, maxAttempts: 5, retryDelay: nil)
        stats.transferFailed(kind: .listing, key: "ABI/", error: FetchError(category: .timeout, message: "stalled"),
                             seconds: 10, attempt: 1, maxAttempts: 5, retryDelay: 1)
        clock.now += 2
        let text = StatsReport.text(stats.snapshot())
        for line in ["Session ID: 1764370330-4567", "Hostname: dev-machine.local", "Start time: 2025-11-28T22:52:10.000000Z",
                     "Total attempts: 4", "Successful: 2 (50.0%)", "Failed: 2", "Retries: 1", "Not found errors: 1",
                     "Auth errors: 0", "Timeouts: 0", "Network errors: 0", "Server errors: 1", "Changed at the source: 0",
                     "Listing requests: 1", "Listing successes: 0", "Listing failures: 1 (timeout 1)", "Listing retries: 1",
                     "Average download time: 1.00 seconds", "Total bytes: 5931136 bytes", "Average network speed: 2.97 MB/s",
                     "Largest file: 4882560 bytes", "Smallest file: 1048576 bytes", "Total runtime: 3.0 seconds",
                     "1. [2025-11-28T22:52:11.000000Z] server: server busy or failing: HTTP 503 (SlowDown); retrying with backoff (key ABI/b.nc, attempt 1/5)",
                     "1. [2025-11-28T22:52:11.000000Z] ✓ Success - Size: 1.0 MB, Time: 0.50s, Key: .../OR_a.nc",
                     "2. [2025-11-28T22:52:11.000000Z] ✗ Failed - Size: N/A, Time: 0.25s, Key: .../b.nc",
                     "Time since last successful download: 2.0 seconds"] {
            XCTAssertTrue(text.contains(line + "\n"), "missing line: \(line)\n\(text)")
        }
        // Download rate counts the failed attempts and the backoff wait: 5931136 B / (0.5+0.25+0.25+1.5+0.1) s.
        XCTAssertTrue(text.contains("Average download rate: 2.28 MB/s"), text)
    }

    func testRingBuffersKeepTheNewest() {
        let stats = Statistics(sessionID: "s", hostname: "h")
        for i in 0..<70 {
            stats.transferFailed(kind: .data, key: "k\(i)", error: FetchError(category: .network, message: "reset"),
                                 seconds: 0, attempt: 1, maxAttempts: 1, retryDelay: nil)
        }
        let snapshot = stats.snapshot()
        XCTAssertEqual(snapshot.recentErrors.count, 20)
        XCTAssertEqual(snapshot.recentErrors.first?.key, "k50")
        XCTAssertEqual(snapshot.recentAttempts.count, 50)
        XCTAssertEqual(snapshot.recentAttempts.last?.key, "k69")
    }

    func testJSONCarriesTheSameFigures() throws {
        let clock = FakeClock()
        let stats = Statistics(sessionID: "s-1", hostname: "h", clock: { clock.now })
        stats.transferSucceeded(key: "a/b.nc", bytes: 1000, seconds: 0.5, attempt: 1)
        stats.transferFailed(kind: .data, key: "a/c.nc", error: FetchError.http(status: 403, s3Code: nil),
                             seconds: 0.1, attempt: 1, maxAttempts: 5, retryDelay: nil)
        let json = try JSONSerialization.jsonObject(with: Data(StatsJSON.render(stats.snapshot()).utf8)) as! [String: Any]
        let performance = json["performance"] as! [String: Any]
        XCTAssertEqual(performance["total_attempts"] as? Int, 2)
        XCTAssertEqual(performance["successful"] as? Int, 1)
        XCTAssertEqual(performance["auth_errors"] as? Int, 1)
        XCTAssertEqual((json["download"] as! [String: Any])["total_bytes"] as? Int, 1000)
        XCTAssertEqual((json["session"] as! [String: Any])["id"] as? String, "s-1")
        XCTAssertEqual((json["recent_errors"] as! [[String: Any]]).first?["category"] as? String, "auth")
        XCTAssertEqual(json["schema_version"] as? Int, 1)
    }

    func testAFileRowShowsSpeedAfterHalfASecondAndAnETAOnlyOnceStable() {
        let clock = FakeClock()
        let stats = Statistics(sessionID: "s", hostname: "h", clock: { clock.now })
        let id = stats.beginTransfer(bucket: "noaa-goes16", key: "ABI/x.nc", objectSize: 4_000_000, bytes: 1_000_000)
        func row(_ blocks: BlockSummary) -> FileRow {
            let s = stats.snapshot()
            let made = FileRow.make(activity: s.activity["noaa-goes16/ABI/x.nc"], bucket: "noaa-goes16", key: "ABI/x.nc",
                                    size: 4_000_000, blocks: blocks, scanPrefetch: false, readerOpen: true, now: s.now)
            stats.notePresentShown(file: "noaa-goes16/ABI/x.nc", bytes: made.present)  // as GOESFileSystem.snapshot does
            return made
        }
        stats.transferProgress(id, bytes: 1000)
        let first = row(BlockSummary(present: 0, waited: 1_000_000, ahead: 0))
        XCTAssertNil(first.rate)
        XCTAssertEqual(StatsReport.line(first), "noaa-goes16/.../x.nc: 1000 / 4000000 bytes (0.0%), estimating…, ETA estimating…, reader")
        clock.now += 1
        stats.transferProgress(id, bytes: 199_000)
        // 200000 bytes in 1 s: a speed, but no ETA before 2 s of data.
        let early = row(BlockSummary(present: 0, waited: 1_000_000, ahead: 0))
        XCTAssertEqual(early.rate, 200_000)
        XCTAssertNil(early.eta)
        clock.now += 1
        stats.transferProgress(id, bytes: 200_000)
        // A reader waiting for one block: the ETA is of what is still to come of that block.
        let asked = row(BlockSummary(present: 0, waited: 1_000_000, ahead: 0))
        XCTAssertEqual(asked.coverage, .requestedBlocks)
        XCTAssertEqual(asked.remaining, 600_000)
        XCTAssertEqual(asked.eta ?? 0, 3, accuracy: 1e-9)
        XCTAssertEqual(StatsReport.line(asked),
                       "noaa-goes16/.../x.nc: 400000 / 4000000 bytes (10.0%), 0.20 MB/s, ETA 3.0 s for the 600000 bytes requested, reader")
        // Readahead running: the reader goes through the file in order, so the ETA is of the rest of it.
        let streaming = row(BlockSummary(present: 0, waited: 1_000_000, ahead: 2_000_000))
        XCTAssertEqual(streaming.coverage, .restOfFile)
        XCTAssertEqual(streaming.eta ?? 0, 18, accuracy: 1e-9)
        XCTAssertEqual(streaming.driver, .readerAndReadahead)
        // The reader closed the file: readahead only finishes what is in flight, and the ETA says so.
        let s = stats.snapshot()
        let closed = FileRow.make(activity: s.activity["noaa-goes16/ABI/x.nc"], bucket: "noaa-goes16", key: "ABI/x.nc", size: 4_000_000,
                                  blocks: BlockSummary(present: 0, waited: 0, ahead: 2_000_000), scanPrefetch: false, readerOpen: false, now: s.now)
        XCTAssertEqual(closed.coverage, .requestedBlocks)
        XCTAssertEqual(closed.remaining, 1_600_000)
        // Between its last byte and its index row a block is in neither count: the bar never steps back.
        stats.endTransfer(id)
        XCTAssertEqual(row(BlockSummary(present: 0, waited: 0, ahead: 2_000_000)).present, 400_000)
    }

    func testProductTrafficIsCappedAndKeysThatAreNoProductCountAsOther() {
        var traffic = ProductTraffic()
        traffic.record(bucket: "noaa-goes16", key: "ABI-L1b-RadC/2023/066/14/a.nc", bytes: 10, fromCache: true)
        traffic.record(bucket: "noaa-goes16", key: "ABI-L1b-RadC/2023/066/14/b.nc", bytes: 5, fromCache: false)
        traffic.record(bucket: "noaa-goes18", key: "weird\u{1}name/x", bytes: 1, fromCache: true)
        traffic.record(bucket: "some-bucket", key: "top-level-file.nc", bytes: 2, fromCache: true)
        for i in 0..<100 { traffic.record(bucket: "noaa-goes16", key: "P\(i)/x", bytes: 1, fromCache: true) }
        XCTAssertEqual(traffic.bytes[.init(satellite: "goes16", product: "ABI-L1b-RadC")], .init(fromCache: 10, afterDownload: 5))
        XCTAssertEqual(traffic.bytes[.init(satellite: "goes18", product: "other")]?.fromCache, 1)
        XCTAssertEqual(traffic.bytes[.init(satellite: "other", product: "other")]?.fromCache, 2)
        XCTAssertLessThanOrEqual(Set(traffic.bytes.keys.map(\.product)).count, ProductTraffic.productLimit + 1)
        XCTAssertEqual(traffic.bytes.values.reduce(0) { $0 + $1.fromCache + $1.afterDownload }, 118)
    }
}
