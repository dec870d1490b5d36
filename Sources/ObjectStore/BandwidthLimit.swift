import Foundation
import Locking

/// A token bucket shared by every transfer: `--max-bandwidth`.
///
/// Receiving threads take tokens for the bytes they got and sleep when the bucket is empty, which
/// slows the socket reads and so the sender (TCP flow control). The bucket holds at most a quarter
/// second of tokens, so a pause never turns into a burst above the limit.
public final class BandwidthLimit: Sendable {
    public let bytesPerSecond: Double
    private struct Bucket { var tokens: Double; var updated: Double }
    private let bucket: Locked<Bucket>

    public init(bytesPerSecond: Int) {
        self.bytesPerSecond = Double(max(1, bytesPerSecond))
        bucket = Locked(Bucket(tokens: 0, updated: BandwidthLimit.now()))
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Takes `bytes` tokens, sleeping until the debt is paid or `deadline` (uptime ns) comes;
    /// false if the deadline came first. Sleeps in short slices outside the lock, so a tiny limit
    /// never holds a thread past its request's deadline (a transfer's own timeouts cannot fire
    /// while its write callback sleeps).
    func consume(_ bytes: Int, until deadline: UInt64) -> Bool {
        var wait = bucket.withLock { b -> Double in
            let now = BandwidthLimit.now()
            b.tokens = min(bytesPerSecond / 4, b.tokens + (now - b.updated) * bytesPerSecond)
            b.updated = now
            b.tokens -= Double(bytes)
            return b.tokens < 0 ? -b.tokens / bytesPerSecond : 0
        }
        while wait > 0 {
            let left = Double(Int64(deadline) - Int64(DispatchTime.now().uptimeNanoseconds)) / 1e9
            guard left > 0 else { return false }
            let slice = min(wait, left, 0.25)
            Thread.sleep(forTimeInterval: slice)
            wait -= slice
        }
        return true
    }
}
