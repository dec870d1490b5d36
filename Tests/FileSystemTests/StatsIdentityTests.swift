@testable import FileSystem
import ObjectStore
import XCTest

/// The identities docs/STATS-FORMAT.md promises, on a scripted sequence of requests played the way
/// `S3Client` reports them (the source pool counts each attempt; the observer hears of it).
final class StatsIdentityTests: XCTestCase {
    final class Clock: @unchecked Sendable { var now = 1_764_370_330.0 }

    /// One attempt as `S3Client.withRetries` makes it: pick, report, count at the pool.
    private struct Player {
        let pool: SourcePool, stats: Statistics
        func data(_ key: String, bytes: Int, fails: ErrorCategory? = nil, retried: Bool = false, resends: Int = 0) {
            let source = pool.pick()
            for _ in 0..<resends {  // each reached the source and failed (S3Client.reportSilentResends)
                pool.resent(pool.sources[source])
                stats.requestResent(kind: .data, key: key)
                stats.transferFailed(kind: .data, key: key, error: FetchError(category: .network, message: "resent at once"), seconds: 0,
                                     attempt: 1, maxAttempts: 5, retryDelay: 0)
            }
            stats.requestFinished(kind: .data, firstByteSeconds: fails == nil ? 0.05 : nil, seconds: 0.2)
            if let fails {
                pool.failed(source, category: fails)
                stats.transferFailed(kind: .data, key: key, error: FetchError(category: fails, message: "scripted"), seconds: 0.2,
                                     attempt: 1, maxAttempts: 5, retryDelay: retried ? 0.1 : nil)
            } else {
                stats.transferSucceeded(key: key, bytes: bytes, seconds: 0.2, attempt: 1)
                pool.succeeded(source)
            }
        }
        func listing(_ prefix: String, fails: ErrorCategory? = nil, retried: Bool = false) {
            let source = pool.pick()
            stats.requestFinished(kind: .listing, firstByteSeconds: 0.01, seconds: 0.02)
            if let fails {
                pool.failed(source, category: fails)
                stats.transferFailed(kind: .listing, key: prefix, error: FetchError(category: fails, message: "scripted"), seconds: 0.02,
                                     attempt: 1, maxAttempts: 5, retryDelay: retried ? 0.1 : nil)
            } else {
                stats.listingPageReceived(prefix: prefix)
                pool.succeeded(source)
            }
        }
    }

    func testTotalsAreTheSumsOfTheirParts() throws {
        let clock = Clock()
        let pool = SourcePool(sources: [.endpoint("http://127.0.0.1:1"), .endpoint("http://127.0.0.1:2")], demoteAfter: 2)
        let stats = Statistics(sessionID: "s", hostname: "h", sources: pool, clock: { clock.now })
        let play = Player(pool: pool, stats: stats)
        play.listing("ABI-L1b-RadC/2023/066/")
        play.listing("ABI-L1b-RadC/2023/066/14/", fails: .server, retried: true)
        play.listing("ABI-L1b-RadC/2023/066/14/", fails: .timeout, retried: true)   // demotes source 1
        play.listing("ABI-L1b-RadC/2023/066/14/")
        play.data("ABI-L1b-RadC/a.nc", bytes: 1 << 20)
        play.data("ABI-L1b-RadC/b.nc", bytes: 0, fails: .network, retried: true, resends: 2)
        play.data("ABI-L1b-RadC/b.nc", bytes: 1 << 20)
        play.data("ABI-L1b-RadC/c.nc", bytes: 0, fails: .notFound)
        play.data("ABI-L1b-RadC/d.nc", bytes: 0, fails: .changed)
        play.data("ABI-L1b-RadC/e.nc", bytes: 0, fails: .auth)
        let transfer = stats.beginTransfer(bucket: "noaa-goes16", key: "ABI-L1b-RadC/a.nc", objectSize: 4000, bytes: 4000)
        stats.transferProgress(transfer, bytes: 1500)
        stats.endTransfer(transfer)
        let ahead = stats.beginTransfer(bucket: "noaa-goes18", key: "GLM-L2-LCFA/y.nc", objectSize: 800, bytes: 800)
        stats.transferProgress(ahead, bytes: 800)  // fetched ahead, never read
        stats.endTransfer(ahead)
        stats.recordRead(bucket: "noaa-goes16", key: "ABI-L1b-RadC/a.nc", bytes: 1000, fromCache: false)
        stats.recordRead(bucket: "noaa-goes16", key: "ABI-L1b-RadC/a.nc", bytes: 3000, fromCache: true)
        stats.recordRead(bucket: "noaa-goes18", key: "GLM-L2-LCFA/x.nc", bytes: 500, fromCache: true)
        let s = stats.snapshot()

        // Data requests and listings are counted apart, and each adds up.
        XCTAssertEqual(s.data.attempts, 8)
        XCTAssertEqual(s.data.attempts, s.data.successes + s.data.failures)
        XCTAssertEqual(s.data.failures, ErrorCategory.allCases.reduce(0) { $0 + s.data.errors($1) })
        XCTAssertEqual(s.data.errors(.changed), 1, "changed at the source is its own category")
        XCTAssertEqual(s.listings.attempts, 4)
        XCTAssertEqual(s.listings.attempts, s.listings.successes + s.listings.failures)
        XCTAssertEqual(s.listings.failures, ErrorCategory.allCases.reduce(0) { $0 + s.listings.errors($1) })
        XCTAssertEqual(s.resends, 2, "libcurl's resends are counted, as failed network attempts")
        XCTAssertEqual(s.data.errors(.network), 3)
        XCTAssertLessThanOrEqual(s.data.retries, s.data.failures)
        // Every attempt went to one source: the sources' attempts are data attempts plus listing requests.
        XCTAssertEqual(s.sources.reduce(0) { $0 + $1.attempts }, s.data.attempts + s.listings.attempts)
        XCTAssertEqual(s.sources.reduce(0) { $0 + $1.failures }, s.data.failures + s.listings.failures)
        // Each attempt goesfs sent is timed once (a resend is timed with the send that followed it).
        XCTAssertEqual(s.timings[.data]?.duration.count, s.data.attempts - s.resends)
        XCTAssertEqual(s.timings[.listing]?.duration.count, s.listings.attempts)
        XCTAssertEqual(s.recentAttempts.count, s.data.attempts)
        // Bytes served per product add up to the totals.
        XCTAssertEqual(s.traffic.bytes.values.reduce(0) { $0 + $1.fromCache }, s.bytesFromCache)
        XCTAssertEqual(s.traffic.bytes.values.reduce(0) { $0 + $1.afterDownload }, s.bytesFromNetwork)
        XCTAssertEqual(s.reads.fromCache + s.reads.afterDownload, 3)
        XCTAssertEqual(s.traffic.bytes.values.reduce(0) { $0 + $1.fetched }, s.bytesReceived)
        XCTAssertEqual(s.bytesReceived, 2300)
        // Saved: served beyond fetched, per product (4000 - 1500 for RadC; GLM fetched more than it served).
        XCTAssertEqual(s.bytesSaved, 2500)
        XCTAssertEqual(s.traffic.bytes.values.reduce(0) { $0 + $1.saved }, s.bytesSaved)

        // The three renderings carry the same figures.
        let text = StatsReport.text(s)
        for line in ["Total attempts: 8", "Successful: 2 (25.0%)", "Failed: 6", "Changed at the source: 1", "Server errors: 0",
                     "Listing requests: 4", "Listing failures: 2 (timeout 1, server 1)", "Resent on a dead connection: 2",
                     "goes16 ABI-L1b-RadC: 3000 / 1000, fetched 1500, saved 2500", "goes18 GLM-L2-LCFA: 500 / 0, fetched 800, saved 0",
                     "Bytes fetched from the network: 2300 bytes", "Saved by the cache: 2500 bytes"] {
            XCTAssertTrue(text.contains(line + "\n"), "missing line: \(line)\n\(text)")
        }
        let json = try JSONSerialization.jsonObject(with: Data(StatsJSON.render(s).utf8)) as! [String: Any]
        let performance = json["performance"] as! [String: Int]
        XCTAssertEqual(performance["total_attempts"], 8)
        XCTAssertEqual(performance["changed_errors"], 1)
        XCTAssertEqual((json["listings"] as! [String: Any])["requests"] as? Int, 4)
        let metrics = PrometheusText.render(s)
        for sample in ["goesfs_requests_total{kind=\"data\"} 8", "goesfs_requests_total{kind=\"listing\"} 4",
                       "goesfs_request_failures_total{kind=\"data\",category=\"changed\"} 1",
                       "goesfs_request_failures_total{kind=\"listing\",category=\"timeout\"} 1",
                       "goesfs_request_duration_seconds_count{kind=\"data\"} 6",
                       "goesfs_served_bytes_total{satellite=\"goes16\",product=\"ABI-L1b-RadC\",from=\"cache\"} 3000",
                       "goesfs_fetched_bytes_total{satellite=\"goes18\",product=\"GLM-L2-LCFA\"} 800", "goesfs_cache_saved_bytes 2500"] {
            XCTAssertTrue(metrics.contains("\n" + sample + "\n"), "missing sample: \(sample)\n\(metrics)")
        }
    }
}
