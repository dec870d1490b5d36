/// A cumulative histogram of durations in seconds, Prometheus-style: count per upper bound.
///
/// Fixed bounds from 10 ms (a local cache answer) to 60 s (past the read deadline), so every
/// mount's histograms add up across instances.
public struct LatencyHistogram: Sendable, Equatable {
    public static let bounds: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    /// `counts[i]`: observations ≤ `bounds[i]` (cumulative); `count` includes those above the last bound.
    public private(set) var counts = [Int](repeating: 0, count: LatencyHistogram.bounds.count)
    public private(set) var count = 0
    public private(set) var sum = 0.0

    public init() {}

    public mutating func observe(_ seconds: Double) {
        let value = max(0, seconds.isFinite ? seconds : 0)
        for (i, bound) in LatencyHistogram.bounds.enumerated() where value <= bound { counts[i] += 1 }
        count += 1
        sum += value
    }
}

/// The timings of one kind of request.
public struct RequestTimings: Sendable, Equatable {
    /// Whole attempt, first byte sent to last byte received (or the failure).
    public var duration = LatencyHistogram()
    /// Attempt start to the first response byte; attempts with no response are not in it.
    public var firstByte = LatencyHistogram()
}
