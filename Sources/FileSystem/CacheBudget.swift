import BlockCache
import Foundation
import Locking
import Logging
import Synchronization

/// Keeps the cache under its size cap: the one place that decides eviction.
///
/// Room is reserved before a block is written (`reserve`), so the data on disk never exceeds the
/// cap. Over it, eviction frees down to 90 %, least recently used first, mixing two kinds of unit:
/// objects nobody uses (whole: file and rows), and cold extents of objects in use (their blocks
/// present and not pinned by a reply being served; `OpenObject.evict`). Only when everything left
/// is pinned or being written does a reservation fail; the download then serves its bytes from
/// memory, and the refusal is counted.
final class CacheBudget: Sendable {
    let limit: Int
    /// Bytes recorded in the index plus bytes reserved and written but not recorded yet.
    private let used: Atomic<Int>
    /// Reserved, written or being written, not yet recorded: eviction cannot free these.
    private let unrecorded = Atomic<Int>(0)
    private let evictor = NSCondition()
    nonisolated(unsafe) private var evicting = false   // guarded by `evictor`
    private let store: any BlockStore
    private let openObjects: OpenObjects
    private let verified: VerifiedBlocks
    private let statistics: Statistics
    private let policies: Policies
    private let logger: Logger
    private let warnings: RateLimitedWarnings

    init(limit: Int, store: any BlockStore, openObjects: OpenObjects, verified: VerifiedBlocks,
         statistics: Statistics, policies: Policies, logger: Logger) {
        self.limit = limit
        self.store = store
        self.openObjects = openObjects
        self.verified = verified
        self.statistics = statistics
        self.policies = policies
        self.logger = logger
        warnings = RateLimitedWarnings(logger: logger)
        let current = (try? store.storedBytes()) ?? 0
        used = Atomic(current)
        statistics.updateCacheUsage(bytes: current, limit: limit)
    }

    var usedBytes: Int { used.load(ordering: .relaxed) }
    var unrecordedBytes: Int { unrecorded.load(ordering: .relaxed) }

    /// Room for `bytes` about to be written; false when eviction cannot free enough (what is left
    /// is pinned or being written): the caller keeps the bytes in memory instead.
    func reserve(bytes: Int) -> Bool {
        while true {
            let total = used.add(bytes, ordering: .relaxed).newValue
            if total <= limit {
                unrecorded.add(bytes, ordering: .relaxed)
                statistics.updateCacheUsage(bytes: total, limit: limit)
                return true
            }
            used.subtract(bytes, ordering: .relaxed)
            guard makeRoom(for: bytes) else {
                statistics.recordEvictionRefused(bytes: bytes)
                warnings.warning("cache at its cap and everything in it is being read or written; serving from memory")
                return false
            }
        }
    }

    /// Reserved bytes are now recorded in the index.
    func recorded(bytes: Int) {
        unrecorded.subtract(bytes, ordering: .relaxed)
    }

    /// Reserved bytes that were not recorded after all (their space was freed again).
    func release(bytes: Int) {
        unrecorded.subtract(bytes, ordering: .relaxed)
        dropped(bytes: bytes)
    }

    /// The index was replaced by an empty one: count again from what it holds.
    func recount() {
        let current = ((try? store.storedBytes()) ?? 0) + unrecordedBytes
        used.store(current, ordering: .relaxed)
        statistics.updateCacheUsage(bytes: current, limit: limit)
    }

    /// Recorded bytes that left the cache some other way (a block dropped after failing its
    /// checksum, an object changed at the source).
    func dropped(bytes: Int) {
        let total = used.subtract(bytes, ordering: .relaxed).newValue
        statistics.updateCacheUsage(bytes: total, limit: limit)
    }

    /// Evicts (or waits for the eviction under way) until `bytes` more fit; false if nothing
    /// could be freed.
    private func makeRoom(for bytes: Int) -> Bool {
        evictor.lock()
        if evicting {
            // Another download is evicting: its result is ours too.
            while evicting { evictor.wait() }
            evictor.unlock()
            return true
        }
        evicting = true
        evictor.unlock()
        let freed = evict(target: limit / 100 * policies.evictionTargetPercent - bytes)
        evictor.lock()
        evicting = false
        evictor.broadcast()
        evictor.unlock()
        return freed > 0 || used.load(ordering: .relaxed) + bytes <= limit
    }

    private enum Candidate {
        case object(StoredSummary)
        case extent(OpenObject.ColdExtent)
        var lastUse: Double {
            switch self { case .object(let o): o.lastUse; case .extent(let e): e.lastUse }
        }
    }

    /// Frees least recently used units until at most `target` bytes are used; returns the bytes freed.
    private func evict(target: Int) -> Int {
        var total = 0
        while used.load(ordering: .relaxed) > target {
            let inUse = openObjects.inUse().map(\.object)
            let closed = (try? store.leastRecentlyUsed(limit: 64, excluding: Set(inUse.compactMap(\.recordID)))) ?? []
            var candidates = closed.map(Candidate.object)
            candidates += inUse.flatMap { $0.evictableExtents() }.map(Candidate.extent)
            candidates.sort { $0.lastUse < $1.lastUse }
            var freed = 0
            for candidate in candidates where used.load(ordering: .relaxed) > target {
                let bytes: Int
                switch candidate {
                case .object(let object):
                    bytes = evictObject(object)
                    if bytes > 0 { statistics.recordEviction(.closedObject, bytes: bytes) }
                case .extent(let cold):
                    // Only the registered instance, kept registered meanwhile: a file closed and
                    // reopened since the snapshot has a new object whose table this one does not
                    // know (its holes would look like damage there, and be counted twice).
                    guard openObjects.downloadStarted(cold.object) else { continue }
                    bytes = cold.object.evict(extent: cold.extent)
                    openObjects.downloadEnded(cold.object)
                    if bytes > 0 { statistics.recordEviction(.openObjectExtent, bytes: bytes) }
                }
                if bytes > 0 { dropped(bytes: bytes); freed += bytes }
            }
            total += freed
            if freed == 0 { break }
        }
        return total
    }

    /// Deletes an object nobody uses (its data file and block rows); 0 if it came into use.
    private func evictObject(_ object: StoredSummary) -> Int {
        let name = OpenObjects.id(bucket: object.bucket, key: object.key)
        guard openObjects.claimForEviction(name) else { return 0 }
        defer { openObjects.evictionEnded(name) }
        do {
            try store.remove(object)
        } catch {
            logger.error("eviction of \(object.bucket)/\(object.key) failed: \(error)")
            return 0
        }
        verified.remove(objectID: object.id)
        return object.bytes
    }
}
