import Foundation

/// Where cached blocks live: the seam between the read path and the cache's storage.
///
/// The read path (`OpenObject`, `CacheBudget`) sees only this and `StoredObject`; `DiskBlockStore`
/// (the index, the data files and the directory layout) is the one implementation a mount uses. A
/// second tier, or a store in memory for tests, is a new implementation of these two protocols.
public protocol BlockStore: Sendable {
    /// The stored copy of an object version, made if need be; blocks of another version (another
    /// size or ETag) are dropped first (`invalidated`).
    func open(bucket: String, key: String, size: Int, etag: String) throws -> any StoredObject
    /// Bytes of all blocks recorded.
    func storedBytes() throws -> Int
    /// Objects with blocks recorded.
    func storedObjects() throws -> Int
    /// Objects with blocks, least recently used first (the eviction order), leaving out `excluded`
    /// (ids of objects in use).
    func leastRecentlyUsed(limit: Int, excluding excluded: Set<Int64>) throws -> [StoredSummary]
    /// Deletes every block of an object nobody has open: its data and its records.
    func remove(_ object: StoredSummary) throws
}

/// An object with blocks in a store, as eviction ranks it.
public struct StoredSummary: Sendable {
    public let id: Int64
    public let bucket: String
    public let key: String
    public let bytes: Int
    /// Seconds since the epoch.
    public let lastUse: Double

    public init(id: Int64, bucket: String, key: String, bytes: Int, lastUse: Double) {
        self.id = id
        self.bucket = bucket
        self.key = key
        self.bytes = bytes
        self.lastUse = lastUse
    }
}

/// One object version in a store: its blocks' bytes at their own offsets, and which are recorded.
///
/// Bytes are written first and recorded after (with their checksums), so a crash never leaves a
/// recorded block wrong; what is recorded is checked against its checksum before it is served.
public protocol StoredObject: AnyObject, Sendable {
    /// The store's number for this object: never given to another object.
    var id: Int64 { get }
    /// For messages.
    var path: String { get }
    /// Blocks recorded when it was opened, with their checksums.
    var recorded: [Int: UInt32] { get }
    /// The source's copy changed since the store last saw it: its old blocks were dropped.
    var invalidated: Bool { get }
    /// Bytes of those old blocks.
    var invalidatedBytes: Int { get }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws
    /// Up to `buffer.count` bytes at `offset`; how many were there.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int
    /// The length of the stored bytes (blocks recorded past it were lost).
    var length: Int { get }
    /// Frees the space of `range` (evicted blocks).
    func freeSpace(_ range: Range<Int>) throws
    /// A descriptor holding the bytes, for a reply the kernel copies itself (a splice); throws when
    /// the store has none (the reply is then copied).
    func lease() throws -> DataFile.Lease

    /// Records blocks already written, in one transaction.
    func record(_ blocks: [(block: Int, crc: UInt32, length: Int)]) throws
    /// Forgets blocks (evicted, or damaged).
    func drop(_ blocks: [Int]) throws
    /// Forgets every block (the source's copy changed); returns the bytes they held.
    func dropAll() throws -> Int
    /// Marks it used now: eviction ranks objects by their last use.
    func touch() throws

    /// The stored bytes' change time (nanoseconds since the epoch), to tell later whether they moved.
    var changeTime: Int? { get }
    /// Whether someone else changed the stored bytes since we last wrote or asked (each change once).
    func changedByOthers() -> Bool
}

/// The store of a cache directory: the SQLite index (`CacheIndex`) records blocks, the sparse data
/// files (`DataFile`) hold them, `CacheDirectory` names and guards the files.
public final class DiskBlockStore: BlockStore {
    public let index: CacheIndex

    public init(index: CacheIndex) { self.index = index }

    public func open(bucket: String, key: String, size: Int, etag: String) throws -> any StoredObject {
        let file = try index.directory.openDataFile(bucket: bucket, key: key)
        let found = try index.openObject(bucket: bucket, key: key, size: size, etag: etag)
        if found.invalidated { try file.truncate() }
        return DiskStoredObject(file: file, index: index, record: found)
    }

    public func storedBytes() throws -> Int { try index.cachedBytes() }

    public func storedObjects() throws -> Int { try index.blockSummary().objects }

    public func leastRecentlyUsed(limit: Int, excluding excluded: Set<Int64>) throws -> [StoredSummary] {
        try index.leastRecentlyUsed(limit: limit, excluding: excluded).map {
            StoredSummary(id: $0.id, bucket: $0.bucket, key: $0.key, bytes: $0.bytes, lastUse: $0.lastAccess)
        }
    }

    public func remove(_ object: StoredSummary) throws {
        // The file first: a crash in between leaves rows naming a missing file, which the first
        // read detects (a short file) and repairs; never bytes no row accounts for.
        index.directory.removeDataFile(bucket: object.bucket, key: object.key)
        try index.removeObject(id: object.id)
    }
}

/// An object of the disk store: its data file and its rows in the index.
final class DiskStoredObject: StoredObject {
    let file: DataFile
    let index: CacheIndex
    let id: Int64
    let recorded: [Int: UInt32]
    let invalidated: Bool
    let invalidatedBytes: Int

    init(file: DataFile, index: CacheIndex, record: CachedObject) {
        self.file = file
        self.index = index
        id = record.id
        recorded = record.blocks
        invalidated = record.invalidated
        invalidatedBytes = record.droppedBytes
    }

    var path: String { file.path }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws { try file.write(bytes, at: offset) }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int { try file.read(into: buffer, at: offset) }
    var length: Int { file.length }
    func freeSpace(_ range: Range<Int>) throws { try file.punchHole(range) }
    func lease() throws -> DataFile.Lease { try file.lease() }
    func record(_ blocks: [(block: Int, crc: UInt32, length: Int)]) throws { try index.recordBlocks(objectID: id, blocks) }
    func drop(_ blocks: [Int]) throws { try index.dropBlocks(objectID: id, blocks) }
    func dropAll() throws -> Int {
        let bytes = try index.blocks(objectID: id).reduce(0) { $0 + max(0, $1.length ?? 0) }
        try index.removeObject(id: id)
        return bytes
    }
    func touch() throws { try index.touch(objectID: id) }
    var changeTime: Int? { file.changeTime }
    func changedByOthers() -> Bool { file.changedByOthers() }
}
