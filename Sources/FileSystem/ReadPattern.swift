import BlockCache
import Locking

/// Per open handle: is the reader going through the file in order, and how far ahead to fetch.
///
/// Counts the bytes of the current sequential run: reads that start near where the previous one
/// ended (the kernel's readahead may reorder them a little) extend it; a jump elsewhere starts a new
/// run. The window is one block per MiB of run, from 2 up to `maxBlocks`, so the scattered small
/// reads of an HDF5 header never trigger readahead, while a streaming reader soon gets 16 blocks.
final class ReadPattern: Sendable {
    static let maxBlocks = 16
    /// How far from the expected offset a read still counts as sequential.
    static let slack = 2 << 20

    private struct State { var nextOffset = 0; var runBytes = 0 }
    private let state = Locked(State())

    /// Records a read of `offset..<end`; returns how many blocks after it to prefetch.
    func record(offset: Int, end: Int) -> Int {
        state.withLock { s in
            if abs(offset - s.nextOffset) <= ReadPattern.slack {
                s.runBytes += end - offset
                s.nextOffset = max(end, s.nextOffset)
            } else {
                s.runBytes = end - offset
                s.nextOffset = end
            }
            let blocks = s.runBytes / CacheIndex.blockSize
            return blocks < 2 ? 0 : min(ReadPattern.maxBlocks, blocks)
        }
    }
}
