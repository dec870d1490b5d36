import Foundation
import ObjectStore

/// `.stats.json`: the figures of `.stats` for programs. Field names are stable (documented in
/// docs/STATS-JSON.md); byte counts are integers, times are ISO 8601 UTC strings, speeds bytes/s.
public enum StatsJSON {
    /// A figure that may be missing: `null` in the document, never an absent key.
    private static func value(_ x: Any?) -> Any { x ?? NSNull() }
    private static func finite(_ x: Double?) -> Any { value(x.flatMap { $0.isFinite ? $0 : nil }) }

    public static func render(_ s: Statistics.Snapshot) -> String {
        let d = s.data
        let served = s.bytesFromCache + s.bytesFromNetwork
        let totals = s.fileTotals
        let document: [String: Any] = [
            "schema_version": 1,
            "session": ["id": s.sessionID, "hostname": s.hostname, "start_time": Timestamp.iso(s.startTime),
                        "runtime_seconds": s.now - s.startTime],
            "performance": ["total_attempts": d.attempts, "successful": d.successes, "failed": d.failures,
                            "retries": d.retries, "not_found_errors": d.errors(.notFound), "auth_errors": d.errors(.auth),
                            "timeouts": d.errors(.timeout), "network_errors": d.errors(.network), "server_errors": d.errors(.server),
                            "changed_errors": d.errors(.changed), "resends": s.resends],
            "listings": ["requests": s.listings.attempts, "successful": s.listings.successes, "failed": s.listings.failures,
                         "retries": s.listings.retries, "errors": errors(s.listings)],
            "download": ["average_download_seconds": value(d.successes > 0 ? s.successSeconds / Double(d.successes) : nil),
                         "total_bytes": s.totalBytes,
                         "average_network_speed": value(s.receivingSeconds > 0 ? Double(s.totalBytes) / s.receivingSeconds : nil),
                         "average_download_rate": value(s.wallSeconds > 0 ? Double(s.totalBytes) / s.wallSeconds : nil),
                         "largest_bytes": value(s.largest), "smallest_bytes": value(s.smallest)],
            "cache": ["bytes_from_cache": s.bytesFromCache, "bytes_from_network": s.bytesFromNetwork,
                      "bytes_fetched": s.bytesReceived, "bytes_saved": s.bytesSaved,
                      "reads_from_cache": s.reads.fromCache, "reads_after_download": s.reads.afterDownload,
                      "hit_ratio": value(served > 0 ? Double(s.bytesFromCache) / Double(served) : nil),
                      "bytes_resumed": s.bytesResumed, "cached_objects": s.cachedObjects,
                      "cached_bytes": s.cachedBytes, "limit_bytes": s.cacheLimit, "evictions": s.evictions.count,
                      "evicted_bytes": s.evictions.bytes,
                      "evictions_by_reason": ["closed_objects": s.evictions.closedObjects, "closed_object_bytes": s.evictions.closedObjectBytes,
                                              "open_object_extents": s.evictions.openExtents, "open_object_extent_bytes": s.evictions.openExtentBytes,
                                              "refused_writes": s.evictions.refused, "refused_bytes": s.evictions.refusedBytes],
                      "pinned_bytes": s.pinnedBytes, "unrecorded_bytes": s.unrecordedBytes, "repairs": s.repairs, "notes": s.events,
                      "listings_in_memory": s.cachedListings.inMemory, "listing_bytes_in_memory": s.cachedListings.bytesInMemory,
                      "listings_in_memory_limit": s.cachedListings.memoryLimit,
                      "listings_on_disk": s.cachedListings.onDisk, "listing_bytes_on_disk": s.cachedListings.bytesOnDisk,
                      "listing_bytes_on_disk_limit": s.cachedListings.diskLimitBytes],
            "by_product": s.traffic.bytes.sorted { $0.key < $1.key }.map { key, bytes -> [String: Any] in
                ["satellite": key.satellite, "product": key.product,
                 "bytes_from_cache": bytes.fromCache, "bytes_from_network": bytes.afterDownload,
                 "bytes_fetched": bytes.fetched, "bytes_saved": bytes.saved]
            },
            "sources": s.sources.map { source -> [String: Any] in
                ["url": source.name, "attempts": source.attempts, "failures": source.failures,
                 "state": source.demotedUntil == nil ? "active" : "demoted",
                 "demoted_until": value(source.demotedUntil.map(Timestamp.iso))]
            },
            "in_progress": s.files.map { row -> [String: Any] in
                ["bucket": row.bucket, "key": row.key, "bytes_done": row.present, "bytes_total": row.size,
                 "bytes_fetching": row.fetching, "speed": finite(row.rate), "eta_seconds": finite(row.eta),
                 "eta_of": row.coverage.rawValue, "eta_bytes": row.remaining, "driver": row.driver.rawValue,
                 "requests": row.requests]
            },
            "in_progress_total": ["files": totals.files, "bytes_done": totals.present, "bytes_total": totals.size,
                                  "speed": finite(totals.rate), "eta_seconds": finite(totals.eta), "eta_bytes": totals.remaining,
                                  "requests": s.requestsInFlight],
            "open_files": s.openFiles.map { f -> [String: Any] in
                ["bucket": f.bucket, "key": f.key, "size": f.size, "handles": f.handles, "bytes_cached": f.present]
            },
            "request_timings": Dictionary(uniqueKeysWithValues: RequestKind.allCases.map { kind -> (String, Any) in
                let t = s.timings[kind] ?? RequestTimings()
                return (kind.rawValue, ["duration_seconds": histogram(t.duration), "first_byte_seconds": histogram(t.firstByte)])
            }),
            "recent_errors": s.recentErrors.map { e -> [String: Any] in
                ["time": Timestamp.iso(e.at), "kind": e.kind.rawValue, "category": e.category.rawValue, "message": e.message,
                 "key": e.key, "attempt": e.attempt, "max_attempts": e.maxAttempts]
            },
            "recent_attempts": s.recentAttempts.map { a -> [String: Any] in
                ["time": Timestamp.iso(a.at), "success": a.succeeded, "bytes": value(a.bytes), "seconds": a.seconds, "key": a.key]
            },
            "seconds_since_last_success": value(s.lastSuccess.map { s.now - $0 }),
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// `{"not_found": 0, …}`: every category, so a program never meets a missing key.
    private static func errors(_ c: RequestCounts) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: ErrorCategory.allCases.map { ($0.rawValue, c.errors($0)) })
    }

    /// `{"bounds": […], "counts": […] (cumulative), "count": n, "sum": s}`.
    private static func histogram(_ h: LatencyHistogram) -> [String: Any] {
        ["bounds": LatencyHistogram.bounds, "counts": h.counts, "count": h.count, "sum": h.sum]
    }
}
