import Locking

/// The objects in use: with open handles, or with downloads still running (a prefetch can outlive
/// the handle that started it). Shared per object and counted.
///
/// Eviction consults it under the same lock, so an object is never evicted while it is open, being
/// opened, or being written to.
final class OpenObjects: Sendable {
    private struct Entry { let object: OpenObject; var handles: Int; var downloads: Int }
    private let table = Locked<[String: Entry]>([:])

    static func id(bucket: String, key: String) -> String { bucket + "/" + key }

    /// The shared object for `ref`, made if nobody has this version open (same size and ETag, not
    /// found changed at the source); release it with `release`. The object is made outside the
    /// lock (it opens files and the index); a racing open that made one first wins.
    func acquire(_ ref: ObjectRef, context: ReadContext) -> OpenObject {
        let id = OpenObjects.id(bucket: ref.bucket, key: ref.object.key)
        if let shared = share(id, ref) { return shared }
        let made = OpenObject(bucket: ref.bucket, object: ref.object, context: context)
        return table.withLock { table in
            if var entry = table[id], OpenObjects.matches(entry.object, ref) {
                entry.handles += 1
                table[id] = entry
                return entry.object
            }
            table[id] = Entry(object: made, handles: 1, downloads: 0)
            return made
        }
    }

    private func share(_ id: String, _ ref: ObjectRef) -> OpenObject? {
        table.withLock { table in
            guard var entry = table[id], OpenObjects.matches(entry.object, ref) else { return nil }
            entry.handles += 1
            table[id] = entry
            return entry.object
        }
    }

    private static func matches(_ object: OpenObject, _ ref: ObjectRef) -> Bool {
        object.size == ref.object.size && object.etag == ref.object.etag && !object.isStale
    }

    func release(_ object: OpenObject) {
        update(object) { $0.handles -= 1 }
    }

    /// A download for `object` wants to start: it stays registered (in use) until `downloadEnded`.
    /// False when nobody has this object open any more: a prefetch for a closed file is dropped
    /// (eviction may already have removed it).
    func downloadStarted(_ object: OpenObject) -> Bool {
        let id = OpenObjects.id(bucket: object.bucket, key: object.key)
        return table.withLock { table in
            guard table[id]?.object === object else { return false }
            table[id]!.downloads += 1
            return true
        }
    }

    func downloadEnded(_ object: OpenObject) {
        update(object) { $0.downloads -= 1 }
    }

    /// The objects in use now, with their open handles (a scan prefetch holds one too).
    func inUse() -> [(object: OpenObject, handles: Int)] {
        table.withLock { $0.values.map { ($0.object, $0.handles) } }
    }

    /// Runs `body` with the ids of objects in use while none can be opened, closed or written.
    func whileFrozen<T>(_ body: (Set<String>) throws -> T) rethrows -> T {
        try table.withLock { try body(Set($0.keys)) }
    }

    private func update(_ object: OpenObject, _ change: (inout Entry) -> Void) {
        let id = OpenObjects.id(bucket: object.bucket, key: object.key)
        table.withLock { table in
            guard var entry = table[id], entry.object === object else { return }
            change(&entry)
            table[id] = entry.handles <= 0 && entry.downloads <= 0 ? nil : entry
        }
    }
}
