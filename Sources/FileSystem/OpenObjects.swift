import Synchronization

/// The objects that have open handles, shared per object and counted.
///
/// Eviction consults it under the same lock, so an object is never evicted while it is open or
/// being opened.
final class OpenObjects: Sendable {
    private let table = Mutex<[String: (object: OpenObject, handles: Int)]>([:])

    static func id(bucket: String, key: String) -> String { bucket + "/" + key }

    /// The shared object for `id`, created by `make` under the lock if nobody has it open.
    func acquire(id: String, size: Int, make: () throws -> OpenObject) rethrows -> OpenObject {
        try table.withLock { table in
            if let entry = table[id], entry.object.size == size {
                table[id] = (entry.object, entry.handles + 1)
                return entry.object
            }
            let object = try make()
            table[id] = (object, 1)
            return object
        }
    }

    func release(_ object: OpenObject) {
        let id = OpenObjects.id(bucket: object.bucket, key: object.key)
        table.withLock { table in
            guard let entry = table[id], entry.object === object else { return }
            table[id] = entry.handles > 1 ? (object, entry.handles - 1) : nil
        }
    }

    /// Runs `body` with the ids of open objects while no object can be opened or closed.
    func whileFrozen<T>(_ body: (Set<String>) throws -> T) rethrows -> T {
        try table.withLock { try body(Set($0.keys)) }
    }
}
