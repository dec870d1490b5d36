import BlockCache
import Foundation
import Locking
import Logging
import ObjectStore

/// One object being read: which of its blocks are on disk, which are on their way in which
/// request, and what to request next.
///
/// Shared by every open handle of the same object, so concurrent reads of a missing block share
/// one GET. Readers never block a thread on the network: they leave a callback and return. The
/// storing side (writing, checksumming, recording) is in `OpenObject+Store.swift`.
final class OpenObject: Sendable {
    let bucket: String
    let key: String
    let size: Int
    let etag: String
    let policies: Policies
    var blockSize: Int { policies.blockSize }
    /// The object in the cache's store; nil when the cache could not take the object at open (a
    /// full disk): the object is then read from the network into memory only.
    let stored: (any StoredObject)?
    /// The store's number for the object (what `VerifiedBlocks` remembers blocks by).
    var recordID: Int64? { stored?.id }
    let context: ReadContext
    let state: Locked<Blocks>
    /// Seconds since the epoch: the last use of blocks present from an earlier mount.
    let openedAt = Date().timeIntervalSince1970

    enum BlockState {
        /// On disk with this checksum; `verified` once checked against it in this mount.
        case present(crc: UInt32, verified: Bool)
        /// Requested (queued or under way) in this request.
        case fetching(RangeFetch)
        /// The last download failed; until `until` (uptime ns) readers get this error at once.
        case failed(FSError, until: UInt64)
        /// Fetched but not stored (the cache could not be written): served from memory.
        case unstored([UInt8])
        /// Being evicted (its disk space freed, its row dropped): readers wait for that, then fetch it.
        case evicting
    }

    struct Blocks {
        var table: [Int: BlockState] = [:]
        /// Blocks held in memory, oldest first: at most `Policies.unstoredBytesPerObject` of them.
        var unstored: [Int] = []
        /// Set once the source's copy changed under us: every read fails until the object is reopened.
        var stale: FSError?
        /// Reads that had to fetch, away from any sequential run: enough of them and the rest of
        /// the object is fetched in the background.
        var scatteredMisses = 0
        var backgroundFill = false
        /// The last block readahead has requested: the next readahead looks from there, not over
        /// the whole 64 MiB window on every read (blocks before it that went missing again are
        /// fetched by the reader when it gets there).
        var readaheadFrontier = -1
        /// Blocks readers asked for (not readahead, not prefetch): what the next scan's reader
        /// will likely read too.
        var touched = Set<Int>()
        /// Blocks a reply is being served from right now (a splice the kernel has not taken yet, a
        /// copy, a check): eviction leaves them alone. Block → number of readers.
        var pins: [Int: Int] = [:]
        /// When each eviction extent (`Policies.evictionExtentBytes`) was last read or filled,
        /// seconds since the epoch; an extent never used in this mount counts from the open.
        var lastUse: [Int: Double] = [:]
        /// Reads that found a block being evicted: run again once it is gone.
        var afterEviction: [@Sendable () -> Void] = []

        mutating func pin(_ blocks: some Sequence<Int>) { for block in blocks { pins[block, default: 0] += 1 } }
        mutating func unpin(_ blocks: some Sequence<Int>) {
            for block in blocks {
                guard let count = pins[block] else { continue }
                pins[block] = count > 1 ? count - 1 : nil
            }
        }
    }

    var lastBlock: Int { size > 0 ? (size - 1) / blockSize : -1 }

    init(bucket: String, object: ListedObject, context: ReadContext) {
        self.bucket = bucket
        key = object.key
        size = object.size
        etag = object.etag
        policies = context.policies
        self.context = context
        let lastBlock = object.size > 0 ? (object.size - 1) / context.policies.blockSize : -1
        var opened: (any StoredObject)?
        do {
            opened = try context.store.open(bucket: bucket, key: object.key, size: object.size, etag: object.etag)
            if let opened, opened.invalidated {
                context.verified.remove(objectID: opened.id)
                context.budget.dropped(bytes: opened.invalidatedBytes)
            }
        } catch {
            // Reads still work, from the network; the cache is just not used for this object.
            context.storeHealth.storeFailed(error, what: "\(bucket)/\(object.key)")
        }
        stored = opened
        var blocks = Blocks()
        if let opened {
            let verified = context.verified
            verified.distrustUnlessUnchanged(objectID: opened.id, changeTime: opened.changeTime)
            // A damaged index could name blocks past the end: those are not this object's.
            for (block, crc) in opened.recorded where lastBlock >= 0 && (0...lastBlock).contains(block) {
                blocks.table[block] = .present(crc: crc, verified: verified.contains(objectID: opened.id, block: block))
            }
        }
        state = Locked(blocks)
    }

    /// True once the source's copy changed: the next open must make a new object.
    var isStale: Bool { state.withLock { $0.stale != nil } }

    /// Whether readahead may run: it needs the disk (memory would have to hold what it fetches).
    var mayFetchAhead: Bool { stored != nil && context.storeHealth.mayStore }

    func byteRange(of block: Int) -> Range<Int> {
        (block * blockSize)..<min(size, (block + 1) * blockSize)
    }

    func byteRange(of blocks: ClosedRange<Int>) -> Range<Int> {
        (blocks.lowerBound * blockSize)..<min(size, (blocks.upperBound + 1) * blockSize)
    }

    // MARK: Reading

    /// Reads `length` bytes at `offset`, fetching what is missing; `reply` may run on a download
    /// thread. `pattern` (the handle's) decides readahead; nil reads exactly what is asked.
    func read(offset: Int, length: Int, pattern: ReadPattern?, isRetry: Bool = false,
              reply: @escaping @Sendable (Result<ReadData, FSError>) -> Void) {
        guard offset >= 0, length >= 0 else { return reply(.failure(.invalidArgument("negative offset or length"))) }
        guard offset < size, length > 0 else { return reply(.success(.bytes([]))) }
        let end = offset + min(length, size - offset)   // no overflow: both terms ≤ size
        let wanted = (offset / blockSize)...((end - 1) / blockSize)
        let readahead = pattern?.record(offset: offset, end: end)
        if let stored, stored.changedByOthers() { distrustCheckedBlocks() }
        verifyFirstUse(wanted)
        let plan = planRead(wanted, offset: offset, readahead: readahead, sequential: pattern?.isSequential ?? false) { [self] in
            read(offset: offset, length: length, pattern: nil, isRetry: isRetry, reply: reply)
        }
        if let error = plan.error { return reply(.failure(error)) }
        if plan.deferred { return }
        plan.submit(self)
        // Bytes a request had already brought in count as served by goesfs, not downloaded for this read.
        let downloaded = plan.waits.contains { !$0.hasArrived(until: min(end, byteRange(of: $0.blocks).upperBound)) }
        let waiter = BlockWaiter { [self] error in
            if let error { return reply(.failure(error)) }
            deliver(offset: offset, end: end, wanted: wanted, from: plan.waits, downloaded: downloaded) { result in
                if case .failure = result, !isRetry {
                    return read(offset: offset, length: length, pattern: nil, isRetry: true, reply: reply)
                }
                reply(result)
            }
        }
        for fetch in plan.waits {
            waiter.expectOneMore()
            fetch.wait(until: min(end, byteRange(of: fetch.blocks).upperBound), waiter.finished)
        }
        waiter.armed()
    }

    /// What one read needs: requests to wait for (new or already under way) and new requests to send.
    struct ReadPlan {
        var waits: [RangeFetch] = []
        var newRequests: [RangeFetch] = []
        /// Queued requests of lower priority a reader now waits for: sent again at reader priority.
        var boosted: [RangeFetch] = []
        var error: FSError?
        /// A block is being evicted: the read runs again when it is gone.
        var deferred = false

        func submit(_ object: OpenObject) {
            for fetch in newRequests { object.send(fetch, at: fetch.priority) }
            for fetch in boosted { object.send(fetch, at: .reader) }
        }
    }

    private func planRead(_ wanted: ClosedRange<Int>, offset: Int, readahead: ReadPattern.Readahead?, sequential: Bool,
                          retry: @escaping @Sendable () -> Void) -> ReadPlan {
        let now = DispatchTime.now().uptimeNanoseconds
        let wallNow = Date().timeIntervalSince1970
        let storing = mayFetchAhead
        return state.withLock { s -> ReadPlan in
            var plan = ReadPlan()
            if let stale = s.stale { plan.error = stale; return plan }
            if wanted.contains(where: { if case .evicting = s.table[$0] { true } else { false } }) {
                s.afterEviction.append(retry)
                plan.deferred = true
                return plan
            }
            s.touched.formUnion(wanted)
            for extent in extents(of: wanted) { s.lastUse[extent] = wallNow }
            var missing: [Int] = []
            var recentFailure: FSError?
            for block in wanted {
                switch s.table[block] {
                case .present, .unstored, .evicting: continue
                case .failed(let error, let until) where now < until: recentFailure = recentFailure ?? error
                case .failed, nil: missing.append(block)
                case .fetching(let fetch):
                    if fetch.priority == .background && !fetch.isClaimed {
                        // A fill queued behind others: take this read's blocks into a request of its own.
                        missing.append(block)
                    } else if !plan.waits.contains(where: { $0 === fetch }) {
                        plan.waits.append(fetch)
                        if fetch.priority != .reader && !fetch.isClaimed { plan.boosted.append(fetch) }
                    }
                }
            }
            if let recentFailure { plan.error = recentFailure; return plan }
            // A cold open reads the header first: fetch the whole header region (a small object:
            // all of it) in that one request.
            if missing.first == 0, offset < policies.headBytes {
                let head = size <= policies.wholeObjectBytes ? size : policies.headBytes
                let headLast = min(lastBlock, policies.blocks(head) - 1)
                var block = (missing.last ?? 0) + 1
                while block <= headLast, OpenObject.isMissing(s.table[block], now: now) { missing.append(block); block += 1 }
            }
            let requests = planRuns(missing, priority: .reader, in: &s)
            plan.waits += requests
            plan.newRequests += requests
            if !missing.isEmpty && !sequential { s.scatteredMisses += 1 }
            guard storing else { return plan }
            if let readahead {
                let next = wanted.upperBound + 1
                // A frontier behind the reader or far ahead of this window (another reader) is not this run's.
                let frontier = s.readaheadFrontier
                let first = frontier >= next && frontier <= next + policies.blocks(policies.maxReadahead) ? frontier + 1 : next
                let last = min(lastBlock, (byteRange(of: wanted).upperBound + readahead.window - 1) / blockSize)
                if first <= last {
                    let ahead = FetchPlanner.readaheadPlan(first...last, requestBlocks: policies.blocks(readahead.requestBytes),
                                                           lastBlock: lastBlock, urgentBlock: next) { OpenObject.isMissing(s.table[$0], now: now) }
                    for run in ahead.runs {
                        let fetch = RangeFetch(blocks: run, priority: .readahead)
                        for block in run { s.table[block] = .fetching(fetch) }
                        plan.newRequests.append(fetch)
                    }
                    s.readaheadFrontier = max(s.readaheadFrontier, ahead.coveredThrough)
                }
            } else if !s.backgroundFill, s.scatteredMisses >= policies.backgroundFillAfterMisses, size >= policies.backgroundFillMinimumSize {
                s.backgroundFill = true
                plan.newRequests += planRuns((0...lastBlock).filter { OpenObject.isMissing(s.table[$0], now: now) }, priority: .background, in: &s)
            }
            return plan
        }
    }

    /// Requests for `missing` blocks in the largest requests allowed, assigned to them in the table.
    private func planRuns(_ missing: [Int], priority: DownloadPool.Priority, in s: inout Blocks) -> [RangeFetch] {
        FetchPlanner.runs(missing, maxBlocks: policies.blocks(policies.maxRequestBytes)).map { run in
            let fetch = RangeFetch(blocks: run, priority: priority)
            for block in run { s.table[block] = .fetching(fetch) }
            return fetch
        }
    }

    /// Neither present nor requested (a failure no longer remembered at `now`, uptime ns, counts as missing).
    static func isMissing(_ entry: BlockState?, now: UInt64) -> Bool {
        switch entry {
        case nil: return true
        case .failed(_, let until): return now >= until
        default: return false
        }
    }

    /// Answers a read whose requests have delivered its bytes: straight from the data file when
    /// every block is on disk (the kernel takes the bytes from it), else assembled from the
    /// requests' buffers, memory and the data file.
    private func deliver(offset: Int, end: Int, wanted: ClosedRange<Int>, from fetches: [RangeFetch], downloaded: Bool,
                         reply: (Result<ReadData, FSError>) -> Void) {
        // On disk: present, or written by the request being waited for (the common case for a
        // sequential reader behind its readahead): a splice then, not two copies through goesfs.
        // Pinned until the kernel has taken the bytes, so eviction cannot free them under the splice.
        let onDisk = stored != nil && state.withLock { s in
            let all = wanted.allSatisfy { block in
                switch s.table[block] {
                case .present: return true
                case .fetching(let fetch): return fetch.hasWritten(byteRange(of: block))
                default: return false
                }
            }
            if all { s.pin(wanted) }
            return all
        }
        if onDisk, let stored {
            let pin = PinnedReply(object: self, blocks: wanted)
            if stored.length >= end, let lease = try? stored.lease() {
                pin.lease = lease
                context.statistics.recordRead(bucket: bucket, key: key, bytes: end - offset, fromCache: !downloaded)
                return reply(.success(.fileRange(descriptor: lease.descriptor, offset: offset, length: end - offset, owner: pin)))
            }
        }
        switch assemble(offset: offset, end: end, wanted: wanted, fetches: fetches) {
        case .success(let bytes):
            context.statistics.recordRead(bucket: bucket, key: key, bytes: bytes.count, fromCache: !downloaded)
            reply(.success(.bytes(bytes)))
        case .failure(let problem):
            reply(.failure(problem))
        }
    }

    /// The bytes of `offset..<end`. A block that went missing meanwhile is forgotten, so a second
    /// try fetches it again.
    private func assemble(offset: Int, end: Int, wanted: ClosedRange<Int>, fetches: [RangeFetch]) -> Result<[UInt8], FSError> {
        state.withLock { $0.pin(wanted) }
        defer { state.withLock { $0.unpin(wanted) } }
        // Every byte is written below (or the read fails): no zero-fill first.
        var bytes = [UInt8](unsafeUninitializedCapacity: end - offset) { _, count in count = end - offset }
        var failure: FSError?
        bytes.withUnsafeMutableBytes { out in
            var block = wanted.lowerBound
            while block <= wanted.upperBound, failure == nil {
                let range = byteRange(of: block).clamped(to: offset..<end)
                let target = UnsafeMutableRawBufferPointer(rebasing: out[(range.lowerBound - offset)..<(range.upperBound - offset)])
                // From a request's buffer: the run of this read's blocks it holds, in one copy.
                if let fetch = fetches.first(where: { $0.blocks.contains(block) }) {
                    let run = block...min(wanted.upperBound, fetch.blocks.upperBound)
                    let runRange = byteRange(of: run).clamped(to: offset..<end)
                    let runTarget = UnsafeMutableRawBufferPointer(rebasing: out[(runRange.lowerBound - offset)..<(runRange.upperBound - offset)])
                    if fetch.copy(runRange, into: runTarget) { block = run.upperBound + 1; continue }
                }
                let entry = state.withLock { $0.table[block] }
                switch entry {
                case .unstored(let held):
                    let start = block * blockSize
                    held.withUnsafeBytes { src in
                        target.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(range.lowerBound - start)..<(range.upperBound - start)]))
                    }
                case .present:
                    failure = readFromDisk(block, range, into: target)
                case .fetching(let fetch) where fetch.copy(range, into: target):
                    break
                default:
                    failure = .io("\(bucket)/\(key) block \(block) left the cache before it was read")
                }
                block += 1
            }
        }
        if let failure { return .failure(failure) }
        return .success(bytes)
    }

    private func readFromDisk(_ block: Int, _ range: Range<Int>, into target: UnsafeMutableRawBufferPointer) -> FSError? {
        guard let stored else { return .io("\(bucket)/\(key) block \(block) has no cache file") }
        do {
            let got = try stored.read(into: target, at: range.lowerBound)
            if got < range.count {
                // The data file lost bytes under us: forget the block and fetch it once more.
                forget(block...block, reason: "data file shorter than recorded")
                return .io("cache file \(stored.path) keeps losing bytes")
            }
            return nil
        } catch {
            forget(block...block, reason: "cache file unreadable: \(error)")
            return .io("cannot read the cache file \(stored.path): \(error)")
        }
    }

    // MARK: Whole-object fetches

    /// Fetches every missing block in the background; `done` runs when all are in (or failed).
    func fetchAll(done: @escaping @Sendable () -> Void) {
        fetch([0..<size], done: done)
    }

    /// Fetches the missing blocks holding `ranges` (object bytes) in the background, in the
    /// largest requests allowed; `done` runs when all are in (or failed).
    func fetch(_ ranges: [Range<Int>], done: @escaping @Sendable () -> Void) {
        guard size > 0, stored != nil else { return done() }
        var blocks = Set<Int>()
        for range in ranges {
            let clamped = range.clamped(to: 0..<size)
            guard !clamped.isEmpty else { continue }
            blocks.formUnion((clamped.lowerBound / blockSize)...((clamped.upperBound - 1) / blockSize))
        }
        let now = DispatchTime.now().uptimeNanoseconds
        let fetches = state.withLock { s -> [RangeFetch] in
            guard s.stale == nil else { return [] }
            var all: [RangeFetch] = []
            for block in blocks { if case .fetching(let f) = s.table[block], !all.contains(where: { $0 === f }) { all.append(f) } }
            return all + planRuns(blocks.filter { OpenObject.isMissing(s.table[$0], now: now) }, priority: .background, in: &s)
        }
        let waiter = BlockWaiter { _ in done() }
        for fetch in fetches where fetch.priority == .background && !fetch.isClaimed { send(fetch, at: .background) }
        for fetch in fetches {
            waiter.expectOneMore()
            fetch.wait(until: byteRange(of: fetch.blocks).upperBound, waiter.finished)
        }
        waiter.armed()
    }

    /// The byte ranges readers have read, merged and in order.
    func touchedRanges() -> [Range<Int>] {
        let blocks = state.withLock { $0.touched }.sorted()
        return FetchPlanner.runs(blocks, maxBlocks: .max).map { byteRange(of: $0) }
    }

    /// Queues `fetch`. A request may be queued twice (its own priority and boosted for a reader):
    /// the entry that does not run it holds it weakly, so a finished request's buffer is freed at
    /// once, not when a busy pool gets to that entry (64 readers at once held 190 MiB so).
    func send(_ fetch: RangeFetch, at priority: DownloadPool.Priority) {
        context.pool.submit(priority) { [self, weak fetch] in
            if let fetch { download(fetch) }
        }
    }
}

extension OpenObject {
    /// Bytes of the blocks present, and of those queued or downloading (for "In progress").
    func blockSummary() -> BlockSummary {
        state.withLock { s in
            var summary = BlockSummary()
            for (block, entry) in s.table {
                let bytes = byteRange(of: block).count
                switch entry {
                case .present, .unstored: summary.present += bytes
                case .evicting: break
                case .fetching(let fetch) where fetch.priority == .reader || fetch.hasWaiters: summary.waited += bytes
                case .fetching: summary.ahead += bytes
                case .failed: break
                }
            }
            return summary
        }
    }
}

/// The blocks a splice reply is served from, pinned (safe from eviction) until the kernel has
/// taken its bytes and released the reply; it also holds the data file's descriptor open.
final class PinnedReply: @unchecked Sendable {
    private let object: OpenObject
    private let blocks: ClosedRange<Int>
    /// Set once before the reply is sent, never after.
    var lease: DataFile.Lease?

    init(object: OpenObject, blocks: ClosedRange<Int>) { self.object = object; self.blocks = blocks }
    deinit { object.state.withLock { [blocks] in $0.unpin(blocks) } }
}

/// Calls its completion once every request it waits for has delivered (or one failed).
final class BlockWaiter: Sendable {
    private struct State { var pending = 1; var error: FSError? }
    private let state = Locked(State())
    private let completion: @Sendable (FSError?) -> Void

    init(_ completion: @escaping @Sendable (FSError?) -> Void) { self.completion = completion }

    func expectOneMore() { state.withLock { $0.pending += 1 } }
    /// Registration is over: the extra count taken at creation is released.
    func armed() { finished(nil) }

    @Sendable func finished(_ error: FSError?) {
        let finished = state.withLock { s -> (Bool, FSError?) in
            if s.error == nil { s.error = error }
            s.pending -= 1
            return (s.pending == 0, s.error)
        }
        if finished.0 { completion(finished.1) }
    }
}
