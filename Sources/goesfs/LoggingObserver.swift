import FileSystem
import Logging
import ObjectStore

/// What the S3 client reports, logged (each failed attempt is one event with its kind and
/// category, the names `.stats` uses) and passed on to the statistics.
struct LoggingObserver: TransferObserver {
    let statistics: Statistics
    let logger: Logger

    func transferFailed(kind: RequestKind, key: String, error: FetchError, seconds: Double, attempt: Int, maxAttempts: Int, retryDelay: Double?) {
        let next = retryDelay.map { String(format: "; retrying in %.1f s", $0) } ?? ""
        logger.warning("\(kind.rawValue) request for \(ListingRules.printable(key)) failed (attempt \(attempt)/\(maxAttempts)): \(ListingRules.printable(error.message))\(next)",
                       metadata: ["event": "request_failed", "kind": "\(kind.rawValue)", "category": "\(error.category.rawValue)",
                                  "attempt": "\(attempt)", "will_retry": "\(retryDelay != nil)"])
        statistics.transferFailed(kind: kind, key: key, error: error, seconds: seconds, attempt: attempt, maxAttempts: maxAttempts, retryDelay: retryDelay)
    }

    func sourceDemoted(_ source: String, until: Double) {
        logger.warning("source \(source) failed 3 times in a row: skipped until \(Timestamp.iso(until))",
                       metadata: ["event": "source_demoted", "source": "\(source)"])
        statistics.sourceDemoted(source, until: until)
    }

    func transferSucceeded(key: String, bytes: Int, seconds: Double, attempt: Int) {
        statistics.transferSucceeded(key: key, bytes: bytes, seconds: seconds, attempt: attempt)
    }
    func transferResumed(key: String, keptBytes: Int) { statistics.transferResumed(key: key, keptBytes: keptBytes) }
    func listingPageReceived(prefix: String) { statistics.listingPageReceived(prefix: prefix) }
    func requestFinished(kind: RequestKind, firstByteSeconds: Double?, seconds: Double) {
        statistics.requestFinished(kind: kind, firstByteSeconds: firstByteSeconds, seconds: seconds)
    }
    func requestResent(kind: RequestKind, key: String) { statistics.requestResent(kind: kind, key: key) }
}
