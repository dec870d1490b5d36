import BlockCache
import Foundation

/// Eviction of an open object's cold parts: the cap holds even when readers keep big files open.
///
/// The unit is an extent of `Policies.evictionExtentBytes`, ranked by its last read (or fill).
/// Only blocks present and not pinned go; a block a reply is being served from stays. A block
/// being evicted is `evicting` while its disk space is freed and its row dropped, so no download
/// can write it again before the hole is punched; readers of it wait and then fetch it.
extension OpenObject {
    /// An extent with blocks eviction could free now.
    struct ColdExtent {
        let object: OpenObject
        let extent: Int
        /// Seconds since the epoch.
        let lastUse: Double
        let bytes: Int
    }

    var blocksPerExtent: Int { max(1, policies.evictionExtentBytes / blockSize) }

    func extents(of blocks: ClosedRange<Int>) -> ClosedRange<Int> {
        (blocks.lowerBound / blocksPerExtent)...(blocks.upperBound / blocksPerExtent)
    }

    /// The extents holding blocks present and not pinned, with their last use.
    func evictableExtents() -> [ColdExtent] {
        guard stored != nil, recordID != nil else { return [] }
        let perExtent = blocksPerExtent
        return state.withLock { s -> [ColdExtent] in
            guard s.stale == nil else { return [] }
            var bytes: [Int: Int] = [:]
            for (block, entry) in s.table where s.pins[block] == nil {
                if case .present = entry { bytes[block / perExtent, default: 0] += byteRange(of: block).count }
            }
            return bytes.map { extent, count in
                ColdExtent(object: self, extent: extent, lastUse: s.lastUse[extent] ?? openedAt, bytes: count)
            }
        }
    }

    /// Frees the blocks of `extent` that are present and not pinned; returns the bytes freed.
    func evict(extent: Int) -> Int {
        guard let stored, let recordID, lastBlock >= 0 else { return 0 }
        let first = extent * blocksPerExtent
        guard first <= lastBlock else { return 0 }
        let blocks = first...min(lastBlock, first + blocksPerExtent - 1)
        let victims = state.withLock { s -> [(block: Int, crc: UInt32, verified: Bool)] in
            guard s.stale == nil else { return [] }
            return blocks.compactMap { block in
                guard s.pins[block] == nil, case .present(let crc, let verified) = s.table[block] else { return nil }
                s.table[block] = .evicting
                return (block, crc, verified)
            }
        }
        guard !victims.isEmpty else { return 0 }
        var freed: [Int] = []
        var kept: [Int] = []
        for run in FetchPlanner.runs(victims.map(\.block), maxBlocks: .max) {
            do {
                try stored.freeSpace(byteRange(of: run))
                freed += Array(run)
            } catch {
                // The space could not be freed (a file system without holes): the blocks stay.
                context.logger.error("\(bucket)/\(key): cannot free blocks \(run.lowerBound)-\(run.upperBound) of its cache file: \(error)")
                kept += Array(run)
            }
        }
        do {
            try stored.drop(freed)
        } catch {
            // Rows naming holes: their checksums fail at the next mount, which fetches them again.
            context.logger.error("\(bucket)/\(key): could not drop evicted blocks from the index: \(error)")
        }
        for block in freed { context.verified.remove(objectID: recordID, block: block) }
        let keptSet = Set(kept)
        let waiting = state.withLock { s -> [@Sendable () -> Void] in
            for victim in victims {
                guard case .evicting = s.table[victim.block] else { continue }   // a source change cleared it
                s.table[victim.block] = keptSet.contains(victim.block) ? .present(crc: victim.crc, verified: victim.verified) : nil
            }
            defer { s.afterEviction = [] }
            return s.afterEviction
        }
        for read in waiting { read() }
        return freed.reduce(0) { $0 + byteRange(of: $1).count }
    }

    /// Bytes of blocks pinned by replies being served right now.
    var pinnedBytes: Int {
        state.withLock { s in s.pins.keys.reduce(0) { $0 + byteRange(of: $1).count } }
    }
}
