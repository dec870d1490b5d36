import Foundation
import Locking
import ObjectStore

/// The download figures behind `.stats`: every data request reports here.
///
/// One short lock per event, never held across I/O, so it can sit on the read path.
public final class Statistics: TransferObserver, Sendable {
    public struct ErrorRecord: Sendable {
        public let at: Double, category: ErrorCategory, message: String, key: String, attempt: Int, maxAttempts: Int
    }
    public struct AttemptRecord: Sendable {
        public let at: Double, succeeded: Bool, bytes: Int?, seconds: Double, key: String
    }

    /// The figures at one instant; what a report renders.
    public struct Snapshot: Sendable {
        public var sessionID: String
        public var hostname: String
        public var startTime: Double
        public var now: Double
        public var attempts = 0
        public var successes = 0
        public var failures = 0
        public var retries = 0
        public var errorsByCategory: [ErrorCategory: Int] = [:]
        public var totalBytes = 0
        public var receivingSeconds = 0.0
        public var successSeconds = 0.0
        /// Time of all attempts plus backoff waits: the denominator of the download rate.
        public var wallSeconds = 0.0
        public var largest: Int?
        public var smallest: Int?
        public var lastSuccess: Double?
        public var recentErrors: [ErrorRecord] = []
        public var recentAttempts: [AttemptRecord] = []
        /// Timestamped notes (repairs, index recovery, source demotions, diagnostics verdicts),
        /// printed after the cache figures and in `cache.notes`; the last 20.
        public var events: [String] = []
        public var bytesFromCache = 0
        public var bytesFromNetwork = 0
        public var cachedBytes = 0
        public var cacheLimit = 0
        public var evictions = 0
        public var evictedBytes = 0
        public var repairs = 0
        public var bytesResumed = 0
        /// Objects with cached blocks (read from the index when a report is rendered).
        public var cachedObjects = 0
        public var sources: [SourceLine] = []
        public var inFlight: [UInt64: InFlight] = [:]
        var nextTransfer: UInt64 = 1
    }

    /// A download under way: how far it got and how fast it goes.
    public struct InFlight: Sendable {
        public let key: String
        public let total: Int
        public let started: Double
        public var done = 0
        /// Exponentially weighted bytes/s; nil until enough data arrived to mean something.
        public var rate: Double?
        var sampleStart: Double
        var sampleBytes = 0

        /// Seconds left at the smoothed rate, once there is one.
        public var eta: Double? { rate.map { $0 > 0 ? Double(total - done) / $0 : .infinity } }
    }

    public struct SourceLine: Sendable {
        public let name: String, attempts: Int, failures: Int
        /// Nil while active.
        public let demotedUntil: Double?
    }

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
        return state.withLock { var s = $0; s.now = now; s.sources = lines; return s }
    }

    /// Something the user should know happened (see `Snapshot.events`).
    public func noteEvent(_ text: String) {
        let now = clock()
        // Keys come from servers: no control character reaches a terminal showing `.stats` or `--watch`.
        let safe = ListingRules.printable(text)
        state.withLock { append(&$0.events, "[\(Timestamp.iso(now))] \(safe)", limit: Statistics.eventLimit) }
    }

    /// A read was answered; `fromCache` when no block it needed had to be downloaded.
    public func recordRead(bytes: Int, fromCache: Bool) {
        state.withLock { s in
            if fromCache { s.bytesFromCache += bytes } else { s.bytesFromNetwork += bytes }
        }
    }

    public func updateCacheUsage(bytes: Int, limit: Int) {
        state.withLock { $0.cachedBytes = bytes; $0.cacheLimit = limit }
    }

    public func recordEviction(bytes: Int) {
        state.withLock { $0.evictions += 1; $0.evictedBytes += bytes }
    }

    public func recordRepair(_ text: String) {
        state.withLock { $0.repairs += 1 }
        noteEvent(text)
    }

    public func beginTransfer(key: String, bytes: Int) -> UInt64 {
        let now = clock()
        return state.withLock { s in
            let id = s.nextTransfer
            s.nextTransfer += 1
            s.inFlight[id] = InFlight(key: ListingRules.printable(key), total: bytes, started: now, sampleStart: now)
            return id
        }
    }

    /// Folds arrivals into the smoothed rate in samples of at least 0.25 s (shorter ones are noise).
    public func transferProgress(_ id: UInt64, bytes: Int) {
        let now = clock()
        state.withLock { s in
            guard var t = s.inFlight[id] else { return }
            t.done += bytes
            t.sampleBytes += bytes
            let span = now - t.sampleStart
            if span >= 0.25 {
                let sample = Double(t.sampleBytes) / span
                t.rate = t.rate.map { 0.7 * $0 + 0.3 * sample } ?? sample
                t.sampleStart = now
                t.sampleBytes = 0
            }
            s.inFlight[id] = t
        }
    }

    public func endTransfer(_ id: UInt64) {
        _ = state.withLock { $0.inFlight.removeValue(forKey: id) }
    }

    public func transferResumed(key: String, keptBytes: Int) {
        state.withLock { $0.bytesResumed += keptBytes }
    }

    public func sourceDemoted(_ source: String, until: Double) {
        noteEvent("source \(source) failed 3 times in a row: demoted until \(Timestamp.iso(until))")
    }

    public func transferSucceeded(key: String, bytes: Int, seconds: Double, attempt: Int) {
        let now = clock()
        state.withLock { s in
            s.attempts += 1
            s.successes += 1
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
            if kind == .data {
                s.attempts += 1
                s.failures += 1
                s.wallSeconds += seconds + (retryDelay ?? 0)
                append(&s.recentAttempts, AttemptRecord(at: now, succeeded: false, bytes: nil, seconds: seconds, key: ListingRules.printable(key)),
                       limit: Statistics.recentAttemptLimit)
            }
            if retryDelay != nil { s.retries += 1 }
            s.errorsByCategory[error.category, default: 0] += 1
            append(&s.recentErrors, ErrorRecord(at: now, category: error.category, message: ListingRules.printable(error.message), key: ListingRules.printable(key),
                                                attempt: attempt, maxAttempts: maxAttempts),
                   limit: Statistics.recentErrorLimit)
        }
    }

    private func append<T>(_ ring: inout [T], _ item: T, limit: Int) {
        ring.append(item)
        if ring.count > limit { ring.removeFirst(ring.count - limit) }
    }
}
