import Synchronization

/// Per open handle: is the reader going through the file in order, and how far ahead to fetch.
///
/// Reads that start near where the previous one ended (the kernel's readahead may reorder them a
/// little) grow a streak; the prefetch window doubles with it up to `maxBlocks`. A jump elsewhere
/// halves the streak instead of resetting it, so one seek does not throw away a warmed-up window.
final class ReadPattern: Sendable {
    static let maxBlocks = 16
    /// How far from the expected offset a read still counts as sequential.
    static let slack = 2 << 20

    private struct State { var nextOffset = 0; var streak = 0 }
    private let state = Mutex(State())

    /// Records a read of `offset..<end`; returns how many blocks after it to prefetch.
    func record(offset: Int, end: Int) -> Int {
        state.withLock { s in
            if abs(offset - s.nextOffset) <= ReadPattern.slack {
                s.streak += 1
            } else {
                s.streak /= 2
            }
            s.nextOffset = max(end, s.nextOffset)
            if abs(offset - s.nextOffset) > ReadPattern.slack { s.nextOffset = end }
            return s.streak < 2 ? 0 : min(ReadPattern.maxBlocks, 1 << min(s.streak - 1, 4))
        }
    }
}
