import Foundation
import ObjectStore

/// `/metrics`: the figures of `.stats.json` in the Prometheus text exposition format (0.0.4).
///
/// Base units (`_bytes`, `_seconds`), `_total` counters, and only labels of bounded cardinality
/// (request kind, error category, configured source, satellite, product folder): never a key.
public enum PrometheusText {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ s: Statistics.Snapshot) -> String {
        var out = Exposition()
        out.family("goesfs_requests_total", .counter, "Attempts sent to a source: data (ranged GETs of file bytes) or listing (ListObjectsV2 pages).") {
            for kind in RequestKind.allCases { $0.sample([("kind", kind.rawValue)], counts(s, kind).attempts) }
        }
        out.family("goesfs_request_failures_total", .counter, "Failed attempts by kind and error category.") {
            for kind in RequestKind.allCases {
                for category in ErrorCategory.allCases { $0.sample([("kind", kind.rawValue), ("category", category.rawValue)], counts(s, kind).errors(category)) }
            }
        }
        out.family("goesfs_request_retries_total", .counter, "Failed attempts followed by another attempt.") {
            for kind in RequestKind.allCases { $0.sample([("kind", kind.rawValue)], counts(s, kind).retries) }
        }
        out.family("goesfs_request_resends_total", .counter, "Attempts libcurl sent again by itself on a dead reused connection (also counted as failed network attempts).") {
            $0.sample([], s.resends)
        }
        out.family("goesfs_source_requests_total", .counter, "Attempts (data and listing) per configured source.") {
            for source in s.sources { $0.sample([("source", source.name)], source.attempts) }
        }
        out.family("goesfs_source_request_failures_total", .counter, "Failed attempts per configured source.") {
            for source in s.sources { $0.sample([("source", source.name)], source.failures) }
        }
        out.family("goesfs_source_demoted", .gauge, "1 while a source is skipped after repeated failures.") {
            for source in s.sources { $0.sample([("source", source.name)], source.demotedUntil == nil ? 0 : 1) }
        }
        out.family("goesfs_downloaded_bytes_total", .counter, "Bytes received by successful data attempts.") { $0.sample([], s.totalBytes) }
        out.family("goesfs_resumed_bytes_total", .counter, "Bytes kept from cut transfers, not fetched again.") { $0.sample([], s.bytesResumed) }
        out.family("goesfs_served_bytes_total", .counter, "Bytes read by readers, per satellite and product folder, from cache or after a download.") {
            for (key, bytes) in s.traffic.bytes.sorted(by: { $0.key < $1.key }) {
                $0.sample([("satellite", key.satellite), ("product", key.product), ("from", "cache")], bytes.fromCache)
                $0.sample([("satellite", key.satellite), ("product", key.product), ("from", "network")], bytes.afterDownload)
            }
        }
        out.family("goesfs_fetched_bytes_total", .counter, "Bytes received from the network for blocks, per satellite and product folder (every attempt, readahead and prefetch too).") {
            for (key, bytes) in s.traffic.bytes.sorted(by: { $0.key < $1.key }) {
                $0.sample([("satellite", key.satellite), ("product", key.product)], bytes.fetched)
            }
        }
        out.family("goesfs_cache_saved_bytes", .gauge, "Bytes served beyond those fetched: what the cache spared the network.") { $0.sample([], s.bytesSaved) }
        out.family("goesfs_cache_hits_total", .counter, "Reads answered from the cache alone.") { $0.sample([], s.reads.fromCache) }
        out.family("goesfs_cache_misses_total", .counter, "Reads that waited for a download.") { $0.sample([], s.reads.afterDownload) }
        out.family("goesfs_cache_size_bytes", .gauge, "Bytes of blocks in the cache.") { $0.sample([], s.cachedBytes) }
        out.family("goesfs_cache_limit_bytes", .gauge, "The cache's size cap.") { $0.sample([], s.cacheLimit) }
        out.family("goesfs_cache_objects", .gauge, "Objects with blocks in the cache.") { $0.sample([], s.cachedObjects) }
        out.family("goesfs_listings_cached", .gauge, "Folder listings kept, in memory and in the cache index.") {
            $0.sample([("where", "memory")], s.cachedListings.inMemory)
            $0.sample([("where", "disk")], s.cachedListings.onDisk)
        }
        out.family("goesfs_listing_cached_bytes", .gauge, "Bytes of the JSON bodies of the listings kept.") {
            $0.sample([("where", "memory")], s.cachedListings.bytesInMemory)
            $0.sample([("where", "disk")], s.cachedListings.bytesOnDisk)
        }
        out.family("goesfs_cache_evictions_total", .counter, "Units evicted to stay under the cap, by kind (closed objects, cold extents of open ones).") {
            $0.sample([("kind", "closed_object")], s.evictions.closedObjects)
            $0.sample([("kind", "open_object_extent")], s.evictions.openExtents)
        }
        out.family("goesfs_cache_evicted_bytes_total", .counter, "Bytes evicted to stay under the cap, by kind.") {
            $0.sample([("kind", "closed_object")], s.evictions.closedObjectBytes)
            $0.sample([("kind", "open_object_extent")], s.evictions.openExtentBytes)
        }
        out.family("goesfs_cache_refused_bytes_total", .counter, "Bytes the cap had no room for (all pinned or being written): served from memory.") { $0.sample([], s.evictions.refusedBytes) }
        out.family("goesfs_cache_pinned_bytes", .gauge, "Bytes pinned by replies being served.") { $0.sample([], s.pinnedBytes) }
        out.family("goesfs_cache_repairs_total", .counter, "Damaged or missing cached blocks dropped to be fetched again.") { $0.sample([], s.repairs) }
        out.family("goesfs_requests_in_flight", .gauge, "Block downloads under way (with their retries and backoff).") { $0.sample([], s.requestsInFlight) }
        out.family("goesfs_files_in_progress", .gauge, "Files being fetched (rows of In progress).") { $0.sample([], s.files.count) }
        out.histogram("goesfs_request_duration_seconds", "Duration of one attempt, by kind.", s) { $0.duration }
        out.histogram("goesfs_time_to_first_byte_seconds", "Attempt start to the first response byte, by kind.", s) { $0.firstByte }
        out.family("goesfs_start_time_seconds", .gauge, "When the mount started, in seconds since the epoch.") { $0.sample([], s.startTime) }
        return out.text
    }

    private static func counts(_ s: Statistics.Snapshot, _ kind: RequestKind) -> RequestCounts {
        kind == .data ? s.data : s.listings
    }
}

/// Text exposition writer: one `# HELP`/`# TYPE` pair per family, then its samples.
private struct Exposition {
    enum Kind: String { case counter, gauge, histogram }
    struct Family {
        let name: String
        var lines: [String] = []
        mutating func sample(_ labels: [(String, String)], _ value: Int, suffix: String = "") { sample(labels, Double(value), suffix: suffix) }
        mutating func sample(_ labels: [(String, String)], _ value: Double, suffix: String = "") {
            let set = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(Exposition.escape($0.1))\"" }.joined(separator: ",") + "}"
            lines.append(name + suffix + set + " " + Exposition.number(value))
        }
    }
    var text = ""

    mutating func family(_ name: String, _ kind: Kind, _ help: String, _ body: (inout Family) -> Void) {
        var family = Family(name: name)
        body(&family)
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n" + family.lines.map { $0 + "\n" }.joined()
    }

    mutating func histogram(_ name: String, _ help: String, _ s: Statistics.Snapshot, _ pick: (RequestTimings) -> LatencyHistogram) {
        family(name, .histogram, help) { f in
            for kind in RequestKind.allCases {
                let h = pick(s.timings[kind] ?? RequestTimings())
                for (bound, count) in zip(LatencyHistogram.bounds, h.counts) {
                    f.sample([("kind", kind.rawValue), ("le", Exposition.number(bound))], count, suffix: "_bucket")
                }
                f.sample([("kind", kind.rawValue), ("le", "+Inf")], h.count, suffix: "_bucket")
                f.sample([("kind", kind.rawValue)], h.sum, suffix: "_sum")
                f.sample([("kind", kind.rawValue)], h.count, suffix: "_count")
            }
        }
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ x: Double) -> String {
        guard x.isFinite else { return x.isNaN ? "NaN" : (x > 0 ? "+Inf" : "-Inf") }
        return x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
    }
}
