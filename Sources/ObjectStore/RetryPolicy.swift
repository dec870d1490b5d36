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

    /// The sleep before attempt `attempt + 1` (attempts count from 1).
    public func delay(afterAttempt attempt: Int) -> Double {
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: 0...ceiling)
    }
}
