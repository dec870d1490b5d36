import Foundation
import Locking

/// One GET of a run of consecutive blocks of an object.
///
/// The bytes land in a buffer in order; a reader waiting for part of the run is answered as soon
/// as that part has arrived, not when the whole run is in, so the first byte of a cold read costs
/// one round trip however large the request. The buffer is allocated when the GET starts (a queued
/// request holds no memory) and freed with the last reference (a reader copying from it holds one).
final class RangeFetch: @unchecked Sendable {
    /// Blocks this request was made for. When it starts, it fetches only the span of those still
    /// assigned to it (a reader may have taken some into a request of its own meanwhile).
    let blocks: ClosedRange<Int>
    let priority: DownloadPool.Priority

    private struct State {
        var claimed = false
        /// Object bytes `range`, and where they go; set when the GET starts.
        var range: Range<Int>?
        var buffer: UnsafeMutableRawBufferPointer?
        /// Bytes of `range` in the buffer, counted from its start.
        var arrived = 0
        /// Object offset up to which this request's bytes are in the data file (written, maybe not
        /// yet recorded): readers of them are answered by splice from the file, without a copy.
        var writtenUpTo = 0
        var outcome: Outcome?
        var waiters: [(until: Int, done: @Sendable (FSError?) -> Void)] = []
    }
    enum Outcome { case complete, failed(FSError) }
    private let state = Locked(State())

    init(blocks: ClosedRange<Int>, priority: DownloadPool.Priority) {
        self.blocks = blocks
        self.priority = priority
    }

    deinit {
        state.withLock { $0.buffer?.deallocate() }
    }

    /// True for the one caller that gets to run this request (it may be queued twice: once at its
    /// own priority, once boosted for a reader).
    func claim() -> Bool {
        state.withLock { s in
            guard !s.claimed else { return false }
            s.claimed = true
            return true
        }
    }

    var isClaimed: Bool { state.withLock { $0.claimed } }

    /// Allocates the buffer for `range` (object bytes); returns it for the transfer to fill.
    func start(range: Range<Int>) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, range.count), alignment: 16)
        state.withLock { s in
            s.range = range
            s.buffer = buffer
        }
        return UnsafeMutableRawBufferPointer(rebasing: buffer[0..<range.count])
    }

    /// Calls `done` once object bytes up to `end` have arrived (nil), or the request failed short
    /// of them. A request that never started (its object closed) fails nobody: nobody waits then.
    func wait(until end: Int, _ done: @escaping @Sendable (FSError?) -> Void) {
        let now: FSError?? = state.withLock { s in
            if let range = s.range, range.lowerBound + s.arrived >= end { return .some(nil) }
            switch s.outcome {
            case .failed(let error): return .some(error)
            case .complete: return .some(nil)   // a trimmed request: the rest is in the table
            case nil:
                s.waiters.append((end, done))
                return nil
            }
        }
        if let now { done(now) }
    }

    /// The transfer reports `count` bytes in the buffer: wake readers whose part is in.
    func arrived(_ count: Int) {
        let ready = state.withLock { s -> [@Sendable (FSError?) -> Void] in
            s.arrived = count
            guard let range = s.range else { return [] }
            let reached = range.lowerBound + count
            var ready: [@Sendable (FSError?) -> Void] = []
            s.waiters.removeAll { waiter in
                guard waiter.until <= reached else { return false }
                ready.append(waiter.done)
                return true
            }
            return ready
        }
        for done in ready { done(nil) }
    }

    /// The request is over: everyone still waiting gets `error` (nil: success).
    func finish(_ error: FSError?) {
        let waiters = state.withLock { s -> [@Sendable (FSError?) -> Void] in
            guard s.outcome == nil else { return [] }   // the first word on it stands
            s.outcome = error.map { .failed($0) } ?? .complete
            defer { s.waiters = [] }
            return s.waiters.map(\.done)
        }
        for done in waiters { done(error) }
    }

    /// Copies object bytes `wanted` into `target` if they have arrived; false otherwise.
    func copy(_ wanted: Range<Int>, into target: UnsafeMutableRawBufferPointer) -> Bool {
        // Bytes below `arrived` are final: the transfer only writes past them.
        withArrived(wanted) { target.copyMemory(from: $0) } != nil
    }

    /// The arrived bytes of object range `wanted` (within what arrived), for storing.
    func withArrived<T>(_ wanted: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T? {
        let source: UnsafeMutableRawBufferPointer? = state.withLock { s in
            guard let range = s.range, let buffer = s.buffer, wanted.lowerBound >= range.lowerBound,
                  wanted.upperBound <= range.lowerBound + s.arrived else { return nil }
            return UnsafeMutableRawBufferPointer(rebasing: buffer[(wanted.lowerBound - range.lowerBound)..<(wanted.upperBound - range.lowerBound)])
        }
        guard let source else { return nil }
        return try body(UnsafeRawBufferPointer(source))
    }

    func written(upTo end: Int) { state.withLock { $0.writtenUpTo = max($0.writtenUpTo, end) } }

    /// Whether object bytes `range` are in the data file, written by this request.
    func hasWritten(_ range: Range<Int>) -> Bool {
        state.withLock { s in s.range.map { $0.lowerBound <= range.lowerBound } ?? false && s.writtenUpTo >= range.upperBound }
    }

    /// Whether object bytes up to `end` are already in the buffer.
    func hasArrived(until end: Int) -> Bool {
        state.withLock { s in s.range.map { $0.lowerBound + s.arrived >= end } ?? false }
    }

    /// Whether anyone waits for this request now (for "In progress": waited vs ahead).
    var hasWaiters: Bool { state.withLock { !$0.waiters.isEmpty } }
}
