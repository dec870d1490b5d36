import Foundation
import ObjectStore

/// Renders `.stats`: the plain-text report of `shared/STATS-FORMAT.md`.
public enum StatsReport {
    public static func text(_ s: Statistics.Snapshot) -> String {
        func rate(_ bytes: Int, _ seconds: Double) -> String {
            seconds > 0 ? String(format: "%.2f MB/s", Double(bytes) / seconds / 1_000_000) : "n/a"
        }
        func count(_ c: ErrorCategory) -> Int { s.errorsByCategory[c] ?? 0 }
        let percent = s.attempts > 0 ? String(format: " (%.1f%%)", Double(s.successes) * 100 / Double(s.attempts)) : ""
        var out = """
            S3 Download Statistics:
            ---------------------
            Session ID: \(s.sessionID)
            Hostname: \(s.hostname)
            Start time: \(Timestamp.iso(s.startTime))

            Performance Summary:
            Total attempts: \(s.attempts)
            Successful: \(s.successes)\(percent)
            Failed: \(s.failures)
            Retries: \(s.retries)
            Not found errors: \(count(.notFound))
            Auth errors: \(count(.auth))
            Timeouts: \(count(.timeout))
            Network errors: \(count(.network))
            Server errors: \(count(.server) + count(.changed))

            Download Metrics:
            Average download time: \(s.successes > 0 ? String(format: "%.2f seconds", s.successSeconds / Double(s.successes)) : "n/a")
            Total bytes: \(s.totalBytes) bytes
            Average network speed: \(rate(s.totalBytes, s.receivingSeconds))
            Average download rate: \(rate(s.totalBytes, s.wallSeconds))
            Largest file: \(s.largest.map { "\($0) bytes" } ?? "n/a")
            Smallest file: \(s.smallest.map { "\($0) bytes" } ?? "n/a")
            Total runtime: \(String(format: "%.1f", s.now - s.startTime)) seconds

            """
        let served = s.bytesFromCache + s.bytesFromNetwork
        let hitRatio = served > 0 ? String(format: "%.1f%%", Double(s.bytesFromCache) * 100 / Double(served)) : "n/a"
        out += """

            Cache:
            Bytes served from cache: \(s.bytesFromCache) bytes
            Bytes served after download: \(s.bytesFromNetwork) bytes
            Hit ratio: \(hitRatio)
            Bytes resumed after an interruption: \(s.bytesResumed) bytes
            Cached: \(s.cachedObjects) objects, \(ByteFormat.human(s.cachedBytes)) of \(ByteFormat.human(s.cacheLimit)) limit
            Evictions: \(s.evictions) (\(s.evictedBytes) bytes)
            Repairs: \(s.repairs)

            """
        for note in s.events { out += note + "\n" }
        if !s.sources.isEmpty {
            out += "\nSources:\n"
            for (i, source) in s.sources.enumerated() {
                let state = source.demotedUntil.map { "demoted until \(Timestamp.iso($0))" } ?? "active"
                out += "\(i + 1). \(source.name): \(source.attempts) attempts, \(source.failures) failures, \(state)\n"
            }
        }
        out += "\nIn progress:\n"
        if s.inFlight.isEmpty { out += "(none)\n" }
        for (i, t) in s.inFlight.values.sorted(by: { $0.started < $1.started }).enumerated() {
            let speed = t.rate.map { String(format: "%.2f MB/s", $0 / 1_000_000) } ?? "estimating…"
            let eta = t.eta.map { $0.isFinite ? String(format: "ETA %.1f s", $0) : "stalled" } ?? "ETA estimating…"
            out += "\(i + 1). \(shortKey(t.key)): \(t.done) / \(t.total) bytes, \(speed), \(eta)\n"
        }
        out += "\nRecent errors:\n"
        if s.recentErrors.isEmpty { out += "(none)\n" }
        for (i, e) in s.recentErrors.enumerated() {
            out += "\(i + 1). [\(Timestamp.iso(e.at))] \(e.category.rawValue): \(e.message) (key \(e.key), attempt \(e.attempt)/\(e.maxAttempts))\n"
        }
        out += "\nRecent download attempts:\n"
        if s.recentAttempts.isEmpty { out += "(none)\n" }
        for (i, a) in s.recentAttempts.enumerated() {
            let mark = a.succeeded ? "✓ Success" : "✗ Failed"
            let size = a.bytes.map(ByteFormat.human) ?? "N/A"
            out += "\(i + 1). [\(Timestamp.iso(a.at))] \(mark) - Size: \(size), Time: \(String(format: "%.2f", a.seconds))s, Key: \(shortKey(a.key))\n"
        }
        out += "\nTime since last successful download: "
        out += s.lastSuccess.map { String(format: "%.1f seconds", s.now - $0) } ?? "n/a"
        out += "\n"
        return out
    }

    /// `.../<file name>`, as the desktop app printed keys.
    static func shortKey(_ key: String) -> String {
        guard let slash = key.lastIndex(of: "/") else { return key }
        return "..." + key[slash...]
    }
}
