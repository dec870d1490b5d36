import Foundation
import Locking

/// The objects in use: with open handles, or with downloads still running (a prefetch can outlive
/// the handle that started it). Shared per object and counted.
///
/// Eviction claims an object not in use under the same lock before deleting it, so a whole object
/// is never deleted while it is open, being opened, or being written to (open objects lose only
/// cold blocks, through `OpenObject.evict`).
final class OpenObjects: Sendable {
    private struct Entry { let object: OpenObject; var handles: Int; var downloads: Int }
    private struct Table {
        var entries: [String: Entry] = [:]
        /// Objects being made by `acquire` right now: in use too, so eviction cannot remove the rows
        /// and file they are loading; a second opener waits for the first instead of making another.
        var opening: [String: DispatchGroup] = [:]
    }
    private let table = Locked(Table())

    static func id(bucket: String, key: String) -> String { bucket + "/" + key }

    /// The shared object for `ref`, made if nobody has this version open (same size and ETag, not
    /// found changed at the source); release it with `release`. The object is made outside the
    /// lock (it opens files and the index); a racing open that made one first wins.
    func acquire(_ ref: ObjectRef, context: ReadContext) -> OpenObject {
        let id = OpenObjects.id(bucket: ref.bucket, key: ref.object.key)
        while true {
            enum Next { case shared(OpenObject), wait(DispatchGroup), make(DispatchGroup) }
            let next = table.withLock { t -> Next in
                if let shared = OpenObjects.share(id, ref, in: &t) { return .shared(shared) }
                if let busy = t.opening[id] { return .wait(busy) }
                let mine = DispatchGroup()
                mine.enter()
                t.opening[id] = mine
                return .make(mine)
            }
            switch next {
            case .shared(let object):
                return object
            case .wait(let busy):
                busy.wait()   // the other opener is loading the same object; then share it
            case .make(let mine):
                let made = OpenObject(bucket: ref.bucket, object: ref.object, context: context)
                defer { mine.leave() }
                return table.withLock { t in
                    t.opening[id] = nil
                    if let shared = OpenObjects.share(id, ref, in: &t) { return shared }
                    t.entries[id] = Entry(object: made, handles: 1, downloads: 0)
                    return made
                }
            }
        }
    }

    private static func share(_ id: String, _ ref: ObjectRef, in t: inout Table) -> OpenObject? {
        guard var entry = t.entries[id], matches(entry.object, ref) else { return nil }
        entry.handles += 1
        t.entries[id] = entry
        return entry.object
    }

    private static func matches(_ object: OpenObject, _ ref: ObjectRef) -> Bool {
        object.size == ref.object.size && object.etag == ref.object.etag && !object.isStale
    }

    func release(_ object: OpenObject) {
        update(object) { $0.handles -= 1 }
    }

    /// A download (or an eviction of its cold parts) for `object` wants to start: it stays
    /// registered (in use, so a new open shares it rather than make another) until `downloadEnded`.
    /// False when nobody has this object open any more: a prefetch for a closed file is dropped
    /// (eviction may already have removed it).
    func downloadStarted(_ object: OpenObject) -> Bool {
        let id = OpenObjects.id(bucket: object.bucket, key: object.key)
        return table.withLock { t in
            guard t.entries[id]?.object === object else { return false }
            t.entries[id]!.downloads += 1
            return true
        }
    }

    func downloadEnded(_ object: OpenObject) {
        update(object) { $0.downloads -= 1 }
    }

    /// Downloads running now, over all objects.
    var downloadsRunning: Int { table.withLock { $0.entries.values.reduce(0) { $0 + $1.downloads } } }

    /// The objects in use now, with their open handles (a scan prefetch holds one too).
    func inUse() -> [(object: OpenObject, handles: Int)] {
        table.withLock { $0.entries.values.map { ($0.object, $0.handles) } }
    }

    /// Claims an object nobody uses, for eviction: until `evictionEnded`, an open of it waits (so it
    /// does not load the rows and file being deleted). False if it is in use or being opened.
    func claimForEviction(_ id: String) -> Bool {
        table.withLock { t in
            guard t.entries[id] == nil, t.opening[id] == nil else { return false }
            let busy = DispatchGroup()
            busy.enter()
            t.opening[id] = busy
            return true
        }
    }

    func evictionEnded(_ id: String) {
        let busy = table.withLock { $0.opening.removeValue(forKey: id) }
        busy?.leave()
    }

    private func update(_ object: OpenObject, _ change: (inout Entry) -> Void) {
        let id = OpenObjects.id(bucket: object.bucket, key: object.key)
        table.withLock { t in
            guard var entry = t.entries[id], entry.object === object else { return }
            change(&entry)
            t.entries[id] = entry.handles <= 0 && entry.downloads <= 0 ? nil : entry
        }
    }
}
