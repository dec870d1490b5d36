import BlockCache
@testable import FileSystem
import Foundation
import Logging
import ObjectStore
import TestSupport
import XCTest

/// The listing cache's two bounds: memory keeps the most recently used listings, the index the
/// most recently fetched, and a folder dropped from both costs one more LIST when next used.
final class ListingCacheTests: XCTestCase {
    static let bucket = "noaa-goes16"
    static let folders = 200

    var directory: String!
    var source: InMemorySource!
    var index: CacheIndex!
    var policies = Policies()

    /// Past hours (kept for good once listed), one object each: `ABI-L1b-RadC/2023/<day>/14/`.
    static func prefix(_ i: Int) -> String { String(format: "ABI-L1b-RadC/2023/%03d/14/", i + 1) }

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "goesfs-listings-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        source = InMemorySource()
        for i in 0..<Self.folders {
            let day = String(format: "%03d", i + 1)
            source.put(bucket: Self.bucket, key: Self.prefix(i) + "OR_ABI-L1b-RadC-M6C13_G16_s2023\(day)1401172_e2023\(day)1403545_c2023\(day)1404012.nc",
                       bytes: [UInt8](repeating: 7, count: 100))
        }
        index = try CacheIndex(directory: CacheDirectory(path: directory, create: false))
        policies.listingsInMemory = 20
        policies.listingBytesOnDisk = 8 << 10
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    private func makeCache() -> ListingCache {
        ListingCache(client: source, index: index, policies: policies, logger: Logger(label: "test"))
    }

    func testMemoryAndDiskStayWithinTheirBounds() throws {
        let cache = makeCache()
        for i in 0..<Self.folders {
            let entry = try cache.listing(bucket: Self.bucket, prefix: Self.prefix(i))
            XCTAssertEqual(entry.listing.objects.count, 1)
            XCTAssertGreaterThan(entry.bodyBytes, 0)
            let counts = cache.counts
            let stored = try index.listingSummary()
            XCTAssertLessThanOrEqual(counts.inMemory, policies.listingsInMemory)
            XCTAssertLessThanOrEqual(stored.bytes, policies.listingBytesOnDisk)
            // The running totals are the index's own figures, not estimates.
            XCTAssertEqual(counts.onDisk, stored.count)
            XCTAssertEqual(counts.bytesOnDisk, stored.bytes)
        }
        XCTAssertEqual(source.listingRequests.count, Self.folders)
        let counts = cache.counts
        XCTAssertGreaterThanOrEqual(counts.inMemory, policies.listingsInMemory * 9 / 10)
        XCTAssertGreaterThan(counts.onDisk, 10)
        XCTAssertLessThan(counts.onDisk, Self.folders)
        XCTAssertGreaterThan(counts.bytesInMemory, 0)
        XCTAssertEqual(counts.memoryLimit, 20)
        XCTAssertEqual(counts.diskLimitBytes, 8 << 10)
        // The newest listings are the ones kept; the oldest went from both.
        XCTAssertNotNil(try index.storedListing(bucket: Self.bucket, prefix: Self.prefix(Self.folders - 1)))
        XCTAssertNotNil(cache.cached(bucket: Self.bucket, prefix: Self.prefix(Self.folders - 1)))
        XCTAssertNil(try index.storedListing(bucket: Self.bucket, prefix: Self.prefix(0)))
        XCTAssertNil(cache.cached(bucket: Self.bucket, prefix: Self.prefix(0)))

        // A new mount counts what the index holds.
        let again = makeCache()
        XCTAssertEqual(again.counts.onDisk, counts.onDisk)
        XCTAssertEqual(again.counts.bytesOnDisk, counts.bytesOnDisk)
        XCTAssertEqual(again.counts.inMemory, 0)
    }

    func testMemoryKeepsTheMostRecentlyUsed() throws {
        policies.listingBytesOnDisk = 64 << 20
        let cache = makeCache()
        _ = try cache.listing(bucket: Self.bucket, prefix: Self.prefix(0))
        for i in 1..<60 {
            _ = try cache.listing(bucket: Self.bucket, prefix: Self.prefix(i))
            XCTAssertNotNil(cache.cached(bucket: Self.bucket, prefix: Self.prefix(0)), "the folder used all along was evicted")
        }
        XCTAssertNil(cache.cached(bucket: Self.bucket, prefix: Self.prefix(1)))
        XCTAssertLessThanOrEqual(cache.counts.inMemory, policies.listingsInMemory)
    }

    func testAnEvictedListingIsFetchedAgainOnUse() throws {
        let cache = makeCache()
        for i in 0..<Self.folders { _ = try cache.listing(bucket: Self.bucket, prefix: Self.prefix(i)) }
        source.resetCounts()

        // Out of memory but still in the index: served from the index, no request.
        let onDiskOnly = try XCTUnwrap((0..<Self.folders).reversed().first { i in
            (try? index.storedListing(bucket: Self.bucket, prefix: Self.prefix(i))) != nil
                && !isInMemory(cache, i)
        })
        XCTAssertEqual(try cache.listing(bucket: Self.bucket, prefix: Self.prefix(onDiskOnly)).listing.objects.count, 1)
        XCTAssertEqual(source.listingRequests, [])

        // Out of both: listed again, once, and then kept.
        XCTAssertNil(try index.storedListing(bucket: Self.bucket, prefix: Self.prefix(0)))
        XCTAssertEqual(try cache.listing(bucket: Self.bucket, prefix: Self.prefix(0)).listing.objects.count, 1)
        XCTAssertEqual(source.listingRequests, [Self.prefix(0)])
        _ = try cache.listing(bucket: Self.bucket, prefix: Self.prefix(0))
        XCTAssertEqual(source.listingRequests, [Self.prefix(0)])
    }

    func testForgetAndRelistKeepTheCountsExact() throws {
        let cache = makeCache()
        for i in 0..<5 { _ = try cache.listing(bucket: Self.bucket, prefix: Self.prefix(i)) }
        cache.forget(bucket: Self.bucket, prefix: Self.prefix(2))
        cache.forget(bucket: Self.bucket, prefix: Self.prefix(2)) // twice: nothing more to drop
        var stored = try index.listingSummary()
        XCTAssertEqual(stored.count, 4)
        XCTAssertEqual(cache.counts.onDisk, 4)
        XCTAssertEqual(cache.counts.bytesOnDisk, stored.bytes)
        XCTAssertEqual(cache.counts.inMemory, 4)
        _ = try cache.listing(bucket: Self.bucket, prefix: Self.prefix(2))
        stored = try index.listingSummary()
        XCTAssertEqual(cache.counts.onDisk, 5)
        XCTAssertEqual(cache.counts.bytesOnDisk, stored.bytes)
    }

    /// The mount's report shows both copies with their bounds (`.stats` and `.stats.json`).
    func testTheReportShowsTheListingsKept() throws {
        var configuration = MountConfiguration(buckets: [Self.bucket], cacheDirectory: directory, cacheLimit: 1 << 30, downloadThreads: 2)
        configuration.prefetch = false
        configuration.policies = policies
        let fs = GOESFileSystem(configuration: configuration, client: source, index: index, statistics: Statistics(), logger: Logger(label: "test"))
        for i in 0..<30 { _ = try fs.entries([Self.bucket] + Self.prefix(i).split(separator: "/").map(String.init)) }
        let listings = fs.snapshot().cachedListings
        XCTAssertGreaterThan(listings.inMemory, 0)
        XCTAssertLessThanOrEqual(listings.inMemory, 20)
        XCTAssertEqual(listings.onDisk, try index.listingSummary().count)
        let json = try JSONSerialization.jsonObject(with: Data(StatsJSON.render(fs.snapshot()).utf8)) as! [String: Any]
        let cache = try XCTUnwrap(json["cache"] as? [String: Any])
        XCTAssertEqual(cache["listings_in_memory"] as? Int, listings.inMemory)
        XCTAssertEqual(cache["listings_in_memory_limit"] as? Int, 20)
        XCTAssertEqual(cache["listing_bytes_on_disk"] as? Int, listings.bytesOnDisk)
        XCTAssertEqual(cache["listing_bytes_on_disk_limit"] as? Int, 8 << 10)
        XCTAssertTrue(fs.statsReport().contains("Cached listings: \(listings.inMemory) in memory ("), fs.statsReport())
        XCTAssertTrue(fs.metricsText().contains("goesfs_listings_cached{where=\"memory\"} \(listings.inMemory)\n"), fs.metricsText())
        XCTAssertTrue(fs.metricsText().contains("goesfs_listing_cached_bytes{where=\"disk\"} \(listings.bytesOnDisk)\n"), fs.metricsText())
    }

    /// Whether memory holds folder `i`, without refreshing its use the way `cached` does.
    private func isInMemory(_ cache: ListingCache, _ i: Int) -> Bool { cache.isHeld(bucket: Self.bucket, prefix: Self.prefix(i)) }
}
