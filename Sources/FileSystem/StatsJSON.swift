import Foundation
import ObjectStore

/// `.stats.json`: the figures of `.stats` for programs. Field names are stable (documented in
/// docs/STATS-JSON.md); byte counts are integers, times are ISO 8601 UTC strings, speeds bytes/s.
public enum StatsJSON {
    struct Document: Encodable {
        struct Session: Encodable { let id: String, hostname: String, startTime: String, runtimeSeconds: Double }
        struct Performance: Encodable {
            let totalAttempts: Int, successful: Int, failed: Int, retries: Int
            let notFoundErrors: Int, authErrors: Int, timeouts: Int, networkErrors: Int, serverErrors: Int
        }
        struct Download: Encodable {
            let averageDownloadSeconds: Double?, totalBytes: Int
            let averageNetworkSpeed: Double?, averageDownloadRate: Double?
            let largestBytes: Int?, smallestBytes: Int?
        }
        struct Cache: Encodable {
            let bytesFromCache: Int, bytesFromNetwork: Int, hitRatio: Double?
            let bytesResumed: Int, cachedObjects: Int
            let cachedBytes: Int, limitBytes: Int, evictions: Int, evictedBytes: Int, repairs: Int, notes: [String]
        }
        struct SourceState: Encodable { let url: String, attempts: Int, failures: Int, state: String, demotedUntil: String? }
        struct Transfer: Encodable { let key: String, bytesDone: Int, bytesTotal: Int, speed: Double?, etaSeconds: Double? }
        struct ErrorEntry: Encodable { let time: String, category: String, message: String, key: String, attempt: Int, maxAttempts: Int }
        struct Attempt: Encodable { let time: String, success: Bool, bytes: Int?, seconds: Double, key: String }

        let schemaVersion = 1
        let session: Session
        let performance: Performance
        let download: Download
        let cache: Cache
        let sources: [SourceState]
        let inProgress: [Transfer]
        let recentErrors: [ErrorEntry]
        let recentAttempts: [Attempt]
        let secondsSinceLastSuccess: Double?
    }

    public static func render(_ s: Statistics.Snapshot) -> String {
        func count(_ c: ErrorCategory) -> Int { s.errorsByCategory[c] ?? 0 }
        let served = s.bytesFromCache + s.bytesFromNetwork
        let document = Document(
            session: .init(id: s.sessionID, hostname: s.hostname, startTime: Timestamp.iso(s.startTime), runtimeSeconds: s.now - s.startTime),
            performance: .init(totalAttempts: s.attempts, successful: s.successes, failed: s.failures, retries: s.retries,
                               notFoundErrors: count(.notFound), authErrors: count(.auth), timeouts: count(.timeout),
                               networkErrors: count(.network), serverErrors: count(.server)),
            download: .init(averageDownloadSeconds: s.successes > 0 ? s.successSeconds / Double(s.successes) : nil,
                            totalBytes: s.totalBytes,
                            averageNetworkSpeed: s.receivingSeconds > 0 ? Double(s.totalBytes) / s.receivingSeconds : nil,
                            averageDownloadRate: s.wallSeconds > 0 ? Double(s.totalBytes) / s.wallSeconds : nil,
                            largestBytes: s.largest, smallestBytes: s.smallest),
            cache: .init(bytesFromCache: s.bytesFromCache, bytesFromNetwork: s.bytesFromNetwork,
                         hitRatio: served > 0 ? Double(s.bytesFromCache) / Double(served) : nil,
                         bytesResumed: s.bytesResumed, cachedObjects: s.cachedObjects,
                         cachedBytes: s.cachedBytes, limitBytes: s.cacheLimit, evictions: s.evictions,
                         evictedBytes: s.evictedBytes, repairs: s.repairs, notes: s.cacheNotes),
            sources: s.sources.map { .init(url: $0.name, attempts: $0.attempts, failures: $0.failures,
                                           state: $0.demotedUntil == nil ? "active" : "demoted",
                                           demotedUntil: $0.demotedUntil.map(Timestamp.iso)) },
            inProgress: s.inFlight.values.sorted { $0.started < $1.started }.map {
                .init(key: $0.key, bytesDone: $0.done, bytesTotal: $0.total, speed: $0.rate, etaSeconds: $0.eta.flatMap { $0.isFinite ? $0 : nil })
            },
            recentErrors: s.recentErrors.map { .init(time: Timestamp.iso($0.at), category: $0.category.rawValue, message: $0.message,
                                                     key: $0.key, attempt: $0.attempt, maxAttempts: $0.maxAttempts) },
            recentAttempts: s.recentAttempts.map { .init(time: Timestamp.iso($0.at), success: $0.succeeded, bytes: $0.bytes,
                                                         seconds: $0.seconds, key: $0.key) },
            secondsSinceLastSuccess: s.lastSuccess.map { s.now - $0 })
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(document)) ?? Data("{}".utf8), as: UTF8.self) + "\n"
    }
}
