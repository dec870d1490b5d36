import Foundation
import Locking
import ObjectStore

/// The download figures behind `.stats`, `.stats.json` and `/metrics`: every request reports here.
///
/// One short lock per event, never held across I/O, so it can sit on the read path. Each figure is
/// defined once, in docs/STATS-FORMAT.md.
public final class Statistics: TransferObserver, Sendable {
    public static let recentErrorLimit = 20
    public static let recentAttemptLimit = 50
    public static let eventLimit = 20

    private let state: Locked<Snapshot>
    private let clock: @Sendable () -> Double
    private let sources: SourcePool?

    public init(sessionID: String? = nil, hostname: String? = nil, sources: SourcePool? = nil,
                clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.sources = sources
        let start = clock()
        let id = sessionID ?? "\(Int(start))-\(getpid())"
        let host = hostname ?? ProcessInfo.processInfo.hostName
        state = Locked(Snapshot(sessionID: id, hostname: host, startTime: start, now: start))
        self.clock = clock
    }

    public func snapshot() -> Snapshot {
        let now = clock()
        let lines = sources?.snapshot().map { entry in
            SourceLine(name: entry.source.description, attempts: entry.health.attempts, failures: entry.health.failures,
                       demotedUntil: entry.health.demotedUntil > now ? entry.health.demotedUntil : nil)
        } ?? []
        return state.withLock { s in
            Statistics.pruneIdle(&s.activity, now: now)
            var copy = s
            copy.now = now
            copy.sources = lines
            return copy
        }
    }

    /// Something the user should know happened (see `Snapshot.events`).
    public func noteEvent(_ text: String) {
        let now = clock()
        // Keys come from servers: no control character reaches a terminal showing `.stats` or `--watch`.
        let safe = ListingRules.printable(text)
        state.withLock { append(&$0.events, "[\(Timestamp.iso(now))] \(safe)", limit: Statistics.eventLimit) }
    }

    /// A read was answered; `fromCache` when no block it needed had to be downloaded.
    public func recordRead(bucket: String, key: String, bytes: Int, fromCache: Bool) {
        state.withLock { s in
            if fromCache { s.bytesFromCache += bytes; s.reads.fromCache += 1 } else { s.bytesFromNetwork += bytes; s.reads.afterDownload += 1 }
            s.traffic.record(bucket: bucket, key: key, bytes: bytes, fromCache: fromCache)
        }
    }

    public func updateCacheUsage(bytes: Int, limit: Int) {
        state.withLock { $0.cachedBytes = bytes; $0.cacheLimit = limit }
    }

    /// What eviction freed, by kind of unit.
    public enum EvictionKind: Sendable { case closedObject, openObjectExtent }

    public func recordEviction(_ kind: EvictionKind, bytes: Int) {
        state.withLock { s in
            switch kind {
            case .closedObject: s.evictions.closedObjects += 1; s.evictions.closedObjectBytes += bytes
            case .openObjectExtent: s.evictions.openExtents += 1; s.evictions.openExtentBytes += bytes
            }
        }
    }

    /// Room the cap could not make (everything left pinned or being written): served from memory.
    public func recordEvictionRefused(bytes: Int) {
        state.withLock { $0.evictions.refused += 1; $0.evictions.refusedBytes += bytes }
    }

    public func recordRepair(_ text: String) {
        state.withLock { $0.repairs += 1 }
        noteEvent(text)
    }

    /// A block download of `bytes` of an object of `objectSize` starts; returns its id.
    public func beginTransfer(bucket: String, key: String, objectSize: Int, bytes: Int) -> UInt64 {
        let now = clock()
        let file = bucket + "/" + key
        return state.withLock { s in
            let id = s.nextTransfer
            s.nextTransfer += 1
            s.transferFile[id] = file
            if s.activity[file] == nil {
                s.activity[file] = FileActivity(bucket: bucket, key: ListingRules.printable(key), size: objectSize, lastActivity: now)
            }
            s.activity[file]!.transfers[id] = 0
            return id
        }
    }

    public func transferProgress(_ id: UInt64, bytes: Int) {
        let now = clock()
        state.withLock { s in
            guard let file = s.transferFile[id], var a = s.activity[file] else { return }
            s.bytesReceived += bytes
            s.traffic.recordFetched(bucket: a.bucket, key: a.key, bytes: bytes)
            a.transfers[id, default: 0] += bytes
            a.window.add(bytes, at: now)
            a.lastActivity = now
            s.activity[file] = a
        }
    }

    public func endTransfer(_ id: UInt64) {
        let now = clock()
        state.withLock { s in
            guard let file = s.transferFile.removeValue(forKey: id) else { return }
            s.activity[file]?.transfers[id] = nil
            s.activity[file]?.lastActivity = now
            // Also pruned here, so a mount whose report nobody reads does not keep every file it fetched.
            if s.activity.count > Statistics.activityPruneThreshold { Statistics.pruneIdle(&s.activity, now: now) }
        }
    }

    /// The bytes present shown for a file, never less than shown before (see `FileActivity.shownPresent`).
    func notePresentShown(file: String, bytes: Int) {
        state.withLock { s in
            if let shown = s.activity[file]?.shownPresent, bytes > shown { s.activity[file]!.shownPresent = bytes }
        }
    }

    public func transferResumed(key: String, keptBytes: Int) {
        state.withLock { $0.bytesResumed += keptBytes }
    }

    public func sourceDemoted(_ source: String, until: Double) {
        noteEvent("source \(source) failed 3 times in a row: demoted until \(Timestamp.iso(until))")
    }

    public func requestFinished(kind: RequestKind, firstByteSeconds: Double?, seconds: Double) {
        state.withLock { s in
            s.timings[kind, default: RequestTimings()].duration.observe(seconds)
            if let firstByteSeconds { s.timings[kind, default: RequestTimings()].firstByte.observe(firstByteSeconds) }
        }
    }

    public func listingPageReceived(prefix: String) {
        state.withLock { $0.listings.successes += 1 }
    }

    public func requestResent(kind: RequestKind, key: String) {
        state.withLock { $0.resends += 1 }
    }

    public func transferSucceeded(key: String, bytes: Int, seconds: Double, attempt: Int) {
        let now = clock()
        state.withLock { s in
            s.data.successes += 1
            s.totalBytes += bytes
            s.receivingSeconds += seconds
            s.successSeconds += seconds
            s.wallSeconds += seconds
            s.largest = max(s.largest ?? bytes, bytes)
            s.smallest = min(s.smallest ?? bytes, bytes)
            s.lastSuccess = now
            append(&s.recentAttempts, AttemptRecord(at: now, succeeded: true, bytes: bytes, seconds: seconds, key: ListingRules.printable(key)),
                   limit: Statistics.recentAttemptLimit)
        }
    }

    public func transferFailed(kind: RequestKind, key: String, error: FetchError, seconds: Double,
                               attempt: Int, maxAttempts: Int, retryDelay: Double?) {
        let now = clock()
        state.withLock { s in
            func count(_ c: inout RequestCounts) {
                c.failures += 1
                c.errorsByCategory[error.category, default: 0] += 1
                if retryDelay != nil { c.retries += 1 }
            }
            if kind == .data {
                count(&s.data)
                s.wallSeconds += seconds + (retryDelay ?? 0)
                append(&s.recentAttempts, AttemptRecord(at: now, succeeded: false, bytes: nil, seconds: seconds, key: ListingRules.printable(key)),
                       limit: Statistics.recentAttemptLimit)
            } else {
                count(&s.listings)
            }
            append(&s.recentErrors, ErrorRecord(at: now, kind: kind, category: error.category, message: ListingRules.printable(error.message),
                                                key: ListingRules.printable(key), attempt: attempt, maxAttempts: maxAttempts),
                   limit: Statistics.recentErrorLimit)
        }
    }

    static let activityPruneThreshold = 64

    private static func pruneIdle(_ activity: inout [String: FileActivity], now: Double) {
        activity = activity.filter { !$0.value.transfers.isEmpty || now - $0.value.lastActivity < FileActivity.linger }
    }

    private func append<T>(_ ring: inout [T], _ item: T, limit: Int) {
        ring.append(item)
        if ring.count > limit { ring.removeFirst(ring.count - limit) }
    }
}
