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
                     "Total attempts: 4", "Successful: 2 (50.0%)", "Failed: 2", "Retries: 2", "Not found errors: 1",
                     "Auth errors: 0", "Timeouts: 1", "Network errors: 0", "Server errors: 1",
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

    func testInProgressShowsAnETAOnlyOnceARateIsKnown() {
        let clock = FakeClock()
        let stats = Statistics(sessionID: "s", hostname: "h", clock: { clock.now })
        let id = stats.beginTransfer(key: "ABI/x.nc", bytes: 1_000_000)
        stats.transferProgress(id, bytes: 1000)
        XCTAssertTrue(StatsReport.text(stats.snapshot()).contains("1. .../x.nc: 1000 / 1000000 bytes, estimating…, ETA estimating…\n"))
        clock.now += 0.5
        stats.transferProgress(id, bytes: 99_000)
        // 100000 bytes in 0.5 s: 0.20 MB/s, 900000 bytes left: 4.5 s.
        XCTAssertTrue(StatsReport.text(stats.snapshot()).contains("1. .../x.nc: 100000 / 1000000 bytes, 0.20 MB/s, ETA 4.5 s\n"),
                      StatsReport.text(stats.snapshot()))
        stats.endTransfer(id)
        XCTAssertTrue(StatsReport.text(stats.snapshot()).contains("In progress:\n(none)\n"))
    }
}
