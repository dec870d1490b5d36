import BlockCache
import Foundation
import Locking
import ObjectStore

/// The download and storing side of `OpenObject`: run a request, write each block as it
/// completes, checksum it and only then record it, so a crash never leaves a recorded block
/// wrong; a crash loses at most the blocks of requests in flight.
extension OpenObject {
    /// Blocks are recorded in the index in batches of about this many bytes (one transaction each).
    static let recordBatchBytes = 1 << 20
    /// Arrived blocks are written to the data file in pieces of about this many bytes.
    static let writeBatchBytes = 256 << 10

    /// Where a request's storing stands, updated from the transfer's arrival callback.
    private final class StoreProgress: @unchecked Sendable {
        /// The next block of the span not yet written.
        var nextBlock: Int
        /// Written and checksummed, not yet recorded.
        var pending: [(block: Int, crc: UInt32, length: Int)] = []
        /// Written and recorded.
        var recorded: [Int: UInt32] = [:]
        /// Storing stopped (a full disk, a closed cache): the rest is kept in memory.
        var storingFailed = false
        /// The cap has no room left that eviction could free: what is written is still recorded,
        /// the rest is kept in memory.
        var writingStopped = false
        init(first: Int) { nextBlock = first }
    }

    func download(_ fetch: RangeFetch) {
        guard fetch.claim() else { return }
        // In use until written and recorded: eviction must not delete the file or row under us.
        guard context.openObjects.downloadStarted(self) else {
            return fetch.finish(.io("\(bucket)/\(key) was closed before its download started"))
        }
        defer { context.openObjects.downloadEnded(self) }
        // Only the blocks still assigned to this request: a reader may have taken some.
        let span: ClosedRange<Int>? = state.withLock { s in
            let mine = fetch.blocks.filter { if case .fetching(let f) = s.table[$0], f === fetch { true } else { false } }
            guard let first = mine.first, let last = mine.last else { return nil }
            return first...last
        }
        guard let span else { return fetch.finish(nil) }
        let range = byteRange(of: span)
        let buffer = fetch.start(range: range)
        let progress = StoreProgress(first: span.lowerBound)
        let storing = stored != nil && recordID != nil && context.storeHealth.mayStore
        progress.storingFailed = !storing
        var failure: FSError?
        var changed = false
        do {
            let statistics = context.statistics
            let transfer = statistics.beginTransfer(bucket: bucket, key: key, objectSize: size, bytes: range.count)
            defer { statistics.endTransfer(transfer) }
            try context.client.fetch(bucket: bucket, key: key, objectSize: size, etag: etag, range: range, into: buffer,
                                     progress: { statistics.transferProgress(transfer, bytes: $0) },
                                     arrived: { [self] count in
                                         fetch.arrived(count)
                                         storeCompleted(fetch, span: span, reached: range.lowerBound + count, progress, final: false)
                                     })
        } catch {
            failure = FSError(error)
            changed = error.category == .changed
            context.logger.error("\(bucket)/\(key) blocks \(span.lowerBound)-\(span.upperBound): \(error)", metadata: ["category": "\(error.category.rawValue)"])
        }
        if changed {
            // Stale and forgotten first, so the reader's error comes after its listing was dropped.
            sourceChanged(failure!)
            return fetch.finish(failure)
        }
        storeCompleted(fetch, span: span, reached: nil, progress, final: true)
        let until = DispatchTime.now().uptimeNanoseconds + policies.failureMemoryNanoseconds
        let wallNow = Date().timeIntervalSince1970
        state.withLock { s in
            // Just filled: as recent as a read for eviction (readahead is read next).
            for extent in extents(of: span) { s.lastUse[extent] = max(s.lastUse[extent] ?? 0, wallNow) }
            for block in span {
                guard case .fetching(let f) = s.table[block], f === fetch else { continue }
                if let crc = progress.recorded[block] {
                    s.table[block] = .present(crc: crc, verified: true)
                } else if let held = fetch.withArrived(byteRange(of: block), { Array($0) }) {
                    hold(block, held, in: &s)
                } else {
                    s.table[block] = .failed(failure ?? .io("\(key) block \(block) did not arrive"), until: until)
                }
            }
        }
        if failure == nil {
            context.diagnostics.downloadSucceeded()
        } else {
            context.diagnostics.downloadFailed()
        }
        fetch.finish(failure)
    }

    /// Writes the blocks of `span` that have completely arrived (up to `reached`; nil: whatever
    /// arrived), and records them in batches; `final` records whatever is pending.
    private func storeCompleted(_ fetch: RangeFetch, span: ClosedRange<Int>, reached: Int?, _ progress: StoreProgress, final: Bool) {
        guard !progress.storingFailed, let stored, let recordID else { return }
        var last = progress.nextBlock - 1
        while last < span.upperBound {
            let candidate = byteRange(of: last + 1)
            if let reached, candidate.upperBound > reached { break }
            if reached == nil, fetch.withArrived(candidate, { _ in true }) == nil { break }
            last += 1
        }
        // Written in pieces of at least `writeBatchBytes` (one pwrite each), not per 16 KiB chunk.
        let ready = (last - progress.nextBlock + 1) * blockSize
        if !progress.writingStopped, last >= progress.nextBlock, final || last == span.upperBound || ready >= OpenObject.writeBatchBytes {
            let run = progress.nextBlock...last
            let runBytes = byteRange(of: run).count
            // Room first (evicting if need be), so the disk never holds more than the cap.
            guard context.budget.reserve(bytes: runBytes) else {
                progress.writingStopped = true
                return recordPending(progress, stored: stored, recordID: recordID)
            }
            let written: Bool? = fetch.withArrived(byteRange(of: run)) { raw in
                do {
                    try stored.write(raw, at: run.lowerBound * blockSize)
                } catch {
                    context.budget.release(bytes: runBytes)
                    context.storeHealth.storeFailed(error, what: "blocks \(run.lowerBound)-\(run.upperBound) of \(bucket)/\(key)")
                    return false
                }
                for block in run {
                    let range = byteRange(of: block)
                    let start = range.lowerBound - run.lowerBound * blockSize
                    let crc = blockChecksum(UnsafeRawBufferPointer(rebasing: raw[start..<(start + range.count)]))
                    progress.pending.append((block, crc, range.count))
                }
                return true
            }
            if written == nil { context.budget.release(bytes: runBytes) }
            if written != true {
                // What was written before is still recorded; nothing more is stored.
                recordPending(progress, stored: stored, recordID: recordID)
                progress.storingFailed = true
                return
            }
            progress.nextBlock = last + 1
            fetch.written(upTo: byteRange(of: run).upperBound)
        }
        let pendingBytes = progress.pending.count * blockSize
        guard final || progress.writingStopped || pendingBytes >= OpenObject.recordBatchBytes else { return }
        recordPending(progress, stored: stored, recordID: recordID)
    }

    /// Records the blocks written and not yet recorded, in one transaction. If that fails their
    /// disk space is freed again (a block on disk the index does not name would never be evicted).
    private func recordPending(_ progress: StoreProgress, stored: any StoredObject, recordID: Int64) {
        guard !progress.pending.isEmpty else { return }
        let pending = progress.pending
        progress.pending = []
        let bytes = pending.reduce(0) { $0 + $1.length }
        func unrecord() {
            for run in FetchPlanner.runs(pending.map(\.block), maxBlocks: .max) { try? stored.freeSpace(byteRange(of: run)) }
            context.budget.release(bytes: bytes)
            progress.storingFailed = true
        }
        guard !isStale else { return unrecord() }
        do {
            try stored.record(pending)
        } catch let error as SQLiteError where error.code == 19 /* SQLITE_CONSTRAINT */ {
            // The object's row is gone: should not happen while it is in use; keep nothing.
            context.logger.warning("\(bucket)/\(key): the object left the cache during its download")
            return unrecord()
        } catch {
            context.storeHealth.storeFailed(error, what: "blocks of \(bucket)/\(key)")
            return unrecord()
        }
        context.storeHealth.storeSucceeded()
        for entry in pending {
            context.verified.insert(objectID: recordID, block: entry.block)
            progress.recorded[entry.block] = entry.crc
        }
        context.verified.noteChangeTime(objectID: recordID, changeTime: stored.changeTime)
        // The table says "present" when the request ends: until then readers copy from its
        // buffer, and "In progress" counts these bytes once (as the transfer's), not twice.
        context.budget.recorded(bytes: bytes)
    }

    /// Keeps a block that could not be stored in memory for the readers, within the policy's bound.
    private func hold(_ block: Int, _ bytes: [UInt8], in s: inout Blocks) {
        s.table[block] = .unstored(bytes)
        s.unstored.append(block)
        let limit = max(1, policies.unstoredBytesPerObject / blockSize)
        while s.unstored.count > limit {
            let oldest = s.unstored.removeFirst()
            if case .unstored = s.table[oldest] { s.table[oldest] = nil }
        }
    }

    // MARK: Checking what is on disk

    /// Someone else wrote to the data file while it was open: every block is checked again
    /// against its checksum before it is served (a damaged cache is repaired, never served).
    func distrustCheckedBlocks() {
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

    /// Checks blocks read for the first time in this mount against their recorded checksums, a
    /// run of consecutive blocks per read of the file.
    func verifyFirstUse(_ wanted: ClosedRange<Int>) {
        guard let stored, let recordID else { return }
        // Pinned while checked: an eviction punching them meanwhile would look like damage.
        let unverified = state.withLock { s in
            let found = wanted.compactMap { block -> (Int, UInt32)? in
                if case .present(let crc, false) = s.table[block] { return (block, crc) }
                return nil
            }
            s.pin(found.map(\.0))
            return found
        }
        guard !unverified.isEmpty else { return }
        defer { state.withLock { $0.unpin(unverified.map(\.0)) } }
        // A data file cut short (or deleted) loses every block past its end at once: one repair
        // line for them all, not one per read.
        let length = stored.length
        if let beyond = unverified.last, byteRange(of: beyond.0).upperBound > length {
            let cut = state.withLock { s in
                s.table.compactMap { block, entry -> Int? in
                    if case .present = entry, byteRange(of: block).upperBound > length { return block }
                    return nil
                }.sorted()
            }
            if let first = cut.first, let last = cut.last {
                forget(first...last, reason: "cache file holds \(length) bytes, blocks \(first)-\(last) were recorded past that")
            }
        }
        let checkable = unverified.filter { byteRange(of: $0.0).upperBound <= length }
        // Damaged blocks are dropped per run, with one repair line each.
        var damaged: [(block: Int, missing: Bool)] = []
        var index = 0
        while index < checkable.count {
            var end = index
            while end + 1 < checkable.count, checkable[end + 1].0 == checkable[end].0 + 1 { end += 1 }
            let run = checkable[index].0...checkable[end].0
            let range = byteRange(of: run)
            var got = 0
            // Not zero-filled first: every byte checked is one pread just wrote.
            let buffer = [UInt8](unsafeUninitializedCapacity: range.count) { storage, count in
                got = (try? stored.read(into: UnsafeMutableRawBufferPointer(storage), at: range.lowerBound)) ?? 0
                count = got
            }
            for (block, crc) in checkable[index...end] {
                let blockRange = byteRange(of: block)
                let start = blockRange.lowerBound - range.lowerBound
                let complete = start + blockRange.count <= got
                let actual = complete ? buffer.withUnsafeBytes { blockChecksum(UnsafeRawBufferPointer(rebasing: $0[start..<(start + blockRange.count)])) } : 0
                if complete && actual == crc {
                    state.withLock { s in
                        if case .present(crc, false) = s.table[block] { s.table[block] = .present(crc: crc, verified: true) }
                    }
                    context.verified.insert(objectID: recordID, block: block)
                } else {
                    damaged.append((block, !complete))
                }
            }
            context.verified.noteChangeTime(objectID: recordID, changeTime: stored.changeTime)
            index = end + 1
        }
        var start = 0
        while start < damaged.count {
            var end = start
            while end + 1 < damaged.count, damaged[end + 1].block == damaged[end].block + 1, damaged[end + 1].missing == damaged[start].missing { end += 1 }
            let blocks = damaged[start].block...damaged[end].block
            let what = blocks.count == 1 ? "cached block \(blocks.lowerBound)" : "cached blocks \(blocks.lowerBound)-\(blocks.upperBound)"
            forget(blocks, reason: damaged[start].missing ? "\(what) missing bytes" : "\(what) failed its checksum")
            start = end + 1
        }
    }

    func forget(_ range: ClosedRange<Int>, reason: String) {
        let dropped = state.withLock { s in
            range.filter { block in
                guard case .present = s.table[block] else { return false }
                s.table[block] = nil
                return true
            }
        }
        if let stored {
            do { try stored.drop(dropped) } catch {
                context.logger.error("\(bucket)/\(key): could not drop blocks \(dropped) from the index: \(error)")
            }
            for block in dropped { context.verified.remove(objectID: stored.id, block: block) }
        }
        context.budget.dropped(bytes: dropped.reduce(0) { $0 + byteRange(of: $1).count })
        context.logger.warning("\(bucket)/\(key): \(reason); fetching it again")
        context.statistics.recordRepair("repaired \(bucket)/\(key): \(reason)")
    }

    /// The source now holds another version: drop everything cached of this one and the listing
    /// that named it; this object fails every read from now on (a reopen lists again).
    func sourceChanged(_ error: FSError) {
        let (fetches, waiting) = state.withLock { s -> ([RangeFetch], [@Sendable () -> Void]) in
            s.stale = error
            var fetching: [RangeFetch] = []
            for (_, entry) in s.table {
                if case .fetching(let f) = entry, !fetching.contains(where: { $0 === f }) { fetching.append(f) }
            }
            s.table = [:]
            s.unstored = []
            defer { s.afterEviction = [] }
            return (fetching, s.afterEviction)
        }
        if let stored {
            do { context.budget.dropped(bytes: try stored.dropAll()) } catch {
                context.logger.error("\(bucket)/\(key): could not drop the changed object from the index: \(error)")
            }
            // Its space too: no row names these bytes any more, so eviction would never find them.
            try? stored.freeSpace(0..<max(size, stored.length))
            context.verified.remove(objectID: stored.id)
        }
        let folder = key.lastIndex(of: "/").map { String(key[...$0]) } ?? ""
        context.listings.forget(bucket: bucket, prefix: folder)
        context.logger.warning("\(bucket)/\(key) changed at the source while being read: its cached blocks and listing were dropped")
        context.statistics.noteEvent("\(bucket)/\(key) changed at the source; cached copy dropped")
        context.diagnostics.downloadFailed()
        for fetch in fetches { fetch.finish(error) }
        for read in waiting { read() }
        context.changes.objectChanged(bucket: bucket, key: key)
    }
}
