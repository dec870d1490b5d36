import Locking

/// Per open handle: is the reader going through the file in order, and how far ahead to fetch.
///
/// Counts the bytes of the current sequential run: reads that start near where the previous one
/// ended (the kernel's readahead may reorder them a little) extend it; a jump elsewhere starts a new
/// run. Below `Policies.sequentialThreshold` nothing is fetched ahead, so the scattered small reads
/// of an HDF5 header never trigger readahead; above it the window grows with the run.
final class ReadPattern: Sendable {
    private struct State { var nextOffset = 0; var runBytes = 0 }
    private let state = Locked(State())
    private let policies: Policies

    init(policies: Policies) { self.policies = policies }

    /// How far ahead to fetch, and in requests of what size.
    struct Readahead: Equatable {
        var window: Int
        var requestBytes: Int
    }

    /// Records a read of `offset..<end`; returns the readahead it calls for, if any.
    func record(offset: Int, end: Int) -> Readahead? {
        let run = state.withLock { s -> Int in
            if abs(offset - s.nextOffset) <= policies.sequentialSlack {
                s.runBytes += end - offset
                s.nextOffset = max(end, s.nextOffset)
            } else {
                s.runBytes = end - offset
                s.nextOffset = end
            }
            return s.runBytes
        }
        return ReadPattern.readahead(forRun: run, policies)
    }

    /// Whether the last reads form a sequential run long enough to read ahead.
    var isSequential: Bool { state.withLock { $0.runBytes } >= policies.sequentialThreshold }

    static func readahead(forRun run: Int, _ p: Policies) -> Readahead? {
        guard run >= p.sequentialThreshold else { return nil }
        let request = min(p.maxRequestBytes, max(p.firstReadaheadRequest, run / 4))
        let window = min(p.maxReadahead, max(request, run.multipliedReportingOverflow(by: p.readaheadGrowth).partialValue))
        return Readahead(window: window, requestBytes: request)
    }
}

/// Which block runs to request: pure decisions over "is this block missing", so they are tested
/// without a network.
enum FetchPlanner {
    /// The missing blocks a read needs, as runs of consecutive blocks, each at most `maxBlocks`.
    static func runs(_ blocks: [Int], maxBlocks: Int) -> [ClosedRange<Int>] {
        var runs: [ClosedRange<Int>] = []
        for block in blocks.sorted() {
            if let last = runs.last, last.upperBound + 1 == block, last.count < maxBlocks {
                runs[runs.count - 1] = last.lowerBound...block
            } else {
                runs.append(block...block)
            }
        }
        return runs
    }

    /// Readahead requests for blocks `window` (those `isMissing` says are neither present nor
    /// requested), in pieces of `requestBlocks`. A missing stretch shorter than a request waits
    /// until the window has slid far enough to make it one, unless it touches `urgentBlock` (the
    /// reader is about to need it) or the object's last block: the window slides a little with
    /// every read, and requesting each sliver would turn one 8 MiB GET into sixty small ones.
    static func readahead(_ window: ClosedRange<Int>, requestBlocks: Int, lastBlock: Int, urgentBlock: Int,
                          isMissing: (Int) -> Bool) -> [ClosedRange<Int>] {
        readaheadPlan(window, requestBlocks: requestBlocks, lastBlock: lastBlock, urgentBlock: urgentBlock, isMissing: isMissing).runs
    }

    /// `readahead`'s runs, and the last block up to which the window is covered (present,
    /// requested, or in those runs): the next read's readahead can look from there, so a window
    /// already on disk is not scanned again on every read (4,096 table lookups for 64 MiB).
    static func readaheadPlan(_ window: ClosedRange<Int>, requestBlocks: Int, lastBlock: Int, urgentBlock: Int,
                              isMissing: (Int) -> Bool) -> (runs: [ClosedRange<Int>], coveredThrough: Int) {
        var planned: [ClosedRange<Int>] = []
        var coveredThrough = window.upperBound
        var block = window.lowerBound
        while block <= window.upperBound {
            guard isMissing(block) else { block += 1; continue }
            var end = block
            while end < window.upperBound, end - block + 1 < requestBlocks, isMissing(end + 1) { end += 1 }
            // A short stretch with present blocks after it will never grow: it goes now too.
            let full = end - block + 1 >= requestBlocks
            if full || block <= urgentBlock || end == lastBlock || end < window.upperBound {
                planned.append(block...end)
            } else {
                coveredThrough = block - 1   // the tail sliver left to grow
            }
            block = end + 1
        }
        return (planned, coveredThrough)
    }
}
