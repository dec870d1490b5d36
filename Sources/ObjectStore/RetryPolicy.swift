import Foundation

/// How often and how patiently a request is retried: the one place that decides it.
///
/// Exponential backoff with full jitter (sleep a random time in `0...min(cap, base·2ⁿ)`), a limit on
/// attempts and an overall deadline, so a dead network turns into an error in bounded time.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double
    /// Seconds from the first attempt after which no new attempt starts.
    public var deadline: Double

    public init(maxAttempts: Int = 5, baseDelay: Double = 0.1, maxDelay: Double = 4, deadline: Double = 30) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.deadline = deadline
    }

    /// The first and the longest sleep after a throttling answer (503 SlowDown, 429). S3 asks for
    /// seconds, not milliseconds; such answers are retried until the deadline, not `maxAttempts`.
    public var throttleBaseDelay = 0.5
    public var throttleMaxDelay = 5.0

    /// The sleep before attempt `attempt + 1` (attempts count from 1).
    public func delay(afterAttempt attempt: Int, throttled: Bool = false) -> Double {
        let exponent = Double(min(max(attempt - 1, 0), 30))
        guard throttled else {
            return Double.random(in: 0...min(maxDelay, baseDelay * pow(2, exponent)))
        }
        // Equal jitter: never less than half the step, so a throttled source really gets a rest.
        let step = min(throttleMaxDelay, throttleBaseDelay * pow(2, exponent))
        return step / 2 + Double.random(in: 0...(step / 2))
    }

    /// Whether attempt `attempt + 1` may start `elapsed + delay` seconds after the first.
    public func mayRetry(after error: FetchError, attempt: Int, elapsed: Double, delay: Double) -> Bool {
        guard error.category.isRetryable, elapsed + delay < deadline else { return false }
        return attempt < maxAttempts || error.isThrottling
    }
}
