import BlockCache
import Foundation
import Locking
import Logging
import ObjectStore

/// One object being read: which of its blocks are on disk, and who waits for which download.
///
/// Shared by every open handle of the same object, so concurrent reads of a missing block share
/// one GET. Readers never block a thread on the network: they leave a callback and return.
final class OpenObject: Sendable {
    let bucket: String
    let key: String
    let size: Int
    let etag: String
    let blockSize: Int
    /// The index row and data file; nil when the cache could not take the object at open (a full
    /// disk): the object is then read from the network into memory only.
    private let recordID: Int64?
    private let dataFile: DataFile?
    private let context: ReadContext
    private let state: Locked<Blocks>

    enum BlockState {
        /// On disk with this checksum; `verified` once checked against it in this mount.
        case present(crc: UInt32, verified: Bool)
        /// Queued or under way; `claimed` once a download thread has taken it.
        case downloading(waiters: [BlockWaiter], claimed: Bool)
        /// The last download failed; until `until` (uptime ns) readers get this error at once. The
        /// kernel re-reads synchronously right after a failed readahead: without this, every retry
        /// count and deadline would double.
        case failed(FSError, until: UInt64)
        /// Fetched but not stored (the cache could not be written): served from memory.
        case unstored([UInt8])
    }

    struct Blocks {
        var table: [Int: BlockState] = [:]
        /// Blocks held in memory, oldest first: at most `OpenObject.unstoredLimit` of them.
        var unstored: [Int] = []
        /// Set once the source's copy changed under us: every read fails until the object is reopened.
        var stale: FSError?
    }

    static let failureMemoryNanoseconds: UInt64 = 2_000_000_000
    static let unstoredLimit = 24

    init(bucket: String, object: ListedObject, context: ReadContext) {
        self.bucket = bucket
        key = object.key
        size = object.size
        etag = object.etag
        blockSize = CacheIndex.blockSize
        self.context = context
        let lastBlock = object.size > 0 ? (object.size - 1) / CacheIndex.blockSize : -1
        var file: DataFile?
        var record: CachedObject?
        do {
            let opened = try context.index.directory.openDataFile(bucket: bucket, key: object.key)
            let found = try context.index.openObject(bucket: bucket, key: object.key, size: object.size, etag: object.etag)
            if found.invalidated {
                try opened.truncate()
                context.verified.remove(objectID: found.id)
            }
            file = opened
            record = found
        } catch {
            // Reads still work, from the network; the cache is just not used for this object.
            context.storeHealth.storeFailed(error, what: "\(bucket)/\(object.key)")
        }
        dataFile = file
        recordID = record?.id
        var blocks = Blocks()
        if let record {
            let verified = context.verified
            verified.distrustUnlessUnchanged(objectID: record.id, changeTime: file?.changeTime)
            // A damaged index could name blocks past the end: those are not this object's.
            for (block, crc) in record.blocks where (0...max(lastBlock, 0)).contains(block) && lastBlock >= 0 {
                blocks.table[block] = .present(crc: crc, verified: verified.contains(objectID: record.id, block: block))
            }
        }
        state = Locked(blocks)
    }

    /// True once the source's copy changed: the next open must make a new object.
    var isStale: Bool { state.withLock { $0.stale != nil } }

    /// Reads `length` bytes at `offset`, fetching missing blocks; `reply` may run on a download thread.
    func read(offset: Int, length: Int, isRetry: Bool = false, reply: @escaping @Sendable (Result<ReadData, FSError>) -> Void) {
        guard offset >= 0, length >= 0 else { return reply(.failure(.invalidArgument("negative offset or length"))) }
        guard offset < size, length > 0 else { return reply(.success(.bytes([]))) }
        let end = offset + min(length, size - offset)   // no overflow: both terms ≤ size
        let wanted = (offset / blockSize)...((end - 1) / blockSize)
        ensure(wanted) { [self] error, downloaded in
            if let error { return reply(.failure(error)) }
            // All blocks on disk and the file long enough: let the kernel take the bytes from it.
            let onDisk = state.withLock { s in wanted.allSatisfy { if case .present = s.table[$0] { true } else { false } } }
            if onDisk, let dataFile, dataFile.length >= end, let lease = try? dataFile.lease() {
                context.statistics.recordRead(bucket: bucket, key: key, bytes: end - offset, fromCache: !downloaded)
                return reply(.success(.fileRange(descriptor: lease.descriptor, offset: offset, length: end - offset, owner: lease)))
            }
            switch assemble(offset: offset, end: end, wanted: wanted) {
            case .success(let bytes):
                context.statistics.recordRead(bucket: bucket, key: key, bytes: bytes.count, fromCache: !downloaded)
                reply(.success(.bytes(bytes)))
            case .failure(let problem):
                if isRetry { return reply(.failure(problem)) }
                read(offset: offset, length: length, isRetry: true, reply: reply)
            }
        }
    }

    /// The bytes of `offset..<end` from the data file and from blocks held in memory. A block that
    /// went missing meanwhile is forgotten, so a second try fetches it again.
    private func assemble(offset: Int, end: Int, wanted: ClosedRange<Int>) -> Result<[UInt8], FSError> {
        var bytes = [UInt8](repeating: 0, count: end - offset)
        for block in wanted {
            let range = byteRange(of: block).clamped(to: offset..<end)
            let held: [UInt8]? = state.withLock { s in
                if case .unstored(let data) = s.table[block] { return data }
                return nil
            }
            let blockStart = block * blockSize
            if let held {
                bytes.withUnsafeMutableBytes { out in
                    held.withUnsafeBytes { src in
                        UnsafeMutableRawBufferPointer(rebasing: out[(range.lowerBound - offset)..<(range.upperBound - offset)])
                            .copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(range.lowerBound - blockStart)..<(range.upperBound - blockStart)]))
                    }
                }
                continue
            }
            guard let dataFile else { return .failure(.io("\(bucket)/\(key) block \(block) left memory before it was read")) }
            do {
                let got = try bytes.withUnsafeMutableBytes { out in
                    try dataFile.read(into: UnsafeMutableRawBufferPointer(rebasing: out[(range.lowerBound - offset)..<(range.upperBound - offset)]),
                                      at: range.lowerBound)
                }
                if got < range.count {
                    // The data file lost bytes under us: forget the block and fetch it once more.
                    forget(block...block, reason: "data file shorter than recorded")
                    return .failure(.io("cache file \(dataFile.path) keeps losing bytes"))
                }
            } catch {
                forget(block...block, reason: "cache file unreadable: \(error)")
                return .failure(.io("cannot read the cache file \(dataFile.path): \(error)"))
            }
        }
        return .success(bytes)
    }

    /// Fetches every missing block in the background; `done` runs when all are in (or failed).
    func fetchAll(done: @escaping @Sendable () -> Void) {
        guard size > 0, dataFile != nil else { return done() }
        ensure(0...((size - 1) / blockSize), urgent: false) { _, _ in done() }
    }

    /// Makes every block in `wanted` available (on disk or in memory), then calls `done` with nil on
    /// success and whether anything had to be downloaded.
    private func ensure(_ wanted: ClosedRange<Int>, urgent: Bool = true, done: @escaping @Sendable (FSError?, Bool) -> Void) {
        if let dataFile, dataFile.changedByOthers() { distrustCheckedBlocks() }
        verifyFirstUse(wanted)
        var waited = false
        let waiter = BlockWaiter { error in done(error, true) }
        var toFetch: [Int] = []
        var recentFailures: [FSError] = []
        let now = DispatchTime.now().uptimeNanoseconds
        let stale = state.withLock { s -> FSError? in
            if let stale = s.stale { return stale }
            for block in wanted {
                switch s.table[block] {
                case .present, .unstored: continue
                case .failed(let error, let until) where now < until:
                    recentFailures.append(error)
                    continue
                case .failed:
                    s.table[block] = .downloading(waiters: [waiter], claimed: false)
                    toFetch.append(block)
                case .downloading(let waiters, let claimed):
                    s.table[block] = .downloading(waiters: waiters + [waiter], claimed: claimed)
                    // A prefetch still queued behind others: queue it again in front (first taker wins).
                    if !claimed { toFetch.append(block) }
                case nil:
                    s.table[block] = .downloading(waiters: [waiter], claimed: false)
                    toFetch.append(block)
                }
                waiter.expectOneMore()
                waited = true
            }
            return nil
        }
        if let stale { return done(stale, false) }
        if let error = recentFailures.first, !waited { return done(error, false) }
        guard waited else { return done(nil, false) }
        for error in recentFailures { waiter.expectOneMore(); waiter.blockFinished(error) }
        for block in toFetch { context.pool.submit(urgent: urgent) { [self] in download(block) } }
        waiter.armed()
    }

    /// Prepares up to `blocks` blocks from the one holding `offset`, with nobody waiting: a
    /// sequential reader will want them next. Missing blocks are downloaded; cached ones not yet
    /// checked in this mount are checksummed now, in parallel, instead of in the reader's way.
    /// Nothing is fetched ahead while the cache cannot store (memory would have to hold it).
    func prefetch(after offset: Int, blocks count: Int) {
        guard offset >= 0, offset < size, count > 0 else { return }
        let storing = dataFile != nil && context.storeHealth.mayStore
        let first = offset / blockSize
        let last = min((size - 1) / blockSize, first + min(count, 64) - 1)
        var toVerify: [Int] = []
        let toFetch = state.withLock { s in
            (first...last).filter { block in
                if case .present(_, false) = s.table[block] { toVerify.append(block) }
                guard storing, s.stale == nil, s.table[block] == nil else { return false }
                s.table[block] = .downloading(waiters: [], claimed: false)
                return true
            }
        }
        for block in toFetch { context.pool.submit(urgent: false) { [self] in download(block) } }
        for block in toVerify { context.pool.submit(urgent: false) { [self] in verifyFirstUse(block...block) } }
    }

    /// Someone else wrote to the data file while it was open: every block is checked again
    /// against its checksum before it is served (a damaged cache is repaired, never served).
    private func distrustCheckedBlocks() {
        let blocks = state.withLock { s -> [Int] in
            var marked: [Int] = []
            for (block, entry) in s.table {
                if case .present(let crc, true) = entry { s.table[block] = .present(crc: crc, verified: false); marked.append(block) }
            }
            return marked
        }
        if let recordID { for block in blocks { context.verified.remove(objectID: recordID, block: block) } }
        context.logger.warning("\(bucket)/\(key): its cache file was changed by someone else; checking its blocks again")
    }

    /// Checks blocks read for the first time in this mount against their recorded checksums.
    private func verifyFirstUse(_ wanted: ClosedRange<Int>) {
        guard let dataFile, let recordID else { return }
        let unverified = state.withLock { s in
            wanted.compactMap { block -> (Int, UInt32)? in
                if case .present(let crc, false) = s.table[block] { return (block, crc) }
                return nil
            }
        }
        for (block, crc) in unverified {
            let range = byteRange(of: block)
            var got = 0
            // Not zero-filled first: every byte checked is one pread just wrote.
            let buffer = [UInt8](unsafeUninitializedCapacity: range.count) { storage, count in
                got = (try? dataFile.read(into: UnsafeMutableRawBufferPointer(storage), at: range.lowerBound)) ?? 0
                count = got
            }
            let actual = buffer.withUnsafeBytes { blockChecksum($0) }
            if got == range.count && actual == crc {
                state.withLock { s in
                    if case .present(crc, false) = s.table[block] { s.table[block] = .present(crc: crc, verified: true) }
                }
                context.verified.insert(objectID: recordID, block: block)
                context.verified.noteChangeTime(objectID: recordID, changeTime: dataFile.changeTime)
            } else {
                forget(block...block, reason: got < range.count ? "cached block \(block) is missing bytes" : "cached block \(block) failed its checksum")
            }
        }
    }

    private func forget(_ range: ClosedRange<Int>, reason: String) {
        let dropped = state.withLock { s in
            range.filter { block in
                guard case .present = s.table[block] else { return false }
                s.table[block] = nil
                return true
            }
        }
        if let recordID {
            for block in dropped {
                do { try context.index.dropBlock(objectID: recordID, block: block) } catch {
                    context.logger.error("\(bucket)/\(key): could not drop block \(block) from the index: \(error)")
                }
                context.verified.remove(objectID: recordID, block: block)
            }
        }
        context.budget.dropped(bytes: dropped.reduce(0) { $0 + byteRange(of: $1).count })
        context.logger.warning("\(bucket)/\(key): \(reason); fetching it again")
        context.statistics.recordRepair("repaired \(bucket)/\(key): \(reason)")
    }

    private func download(_ block: Int) {
        // In use until written and recorded: eviction must not delete the file or row under us.
        guard context.openObjects.downloadStarted(self) else { return }
        defer { context.openObjects.downloadEnded(self) }
        let mine = state.withLock { s -> Bool in
            guard case .downloading(let waiters, false) = s.table[block] else { return false }
            s.table[block] = .downloading(waiters: waiters, claimed: true)
            return true
        }
        guard mine else { return }
        let range = byteRange(of: block)
        var buffer = [UInt8](repeating: 0, count: range.count)
        var failure: FSError?
        var changed = false
        do {
            let statistics = context.statistics
            let transfer = statistics.beginTransfer(bucket: bucket, key: key, objectSize: size, bytes: range.count)
            defer { statistics.endTransfer(transfer) }
            try buffer.withUnsafeMutableBytes { target in
                try context.client.fetch(bucket: bucket, key: key, objectSize: size, etag: etag, range: range, into: target) { bytes in
                    statistics.transferProgress(transfer, bytes: bytes)
                }
            }
        } catch let error as FetchError {
            failure = FSError(error)
            changed = error.category == .changed
            context.logger.error("\(bucket)/\(key) block \(block): \(error)", metadata: ["category": "\(error.category.rawValue)"])
        } catch {
            failure = .io("block \(block) of \(key): \(error)")
        }
        if changed { return sourceChanged(failure!) }
        var outcome = StoreOutcome.unstored
        if failure == nil { outcome = store(block, buffer) }
        let waiters = state.withLock { s -> [BlockWaiter] in
            guard case .downloading(let waiters, _) = s.table[block] else { return [] }
            if let failure {
                s.table[block] = .failed(failure, until: DispatchTime.now().uptimeNanoseconds + OpenObject.failureMemoryNanoseconds)
            } else {
                switch outcome {
                case .stored(let crc): s.table[block] = .present(crc: crc, verified: true)
                case .unstored, .objectGone: hold(block, buffer, in: &s)
                }
            }
            return waiters
        }
        if failure == nil {
            context.diagnostics.downloadSucceeded()
        } else {
            context.diagnostics.downloadFailed()
        }
        for waiter in waiters { waiter.blockFinished(failure) }
    }

    private enum StoreOutcome { case stored(crc: UInt32), unstored, objectGone }

    /// Writes a block, checksums it and only then records it: a crash in between just refetches it.
    /// A cache that cannot be written (a full disk) costs nothing but the caching.
    private func store(_ block: Int, _ bytes: [UInt8]) -> StoreOutcome {
        guard let dataFile, let recordID, context.storeHealth.mayStore, !isStale else { return .unstored }
        let range = byteRange(of: block)
        do {
            let crc = try bytes.withUnsafeBytes { raw in
                try dataFile.write(raw, at: range.lowerBound)
                return blockChecksum(raw)
            }
            try context.index.recordBlock(objectID: recordID, block: block, crc: crc, length: range.count)
            context.storeHealth.storeSucceeded()
            context.verified.insert(objectID: recordID, block: block)
            context.verified.noteChangeTime(objectID: recordID, changeTime: dataFile.changeTime)
            context.budget.stored(bytes: range.count)
            return .stored(crc: crc)
        } catch let error as SQLiteError where error.code == 19 /* SQLITE_CONSTRAINT */ {
            // The object's row is gone (evicted): should not happen while it is in use; keep nothing.
            context.logger.warning("\(bucket)/\(key) block \(block): the object left the cache during its download")
            return .objectGone
        } catch {
            context.storeHealth.storeFailed(error, what: "block \(block) of \(bucket)/\(key)")
            return .unstored
        }
    }

    /// Keeps a block that could not be stored in memory for the readers, within `unstoredLimit`.
    private func hold(_ block: Int, _ bytes: [UInt8], in s: inout Blocks) {
        s.table[block] = .unstored(bytes)
        s.unstored.append(block)
        while s.unstored.count > OpenObject.unstoredLimit {
            let oldest = s.unstored.removeFirst()
            if case .unstored = s.table[oldest] { s.table[oldest] = nil }
        }
    }

    /// The source now holds another version: drop everything cached of this one and the listing
    /// that named it; this object fails every read from now on (a reopen lists again).
    private func sourceChanged(_ error: FSError) {
        let waiters = state.withLock { s -> [BlockWaiter] in
            s.stale = error
            var waiting: [BlockWaiter] = []
            for (block, entry) in s.table {
                if case .downloading(let w, _) = entry { waiting += w }
                s.table[block] = nil
            }
            s.unstored = []
            return waiting
        }
        if let recordID {
            let bytes = (try? context.index.blocks(objectID: recordID).reduce(0) { $0 + max(0, $1.length ?? 0) }) ?? 0
            do { try context.index.removeObject(id: recordID) } catch {
                context.logger.error("\(bucket)/\(key): could not drop the changed object from the index: \(error)")
            }
            context.verified.remove(objectID: recordID)
            context.budget.dropped(bytes: bytes)
        }
        let folder = key.lastIndex(of: "/").map { String(key[...$0]) } ?? ""
        context.listings.forget(bucket: bucket, prefix: folder)
        context.logger.warning("\(bucket)/\(key) changed at the source while being read: its cached blocks and listing were dropped")
        context.statistics.noteEvent("\(bucket)/\(key) changed at the source; cached copy dropped")
        context.diagnostics.downloadFailed()
        for waiter in waiters { waiter.blockFinished(error) }
        context.changes.objectChanged(bucket: bucket, key: key)
    }

    private func byteRange(of block: Int) -> Range<Int> {
        (block * blockSize)..<min(size, (block + 1) * blockSize)
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
                case .downloading(let waiters, _) where waiters.isEmpty: summary.ahead += bytes
                case .downloading: summary.waited += bytes
                case .failed: break
                }
            }
            return summary
        }
    }
}

/// Calls its completion once every block it waits for has finished (or one failed).
final class BlockWaiter: Sendable {
    private struct State { var pending = 1; var error: FSError? }
    private let state = Locked(State())
    private let completion: @Sendable (FSError?) -> Void

    init(_ completion: @escaping @Sendable (FSError?) -> Void) { self.completion = completion }

    func expectOneMore() { state.withLock { $0.pending += 1 } }
    /// Registration is over: the extra count taken at creation is released.
    func armed() { blockFinished(nil) }

    func blockFinished(_ error: FSError?) {
        let finished = state.withLock { s -> (Bool, FSError?) in
            if s.error == nil { s.error = error }
            s.pending -= 1
            return (s.pending == 0, s.error)
        }
        if finished.0 { completion(finished.1) }
    }
}
