import Foundation
import ObjectStore
import Synchronization

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
        public var cacheNotes: [String] = []
        public var bytesFromCache = 0
        public var bytesFromNetwork = 0
        public var cachedBytes = 0
        public var cacheLimit = 0
        public var evictions = 0
        public var evictedBytes = 0
        public var repairs = 0
        public var sources: [SourceLine] = []
    }

    public struct SourceLine: Sendable {
        public let name: String, attempts: Int, failures: Int
        /// Nil while active.
        public let demotedUntil: Double?
    }

    public static let recentErrorLimit = 20
    public static let recentAttemptLimit = 50

    private let state: Mutex<Snapshot>
    private let clock: @Sendable () -> Double
    private let sources: SourcePool?

    public init(sessionID: String? = nil, hostname: String? = nil, sources: SourcePool? = nil,
                clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.sources = sources
        let start = clock()
        let id = sessionID ?? "\(Int(start))-\(getpid())"
        let host = hostname ?? ProcessInfo.processInfo.hostName
        state = Mutex(Snapshot(sessionID: id, hostname: host, startTime: start, now: start))
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

    /// A line for the report's cache section (repairs, index recovery).
    public func noteCacheEvent(_ text: String) {
        let now = clock()
        state.withLock {
            $0.cacheNotes.append("[\(Timestamp.iso(now))] \(text)")
            if $0.cacheNotes.count > 20 { $0.cacheNotes.removeFirst() }
        }
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
        noteCacheEvent(text)
    }

    public func sourceDemoted(_ source: String, until: Double) {
        noteCacheEvent("source \(source) failed 3 times in a row: demoted until \(Timestamp.iso(until))")
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
            append(&s.recentAttempts, AttemptRecord(at: now, succeeded: true, bytes: bytes, seconds: seconds, key: key),
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
                append(&s.recentAttempts, AttemptRecord(at: now, succeeded: false, bytes: nil, seconds: seconds, key: key),
                       limit: Statistics.recentAttemptLimit)
            }
            if retryDelay != nil { s.retries += 1 }
            s.errorsByCategory[error.category, default: 0] += 1
            append(&s.recentErrors, ErrorRecord(at: now, category: error.category, message: error.message, key: key,
                                                attempt: attempt, maxAttempts: maxAttempts),
                   limit: Statistics.recentErrorLimit)
        }
    }

    private func append<T>(_ ring: inout [T], _ item: T, limit: Int) {
        ring.append(item)
        if ring.count > limit { ring.removeFirst(ring.count - limit) }
    }
}
