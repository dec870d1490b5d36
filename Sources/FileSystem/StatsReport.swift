import Foundation
import ObjectStore

/// Renders `.stats`: the plain-text report; every figure is defined in docs/STATS-FORMAT.md.
public enum StatsReport {
    public static func text(_ s: Statistics.Snapshot) -> String {
        func rate(_ bytes: Int, _ seconds: Double) -> String {
            seconds > 0 ? String(format: "%.2f MB/s", Double(bytes) / seconds / 1_000_000) : "n/a"
        }
        let d = s.data
        let percent = d.attempts > 0 ? String(format: " (%.1f%%)", Double(d.successes) * 100 / Double(d.attempts)) : ""
        var out = """
            S3 Download Statistics:
            ---------------------
            Session ID: \(s.sessionID)
            Hostname: \(s.hostname)
            Start time: \(Timestamp.iso(s.startTime))

            Performance Summary (data requests: ranged GETs of file bytes):
            Total attempts: \(d.attempts)
            Successful: \(d.successes)\(percent)
            Failed: \(d.failures)
            Retries: \(d.retries)
            Not found errors: \(d.errors(.notFound))
            Auth errors: \(d.errors(.auth))
            Timeouts: \(d.errors(.timeout))
            Network errors: \(d.errors(.network))
            Server errors: \(d.errors(.server))
            Changed at the source: \(d.errors(.changed))

            Listings (ListObjectsV2 pages):
            Listing requests: \(s.listings.attempts)
            Listing successes: \(s.listings.successes)
            Listing failures: \(s.listings.failures)\(categories(s.listings))
            Listing retries: \(s.listings.retries)
            Resent on a dead connection: \(s.resends)

            Download Metrics:
            Average download time: \(d.successes > 0 ? String(format: "%.2f seconds", s.successSeconds / Double(d.successes)) : "n/a")
            Total bytes: \(s.totalBytes) bytes
            Average network speed: \(rate(s.totalBytes, s.receivingSeconds))
            Average download rate: \(rate(s.totalBytes, s.wallSeconds))
            Largest file: \(s.largest.map { "\($0) bytes" } ?? "n/a")
            Smallest file: \(s.smallest.map { "\($0) bytes" } ?? "n/a")
            Total runtime: \(String(format: "%.1f", s.now - s.startTime)) seconds

            """
        let served = s.bytesFromCache + s.bytesFromNetwork
        let l = s.cachedListings
        let hitRatio = served > 0 ? String(format: "%.1f%%", Double(s.bytesFromCache) * 100 / Double(served)) : "n/a"
        out += """

            Cache:
            Bytes served from cache: \(s.bytesFromCache) bytes
            Bytes served after download: \(s.bytesFromNetwork) bytes
            Hit ratio: \(hitRatio)
            Bytes fetched from the network: \(s.bytesReceived) bytes
            Saved by the cache: \(s.bytesSaved) bytes
            Bytes resumed after an interruption: \(s.bytesResumed) bytes
            Cached: \(s.cachedObjects) objects, \(ByteFormat.human(s.cachedBytes)) of \(ByteFormat.human(s.cacheLimit)) limit
            Cached listings: \(l.inMemory) in memory (\(ByteFormat.human(l.bytesInMemory)), at most \(l.memoryLimit)), \(l.onDisk) on disk (\(ByteFormat.human(l.bytesOnDisk)) of \(ByteFormat.human(l.diskLimitBytes)) limit)
            Pinned: \(ByteFormat.human(s.pinnedBytes)) being served, \(ByteFormat.human(s.unrecordedBytes)) being written
            Evictions: \(s.evictions.count) (\(s.evictions.bytes) bytes): \(s.evictions.closedObjects) closed objects (\(s.evictions.closedObjectBytes) bytes), \(s.evictions.openExtents) cold parts of open objects (\(s.evictions.openExtentBytes) bytes); no room: \(s.evictions.refused) writes (\(s.evictions.refusedBytes) bytes) served from memory
            Repairs: \(s.repairs)

            """
        for note in s.events { out += note + "\n" }
        out += "\nBy satellite and product (bytes served from cache / after download, fetched, saved):\n"
        if s.traffic.bytes.isEmpty { out += "(none)\n" }
        for (key, b) in s.traffic.bytes.sorted(by: { $0.key < $1.key }) {
            out += "\(key.satellite) \(key.product): \(b.fromCache) / \(b.afterDownload), fetched \(b.fetched), saved \(b.saved)\n"
        }
        if !s.sources.isEmpty {
            out += "\nSources (attempts: data and listing requests):\n"
            for (i, source) in s.sources.enumerated() {
                let state = source.demotedUntil.map { "demoted until \(Timestamp.iso($0))" } ?? "active"
                out += "\(i + 1). \(source.name): \(source.attempts) attempts, \(source.failures) failures, \(state)\n"
            }
        }
        out += "\nIn progress:\n"
        if s.files.isEmpty { out += "(none)\n" }
        for (i, row) in s.files.enumerated() { out += "\(i + 1). \(line(row))\n" }
        if !s.files.isEmpty {
            let t = s.fileTotals
            out += "Total: \(t.files) file\(t.files == 1 ? "" : "s"), \(t.present) / \(t.size) bytes, \(speed(t.rate)), \(eta(t.eta, of: "what the rows cover"))\n"
        }
        out += "\nOpen now:\n"
        if s.openFiles.isEmpty { out += "(none)\n" }
        for (i, f) in s.openFiles.enumerated() {
            out += "\(i + 1). \(f.bucket)/\(f.key): \(f.handles) handle\(f.handles == 1 ? "" : "s"), \(f.present) / \(f.size) bytes cached\n"
        }
        out += "\nRecent errors:\n"
        if s.recentErrors.isEmpty { out += "(none)\n" }
        for (i, e) in s.recentErrors.enumerated() {
            let kind = e.kind == .listing ? " (listing)" : ""
            out += "\(i + 1). [\(Timestamp.iso(e.at))] \(e.category.rawValue)\(kind): \(e.message) (key \(e.key), attempt \(e.attempt)/\(e.maxAttempts))\n"
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

    /// One "In progress" row: `…/name: present / size bytes (pct), speed, ETA … (of what), driver`.
    static func line(_ row: FileRow) -> String {
        let of = row.coverage == .restOfFile ? "rest of file" : "\(row.remaining) bytes requested"
        return "\(row.bucket)/\(shortKey(row.key)): \(row.present) / \(row.size) bytes (\(String(format: "%.1f%%", row.fraction * 100))), "
            + "\(speed(row.rate)), \(eta(row.eta, of: of)), \(row.driver.rawValue)"
    }

    static func speed(_ rate: Double?) -> String {
        rate.map { String(format: "%.2f MB/s", $0 / 1_000_000) } ?? "estimating…"
    }

    static func eta(_ seconds: Double?, of what: String) -> String {
        guard let seconds else { return "ETA estimating…" }
        return seconds.isFinite ? String(format: "ETA %.1f s", seconds) + " for the \(what)" : "stalled"
    }

    /// " (timeout 1, server 2)": the categories of failures, when there are any.
    static func categories(_ c: RequestCounts) -> String {
        let parts = ErrorCategory.allCases.compactMap { cat in c.errors(cat) > 0 ? "\(cat.rawValue) \(c.errors(cat))" : nil }
        return parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"
    }

    /// `.../<file name>`, as the desktop app printed keys.
    static func shortKey(_ key: String) -> String {
        guard let slash = key.lastIndex(of: "/") else { return key }
        return "..." + key[slash...]
    }
}
