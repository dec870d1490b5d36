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
    let blockSize: Int
    private let recordID: Int64
    private let dataFile: DataFile
    private let context: ReadContext
    private let blocks: Locked<[Int: BlockState]>

    enum BlockState {
        /// On disk with this checksum; `verified` once checked against it in this mount.
        case present(crc: UInt32, verified: Bool)
        /// Queued or under way; `claimed` once a download thread has taken it.
        case downloading(waiters: [BlockWaiter], claimed: Bool)
        /// The last download failed; until `until` (uptime ns) readers get this error at once. The
        /// kernel re-reads synchronously right after a failed readahead: without this, every retry
        /// count and deadline would double.
        case failed(FSError, until: UInt64)
    }

    static let failureMemoryNanoseconds: UInt64 = 2_000_000_000

    init(bucket: String, object: ListedObject, context: ReadContext) throws {
        self.bucket = bucket
        key = object.key
        size = object.size
        blockSize = CacheIndex.blockSize
        self.context = context
        dataFile = try context.index.directory.openDataFile(bucket: bucket, key: object.key)
        let record = try context.index.openObject(bucket: bucket, key: object.key, size: object.size, etag: object.etag)
        if record.invalidated {
            try dataFile.truncate()
            context.verified.remove(objectID: record.id)
        }
        recordID = record.id
        let verified = context.verified
        blocks = Locked(Dictionary(uniqueKeysWithValues: record.blocks.map { block, crc in
            (block, BlockState.present(crc: crc, verified: verified.contains(objectID: record.id, block: block)))
        }))
    }

    /// Reads `length` bytes at `offset`, fetching missing blocks; `reply` may run on a download thread.
    func read(offset: Int, length: Int, isRetry: Bool = false, reply: @escaping @Sendable (Result<ReadData, FSError>) -> Void) {
        let end = min(size, offset + length)
        guard offset < end else { return reply(.success(.bytes([]))) }
        let wanted = (offset / blockSize)...((end - 1) / blockSize)
        ensure(wanted) { [self] error, downloaded in
            if let error { return reply(.failure(error)) }
            // All blocks verified and the file long enough: let the kernel take the bytes from it.
            if dataFile.length >= end {
                context.statistics.recordRead(bytes: end - offset, fromCache: !downloaded)
                return reply(.success(.fileRange(descriptor: dataFile.descriptor, offset: offset, length: end - offset, owner: self)))
            }
            var bytes = [UInt8](repeating: 0, count: end - offset)
            do {
                let got = try bytes.withUnsafeMutableBytes { try dataFile.read(into: $0, at: offset) }
                guard got == bytes.count else {
                    // The data file lost bytes under us: forget those blocks and fetch them once more.
                    forget(wanted, reason: "data file shorter than recorded")
                    if isRetry { return reply(.failure(.io("cache file \(dataFile.path) keeps losing bytes"))) }
                    return read(offset: offset, length: length, isRetry: true, reply: reply)
                }
                context.statistics.recordRead(bytes: bytes.count, fromCache: !downloaded)
                reply(.success(.bytes(bytes)))
            } catch {
                reply(.failure(.io("cannot read the cache file \(dataFile.path): \(error)")))
            }
        }
    }

    /// Fetches every missing block in the background; `done` runs when all are in (or failed).
    func fetchAll(done: @escaping @Sendable () -> Void) {
        guard size > 0 else { return done() }
        ensure(0...((size - 1) / blockSize), urgent: false) { _, _ in done() }
    }

    /// Makes every block in `wanted` present on disk, then calls `done` with nil on success and
    /// whether anything had to be downloaded.
    private func ensure(_ wanted: ClosedRange<Int>, urgent: Bool = true, done: @escaping @Sendable (FSError?, Bool) -> Void) {
        verifyFirstUse(wanted)
        var waited = false
        let waiter = BlockWaiter { error in done(error, true) }
        var toFetch: [Int] = []
        var recentFailures: [FSError] = []
        let now = DispatchTime.now().uptimeNanoseconds
        blocks.withLock { table in
            for block in wanted {
                switch table[block] {
                case .present: continue
                case .failed(let error, let until) where now < until:
                    recentFailures.append(error)
                    continue
                case .failed:
                    table[block] = .downloading(waiters: [waiter], claimed: false)
                    toFetch.append(block)
                case .downloading(let waiters, let claimed):
                    table[block] = .downloading(waiters: waiters + [waiter], claimed: claimed)
                    // A prefetch still queued behind others: queue it again in front (first taker wins).
                    if !claimed { toFetch.append(block) }
                case nil:
                    table[block] = .downloading(waiters: [waiter], claimed: false)
                    toFetch.append(block)
                }
                waiter.expectOneMore()
                waited = true
            }
        }
        if let error = recentFailures.first, !waited { return done(error, false) }
        guard waited else { return done(nil, false) }
        for error in recentFailures { waiter.expectOneMore(); waiter.blockFinished(error) }
        for block in toFetch { context.pool.submit(urgent: urgent) { [self] in download(block) } }
        waiter.armed()
    }

    /// Prepares up to `blocks` blocks from the one holding `offset`, with nobody waiting: a
    /// sequential reader will want them next. Missing blocks are downloaded; cached ones not yet
    /// checked in this mount are checksummed now, in parallel, instead of in the reader's way.
    func prefetch(after offset: Int, blocks count: Int) {
        guard offset < size else { return }
        let first = offset / blockSize
        let last = min((size - 1) / blockSize, first + count - 1)
        var toVerify: [Int] = []
        let toFetch = blocks.withLock { table in
            (first...last).filter { block in
                if case .present(_, false) = table[block] { toVerify.append(block) }
                guard table[block] == nil else { return false }
                table[block] = .downloading(waiters: [], claimed: false)
                return true
            }
        }
        for block in toFetch { context.pool.submit(urgent: false) { [self] in download(block) } }
        for block in toVerify { context.pool.submit(urgent: false) { [self] in verifyFirstUse(block...block) } }
    }

    /// Checks blocks read for the first time in this mount against their recorded checksums.
    private func verifyFirstUse(_ wanted: ClosedRange<Int>) {
        let unverified = blocks.withLock { table in
            wanted.compactMap { block -> (Int, UInt32)? in
                if case .present(let crc, false) = table[block] { return (block, crc) }
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
                blocks.withLock { table in
                    if case .present(crc, false) = table[block] { table[block] = .present(crc: crc, verified: true) }
                }
                context.verified.insert(objectID: recordID, block: block)
            } else {
                forget(block...block, reason: got < range.count ? "cached block \(block) is missing bytes" : "cached block \(block) failed its checksum")
            }
        }
    }

    private func forget(_ range: ClosedRange<Int>, reason: String) {
        let dropped = blocks.withLock { table in
            range.filter { block in
                guard case .present = table[block] else { return false }
                table[block] = nil
                return true
            }
        }
        for block in dropped {
            try? context.index.dropBlock(objectID: recordID, block: block)
            context.verified.remove(objectID: recordID, block: block)
        }
        context.budget.dropped(bytes: dropped.reduce(0) { $0 + byteRange(of: $1).count })
        context.logger.warning("\(bucket)/\(key): \(reason); fetching it again")
        context.statistics.recordRepair("repaired \(bucket)/\(key): \(reason)")
    }

    private func download(_ block: Int) {
        // In use until written and recorded: eviction must not delete the file or row under us.
        guard context.openObjects.downloadStarted(self) else { return }
        defer { context.openObjects.downloadEnded(self) }
        let mine = blocks.withLock { table -> Bool in
            guard case .downloading(let waiters, false) = table[block] else { return false }
            table[block] = .downloading(waiters: waiters, claimed: true)
            return true
        }
        guard mine else { return }
        let range = byteRange(of: block)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 64)
        defer { buffer.deallocate() }
        var failure: FSError?
        var evicted = false
        var crc: UInt32 = 0
        do {
            let statistics = context.statistics
            let transfer = statistics.beginTransfer(key: key, bytes: range.count)
            defer { statistics.endTransfer(transfer) }
            try context.client.fetch(bucket: bucket, key: key, objectSize: size, range: range, into: buffer) { bytes in
                statistics.transferProgress(transfer, bytes: bytes)
            }
            try dataFile.write(UnsafeRawBufferPointer(buffer), at: range.lowerBound)
            crc = blockChecksum(UnsafeRawBufferPointer(buffer))
            // Marked present only after its bytes are written: a crash in between just refetches it.
            try context.index.recordBlock(objectID: recordID, block: block, crc: crc, length: range.count)
        } catch let error as SQLiteError where error.code == 19 /* SQLITE_CONSTRAINT */ {
            // The object's row is gone (evicted): should not happen while it is in use; keep nothing.
            context.logger.warning("\(bucket)/\(key) block \(block): the object left the cache during its download")
            evicted = true
        } catch let error as FetchError {
            failure = FSError(error)
            context.logger.error("\(bucket)/\(key) block \(block): \(error)")
        } catch {
            failure = .io("cannot store block \(block) of \(key) in the cache: \(error)")
            context.logger.error("\(failure!)")
        }
        let waiters = blocks.withLock { table -> [BlockWaiter] in
            guard case .downloading(let waiters, _) = table[block] else { return [] }
            table[block] = evicted ? nil : failure.map { .failed($0, until: DispatchTime.now().uptimeNanoseconds + OpenObject.failureMemoryNanoseconds) }
                ?? .present(crc: crc, verified: true)
            return waiters
        }
        if evicted {
            for waiter in waiters { waiter.blockFinished(.io("the cache dropped \(key) while it was being read; read again")) }
            return
        }
        if failure == nil {
            context.verified.insert(objectID: recordID, block: block)
            context.budget.stored(bytes: range.count)
            context.diagnostics.downloadSucceeded()
        } else {
            context.diagnostics.downloadFailed()
        }
        for waiter in waiters { waiter.blockFinished(failure) }
    }

    private func byteRange(of block: Int) -> Range<Int> {
        (block * blockSize)..<min(size, (block + 1) * blockSize)
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
