import BlockCache
import Foundation
import Locking

/// A block store in memory: the read path's cache without a disk, for tests of the seam (and a
/// model of a second tier). Its objects have no descriptor, so replies are copied, never spliced.
public final class MemoryBlockStore: BlockStore {
    private struct Record { var object: MemoryStoredObject; var size: Int; var etag: String; var lastUse: Double }
    private let objects = Locked<[String: Record]>([:])
    private let nextID = Locked<Int64>(1)

    public init() {}

    public func open(bucket: String, key: String, size: Int, etag: String) throws -> any StoredObject {
        let now = Date().timeIntervalSince1970
        return objects.withLock { table in
            let name = bucket + "/" + key
            if var known = table[name], known.size == size, known.etag == etag {
                known.lastUse = now
                table[name] = known
                return known.object.reopened()
            }
            let invalidated = table[name] != nil
            let id = nextID.withLock { id in defer { id += 1 }; return id }
            let object = MemoryStoredObject(id: id, bucket: bucket, key: key, invalidated: invalidated)
            table[name] = Record(object: object, size: size, etag: etag, lastUse: now)
            return object
        }
    }

    public func storedBytes() throws -> Int { objects.withLock { $0.values.reduce(0) { $0 + $1.object.recordedBytes } } }

    public func storedObjects() throws -> Int { objects.withLock { $0.values.filter { $0.object.recordedBytes > 0 }.count } }

    public func leastRecentlyUsed(limit: Int, excluding excluded: Set<Int64>) throws -> [StoredSummary] {
        objects.withLock { table in
            table.values.filter { !excluded.contains($0.object.id) && $0.object.recordedBytes > 0 }
                .sorted { $0.lastUse < $1.lastUse }.prefix(limit)
                .map { StoredSummary(id: $0.object.id, bucket: $0.object.bucket, key: $0.object.key, bytes: $0.object.recordedBytes, lastUse: $0.lastUse) }
        }
    }

    public func remove(_ summary: StoredSummary) throws {
        objects.withLock { table in
            if let record = table[summary.bucket + "/" + summary.key], record.object.id == summary.id { _ = try? record.object.dropAll() }
        }
    }

    /// Bytes recorded for one object, for assertions.
    public func recordedBytes(bucket: String, key: String) -> Int {
        objects.withLock { $0[bucket + "/" + key]?.object.recordedBytes ?? 0 }
    }
}

/// One object of a `MemoryBlockStore`: bytes by offset, and the blocks recorded with checksums.
public final class MemoryStoredObject: StoredObject {
    private struct State { var bytes: [UInt8] = []; var blocks: [Int: (crc: UInt32, length: Int)] = [:] }
    private let state: Locked<State>
    public let id: Int64
    let bucket: String
    let key: String
    public let invalidated: Bool
    public var invalidatedBytes: Int { 0 }   // a new version starts a new object here
    public let recorded: [Int: UInt32]

    init(id: Int64, bucket: String, key: String, invalidated: Bool) {
        self.id = id
        self.bucket = bucket
        self.key = key
        self.invalidated = invalidated
        recorded = [:]
        state = Locked(State())
    }

    private init(sharing other: MemoryStoredObject) {
        id = other.id
        bucket = other.bucket
        key = other.key
        invalidated = false
        state = other.state
        recorded = other.state.withLock { $0.blocks.mapValues(\.crc) }
    }

    /// The same stored bytes, opened again (with what is recorded now).
    func reopened() -> MemoryStoredObject { MemoryStoredObject(sharing: self) }

    var recordedBytes: Int { state.withLock { $0.blocks.values.reduce(0) { $0 + $1.length } } }

    public var path: String { "memory:\(bucket)/\(key)" }

    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        state.withLock { s in
            if s.bytes.count < offset + bytes.count { s.bytes += [UInt8](repeating: 0, count: offset + bytes.count - s.bytes.count) }
            s.bytes.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[offset..<(offset + bytes.count)]).copyMemory(from: bytes) }
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        state.withLock { s in
            guard offset < s.bytes.count else { return 0 }
            let count = min(buffer.count, s.bytes.count - offset)
            s.bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
            return count
        }
    }

    public var length: Int { state.withLock { $0.bytes.count } }

    public func freeSpace(_ range: Range<Int>) throws {
        state.withLock { s in
            for i in range where i < s.bytes.count { s.bytes[i] = 0 }
        }
    }

    public func lease() throws -> DataFile.Lease { throw CocoaError(.featureUnsupported) }

    public func record(_ blocks: [(block: Int, crc: UInt32, length: Int)]) throws {
        state.withLock { s in for entry in blocks { s.blocks[entry.block] = (entry.crc, entry.length) } }
    }

    public func drop(_ blocks: [Int]) throws {
        state.withLock { s in for block in blocks { s.blocks[block] = nil } }
    }

    public func dropAll() throws -> Int {
        state.withLock { s in
            defer { s.blocks = [:]; s.bytes = [] }
            return s.blocks.values.reduce(0) { $0 + $1.length }
        }
    }

    public func touch() throws {}
    public var changeTime: Int? { nil }
    public func changedByOthers() -> Bool { false }
}
