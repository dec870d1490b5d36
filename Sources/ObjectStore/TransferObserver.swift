/// Data requests (ranged GETs of objects) and listing requests are counted apart (docs/STATS-FORMAT.md).
public enum RequestKind: String, Sendable, CaseIterable { case data, listing }

/// What the S3 client reports about each request, so statistics live outside the client.
public protocol TransferObserver: Sendable {
    /// One data request finished: `bytes` arrived in `seconds` (receiving time).
    func transferSucceeded(key: String, bytes: Int, seconds: Double, attempt: Int)
    /// One request failed; `retryDelay` is the backoff before the next attempt, nil when none follows.
    func transferFailed(kind: RequestKind, key: String, error: FetchError, seconds: Double, attempt: Int, maxAttempts: Int, retryDelay: Double?)
    /// A source failed too often in a row and is skipped until `until` (seconds since the epoch).
    func sourceDemoted(_ source: String, until: Double)
    /// A cut transfer continues: `keptBytes` already received are not fetched again.
    func transferResumed(key: String, keptBytes: Int)
    /// One listing page arrived whole (the listing's counterpart of `transferSucceeded`).
    func listingPageReceived(prefix: String)
    /// One attempt got its answer or gave up, for its timings: exactly once per attempt.
    /// `firstByteSeconds` is nil when no response came.
    func requestFinished(kind: RequestKind, firstByteSeconds: Double?, seconds: Double)
    /// libcurl sent an attempt again by itself on a dead reused connection; that send is also
    /// reported as a failed attempt (it reached the source).
    func requestResent(kind: RequestKind, key: String)
}

extension TransferObserver {
    public func sourceDemoted(_ source: String, until: Double) {}
    public func transferResumed(key: String, keptBytes: Int) {}
    public func listingPageReceived(prefix: String) {}
    public func requestFinished(kind: RequestKind, firstByteSeconds: Double?, seconds: Double) {}
    public func requestResent(kind: RequestKind, key: String) {}
}

/// Records nothing; for tools that do not report.
public struct SilentObserver: TransferObserver {
    public init() {}
    public func transferSucceeded(key: String, bytes: Int, seconds: Double, attempt: Int) {}
    public func transferFailed(kind: RequestKind, key: String, error: FetchError, seconds: Double, attempt: Int, maxAttempts: Int, retryDelay: Double?) {}
}
