@testable import FileSystem
import ObjectStore
import XCTest

/// The whole `.stats` text for a scripted sequence of events with a fixed clock: every section,
/// in order, exactly as a user sees it.
final class StatsGoldenTests: XCTestCase {
    final class Clock: @unchecked Sendable { var now = 1_764_370_330.0 }

    func testWholeReport() {
        let clock = Clock()
        let stats = Statistics(sessionID: "1764370330-4567", hostname: "dev-machine.local", clock: { clock.now })
        clock.now += 1
        stats.listingPageReceived(prefix: "ABI-L1b-RadC/2023/066/14/")
        stats.transferFailed(kind: .listing, key: "ABI-L1b-RadC/2023/066/15/", error: FetchError.http(status: 503, s3Code: "SlowDown"),
                             seconds: 0.1, attempt: 1, maxAttempts: 5, retryDelay: 0.2)
        stats.listingPageReceived(prefix: "ABI-L1b-RadC/2023/066/15/")
        stats.transferSucceeded(key: "ABI-L1b-RadC/2023/066/14/OR_a.nc", bytes: 1_048_576, seconds: 0.5, attempt: 1)
        stats.transferFailed(kind: .data, key: "ABI-L1b-RadC/2023/066/14/OR_b.nc",
                             error: FetchError(category: .timeout, message: "transfer stalled"),
                             seconds: 10, attempt: 1, maxAttempts: 5, retryDelay: 0.5)
        stats.transferResumed(key: "ABI-L1b-RadC/2023/066/14/OR_b.nc", keptBytes: 4096)
        stats.transferSucceeded(key: "ABI-L1b-RadC/2023/066/14/OR_b.nc", bytes: 1_044_480, seconds: 0.5, attempt: 2)
        stats.recordRead(bucket: "noaa-goes16", key: "ABI-L1b-RadC/2023/066/14/OR_a.nc", bytes: 1_048_576, fromCache: false)
        stats.recordRead(bucket: "noaa-goes16", key: "ABI-L1b-RadC/2023/066/14/OR_a.nc", bytes: 3_145_728, fromCache: true)
        stats.updateCacheUsage(bytes: 2_097_152, limit: 10_000_000_000)
        stats.recordEviction(.closedObject, bytes: 1_048_576)
        stats.recordRepair("repaired noaa-goes16/k: cached block 0 failed its checksum")
        let key = "ABI-L1b-RadC/2023/066/14/OR_c.nc"
        let transfer = stats.beginTransfer(bucket: "noaa-goes16", key: key, objectSize: 3_145_728, bytes: 1_048_576)
        stats.transferProgress(transfer, bytes: 262_144)
        clock.now += 1
        stats.transferProgress(transfer, bytes: 262_144)
        var snapshot = stats.snapshot()
        snapshot.cachedObjects = 2
        snapshot.cachedListings = CachedListings(inMemory: 3, bytesInMemory: 45_300, memoryLimit: 512,
                                                 onDisk: 40, bytesOnDisk: 612_000, diskLimitBytes: 64 << 20)
        // What GOESFileSystem adds from the block tables: block 0 present, 1 downloading for a reader, 2 ahead.
        snapshot.files = [FileRow.make(activity: snapshot.activity["noaa-goes16/" + key], bucket: "noaa-goes16", key: key, size: 3_145_728,
                                       blocks: BlockSummary(present: 1_048_576, waited: 1_048_576, ahead: 1_048_576),
                                       scanPrefetch: false, readerOpen: true, now: snapshot.now)]
        snapshot.openFiles = [OpenFileLine(bucket: "noaa-goes16", key: key, size: 3_145_728, handles: 1, present: 1_048_576)]
                XCTAssertEqual(StatsReport.text(snapshot), """
            S3 Download Statistics:
            ---------------------
            Session ID: 1764370330-4567
            Hostname: dev-machine.local
            Start time: 2025-11-28T22:52:10.000000Z

            Performance Summary (data requests: ranged GETs of file bytes):
            Total attempts: 3
            Successful: 2 (66.7%)
            Failed: 1
            Retries: 1
            Not found errors: 0
            Auth errors: 0
            Timeouts: 1
            Network errors: 0
            Server errors: 0
            Changed at the source: 0

            Listings (ListObjectsV2 pages):
            Listing requests: 3
            Listing successes: 2
            Listing failures: 1 (server 1)
            Listing retries: 1
            Resent on a dead connection: 0

            Download Metrics:
            Average download time: 0.50 seconds
            Total bytes: 2093056 bytes
            Average network speed: 2.09 MB/s
            Average download rate: 0.18 MB/s
            Largest file: 1048576 bytes
            Smallest file: 1044480 bytes
            Total runtime: 2.0 seconds

            Cache:
            Bytes served from cache: 3145728 bytes
            Bytes served after download: 1048576 bytes
            Hit ratio: 75.0%
            Bytes fetched from the network: 524288 bytes
            Saved by the cache: 3670016 bytes
            Bytes resumed after an interruption: 4096 bytes
            Cached: 2 objects, 2.1 MB of 10.0 GB limit
            Cached listings: 3 in memory (45.3 KB, at most 512), 40 on disk (612.0 KB of 67.1 MB limit)
            Pinned: 0 B being served, 0 B being written
            Evictions: 1 (1048576 bytes): 1 closed objects (1048576 bytes), 0 cold parts of open objects (0 bytes); no room: 0 writes (0 bytes) served from memory
            Repairs: 1
            [2025-11-28T22:52:11.000000Z] repaired noaa-goes16/k: cached block 0 failed its checksum

            By satellite and product (bytes served from cache / after download, fetched, saved):
            goes16 ABI-L1b-RadC: 3145728 / 1048576, fetched 524288, saved 3670016

            In progress:
            1. noaa-goes16/.../OR_c.nc: 1572864 / 3145728 bytes (50.0%), 0.52 MB/s, ETA estimating…, reader+readahead
            Total: 1 file, 1572864 / 3145728 bytes, 0.52 MB/s, ETA estimating…

            Open now:
            1. noaa-goes16/ABI-L1b-RadC/2023/066/14/OR_c.nc: 1 handle, 1048576 / 3145728 bytes cached

            Recent errors:
            1. [2025-11-28T22:52:11.000000Z] server (listing): server busy or failing: HTTP 503 (SlowDown); retrying with backoff (key ABI-L1b-RadC/2023/066/15/, attempt 1/5)
            2. [2025-11-28T22:52:11.000000Z] timeout: transfer stalled (key ABI-L1b-RadC/2023/066/14/OR_b.nc, attempt 1/5)

            Recent download attempts:
            1. [2025-11-28T22:52:11.000000Z] ✓ Success - Size: 1.0 MB, Time: 0.50s, Key: .../OR_a.nc
            2. [2025-11-28T22:52:11.000000Z] ✗ Failed - Size: N/A, Time: 10.00s, Key: .../OR_b.nc
            3. [2025-11-28T22:52:11.000000Z] ✓ Success - Size: 1.0 MB, Time: 0.50s, Key: .../OR_b.nc

            Time since last successful download: 1.0 seconds

            """)
    }
}
