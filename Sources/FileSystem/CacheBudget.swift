import BlockCache
import Foundation
import Locking
import Logging
import Synchronization

/// Keeps the cache under its size cap: the one place that decides eviction.
///
/// Whole objects go, least recently opened first, never one that is open. Eviction starts when a
/// new block takes the total over the cap and stops at 90 % of it, so it runs in bursts, not per block.
final class CacheBudget: Sendable {
    let limit: Int
    private let used: Atomic<Int>
    private let evicting = Locked(false)
    private let index: CacheIndex
    private let openObjects: OpenObjects
    private let verified: VerifiedBlocks
    private let statistics: Statistics
    private let logger: Logger
    private let warnings: RateLimitedWarnings

    init(limit: Int, index: CacheIndex, openObjects: OpenObjects, verified: VerifiedBlocks,
         statistics: Statistics, logger: Logger) {
        self.limit = limit
        self.index = index
        self.openObjects = openObjects
        self.verified = verified
        self.statistics = statistics
        self.logger = logger
        warnings = RateLimitedWarnings(logger: logger)
        let current = (try? index.cachedBytes()) ?? 0
        used = Atomic(current)
        statistics.updateCacheUsage(bytes: current, limit: limit)
    }

    var usedBytes: Int { used.load(ordering: .relaxed) }

    /// A block of `bytes` was stored; evicts if that took the cache over its cap.
    func stored(bytes: Int) {
        let total = used.add(bytes, ordering: .relaxed).newValue
        statistics.updateCacheUsage(bytes: total, limit: limit)
        if total > limit { evict() }
    }

    /// The index was replaced by an empty one: count again from what it holds.
    func recount() {
        let current = (try? index.cachedBytes()) ?? 0
        used.store(current, ordering: .relaxed)
        statistics.updateCacheUsage(bytes: current, limit: limit)
    }

    /// Bytes that left the cache some other way (a block dropped after failing its checksum).
    func dropped(bytes: Int) {
        let total = used.subtract(bytes, ordering: .relaxed).newValue
        statistics.updateCacheUsage(bytes: total, limit: limit)
    }

    private func evict() {
        // One evictor at a time; others just carry on (the running one sees their bytes too).
        let started = evicting.withLock { busy -> Bool in
            defer { busy = true }
            return !busy
        }
        guard started else { return }
        defer { evicting.withLock { $0 = false } }
        let target = limit / 10 * 9
        while used.load(ordering: .relaxed) > target {
            guard let candidates = try? index.leastRecentlyUsed(limit: 64), !candidates.isEmpty else { return }
            var freed = 0
            openObjects.whileFrozen { open in
                for candidate in candidates where used.load(ordering: .relaxed) - freed > target {
                    guard !open.contains(OpenObjects.id(bucket: candidate.bucket, key: candidate.key)) else { continue }
                    index.directory.removeDataFile(bucket: candidate.bucket, key: candidate.key)
                    do {
                        try index.removeObject(id: candidate.id)
                        verified.remove(objectID: candidate.id)
                        freed += candidate.bytes
                        statistics.recordEviction(bytes: candidate.bytes)
                    } catch {
                        logger.error("eviction of \(candidate.bucket)/\(candidate.key) failed: \(error)")
                    }
                }
            }
            if freed == 0 {
                warnings.warning("cache over its limit but every cached object is open; nothing evicted")
                return
            }
            dropped(bytes: freed)
        }
    }
}
