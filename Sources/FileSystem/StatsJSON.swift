import Foundation
import ObjectStore

/// `.stats.json`: the figures of `.stats` for programs. Field names are stable (documented in
/// docs/STATS-JSON.md); byte counts are integers, times are ISO 8601 UTC strings, speeds bytes/s.
public enum StatsJSON {
    /// A figure that may be missing: `null` in the document, never an absent key.
    private static func value(_ x: Any?) -> Any { x ?? NSNull() }

    public static func render(_ s: Statistics.Snapshot) -> String {
        func count(_ c: ErrorCategory) -> Int { s.errorsByCategory[c] ?? 0 }
        let served = s.bytesFromCache + s.bytesFromNetwork
        let document: [String: Any] = [
            "schema_version": 1,
            "session": ["id": s.sessionID, "hostname": s.hostname, "start_time": Timestamp.iso(s.startTime),
                        "runtime_seconds": s.now - s.startTime],
            "performance": ["total_attempts": s.attempts, "successful": s.successes, "failed": s.failures,
                            "retries": s.retries, "not_found_errors": count(.notFound), "auth_errors": count(.auth),
                            "timeouts": count(.timeout), "network_errors": count(.network), "server_errors": count(.server) + count(.changed)],
            "download": ["average_download_seconds": value(s.successes > 0 ? s.successSeconds / Double(s.successes) : nil),
                         "total_bytes": s.totalBytes,
                         "average_network_speed": value(s.receivingSeconds > 0 ? Double(s.totalBytes) / s.receivingSeconds : nil),
                         "average_download_rate": value(s.wallSeconds > 0 ? Double(s.totalBytes) / s.wallSeconds : nil),
                         "largest_bytes": value(s.largest), "smallest_bytes": value(s.smallest)],
            "cache": ["bytes_from_cache": s.bytesFromCache, "bytes_from_network": s.bytesFromNetwork,
                      "hit_ratio": value(served > 0 ? Double(s.bytesFromCache) / Double(served) : nil),
                      "bytes_resumed": s.bytesResumed, "cached_objects": s.cachedObjects,
                      "cached_bytes": s.cachedBytes, "limit_bytes": s.cacheLimit, "evictions": s.evictions,
                      "evicted_bytes": s.evictedBytes, "repairs": s.repairs, "notes": s.events],
            "sources": s.sources.map { source -> [String: Any] in
                ["url": source.name, "attempts": source.attempts, "failures": source.failures,
                 "state": source.demotedUntil == nil ? "active" : "demoted",
                 "demoted_until": value(source.demotedUntil.map(Timestamp.iso))]
            },
            "in_progress": s.inFlight.values.sorted { $0.started < $1.started }.map { t -> [String: Any] in
                ["key": t.key, "bytes_done": t.done, "bytes_total": t.total, "speed": value(t.rate),
                 "eta_seconds": value(t.eta.flatMap { $0.isFinite ? $0 : nil })]
            },
            "recent_errors": s.recentErrors.map { e -> [String: Any] in
                ["time": Timestamp.iso(e.at), "category": e.category.rawValue, "message": e.message,
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
}
