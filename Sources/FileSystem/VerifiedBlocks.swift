import Locking

/// Blocks whose bytes this mount wrote or already checked, by object row: they need no checksum
/// pass when another handle (or a prefetch's successor) opens the object again.
///
/// It also remembers each object's data-file change time as of the last write or check: a file
/// changed since (by someone else, while it was closed) has every block checked again.
final class VerifiedBlocks: Sendable {
    private let table = Locked<[Int64: Set<Int>]>([:])
    private let changeTimes = Locked<[Int64: Int]>([:])

    /// Forgets what was checked of an object whose file changed behind our back since we last knew it.
    func distrustUnlessUnchanged(objectID: Int64, changeTime: Int?) {
        let known = changeTimes.withLock { $0[objectID] }
        guard let changeTime, known == changeTime else { remove(objectID: objectID); return }
    }

    func noteChangeTime(objectID: Int64, changeTime: Int?) {
        changeTimes.withLock { $0[objectID] = changeTime }
    }

    func insert(objectID: Int64, block: Int) {
        _ = table.withLock { $0[objectID, default: []].insert(block) }
    }

    func contains(objectID: Int64, block: Int) -> Bool {
        table.withLock { $0[objectID]?.contains(block) ?? false }
    }

    func remove(objectID: Int64, block: Int) {
        _ = table.withLock { $0[objectID]?.remove(block) }
    }

    /// The index was replaced: its object rows (and their numbers) mean nothing any more.
    func removeAll() {
        table.withLock { $0 = [:] }
        changeTimes.withLock { $0 = [:] }
    }

    /// The object left the cache (evicted or changed at the source).
    func remove(objectID: Int64) {
        _ = table.withLock { $0.removeValue(forKey: objectID) }
    }
}
