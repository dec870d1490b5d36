/// Data requests count as download attempts; listing failures are reported for the error log only.
public enum RequestKind: Sendable { case data, listing }

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
}

extension TransferObserver {
    public func sourceDemoted(_ source: String, until: Double) {}
    public func transferResumed(key: String, keptBytes: Int) {}
}

/// Records nothing; for tools that do not report.
public struct SilentObserver: TransferObserver {
    public init() {}
    public func transferSucceeded(key: String, bytes: Int, seconds: Double, attempt: Int) {}
    public func transferFailed(kind: RequestKind, key: String, error: FetchError, seconds: Double, attempt: Int, maxAttempts: Int, retryDelay: Double?) {}
}
