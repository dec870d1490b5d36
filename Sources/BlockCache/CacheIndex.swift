import CSQLite
import Foundation
import Synchronization

/// What the index knows about one cached object.
public struct CachedObject: Sendable {
    public let id: Int64
    /// Checksums (CRC-32) of the blocks whose bytes are on disk, by block number.
    public let blocks: [Int: UInt32]
    /// The object changed at the source (size or ETag): its old blocks were dropped.
    public let invalidated: Bool
}

/// The SQLite index of the cache: objects, blocks present with their checksums, and listings.
///
/// Each thread gets its own connection, opened on first use and closed when the thread exits
/// (a pthread key destructor). A connection is never shared across threads.
public final class CacheIndex: Sendable {
    public static let schemaVersion = 2
    /// Bytes per block, fixed by the cache format: block `i` of an object sits at offset `i × blockSize`.
    public static let blockSize = 1 << 20
    public let path: String
    /// Set when the file found at `path` was unreadable and a fresh index replaced it.
    public let recoveredFromCorruption: String?

    private let threadKey: pthread_key_t
    private let counter = ConnectionCounter()

    /// Connections currently open, over all threads.
    public var openConnectionCount: Int { counter.value.load(ordering: .relaxed) }

    public init(path: String) throws(SQLiteError) {
        self.path = path
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            // Runs on the exiting thread: drops that thread's connection.
            if let pointer { Unmanaged<ThreadConnection>.fromOpaque(pointer).release() }
        }
        threadKey = key
        do {
            try CacheIndex.createSchema(path: path)
            recoveredFromCorruption = nil
        } catch where error.isCorruption {
            let aside = path + ".corrupt-\(Int(Date().timeIntervalSince1970))"
            try? FileManager.default.moveItem(atPath: path, toPath: aside)
            for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            try CacheIndex.createSchema(path: path)
            recoveredFromCorruption = "the cache index was unreadable (\(error.message)); moved it to \(aside) and started a fresh one"
        }
    }

    deinit {
        if let pointer = pthread_getspecific(threadKey) {
            pthread_setspecific(threadKey, nil)
            Unmanaged<ThreadConnection>.fromOpaque(pointer).release()
        }
        pthread_key_delete(threadKey)
    }

    /// The calling thread's connection, opened on first use.
    func connection() throws(SQLiteError) -> SQLiteConnection {
        if let pointer = pthread_getspecific(threadKey) {
            return Unmanaged<ThreadConnection>.fromOpaque(pointer).takeUnretainedValue().connection
        }
        let owned = ThreadConnection(connection: try CacheIndex.open(path: path), counter: counter)
        pthread_setspecific(threadKey, Unmanaged.passRetained(owned).toOpaque())
        return owned.connection
    }

    private static func open(path: String) throws(SQLiteError) -> SQLiteConnection {
        let connection = try SQLiteConnection(path: path)
        try connection.execute("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
        return connection
    }

    private static func createSchema(path: String) throws(SQLiteError) {
        let connection = try open(path: path)
        defer { connection.close() }
        try connection.execute("PRAGMA journal_mode=WAL")
        let version = try connection.query("PRAGMA user_version").first?.first?.int ?? 0
        guard version < CacheIndex.schemaVersion else { return }
        if version < 1 {
            try connection.execute("""
                BEGIN;
                CREATE TABLE IF NOT EXISTS objects(
                    id INTEGER PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
                    size INTEGER NOT NULL, etag TEXT NOT NULL, last_access REAL NOT NULL,
                    UNIQUE(bucket, key));
                CREATE TABLE IF NOT EXISTS blocks(
                    object_id INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
                    block INTEGER NOT NULL, crc INTEGER NOT NULL, length INTEGER NOT NULL,
                    PRIMARY KEY(object_id, block)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS listings(
                    bucket TEXT NOT NULL, prefix TEXT NOT NULL, fetched_at REAL NOT NULL, body TEXT NOT NULL,
                    PRIMARY KEY(bucket, prefix)) WITHOUT ROWID;
                PRAGMA user_version = 2;
                COMMIT;
                """)
        } else if version < 2 {
            // Version 2 checksums blocks with CRC-32C instead of zlib's CRC-32: old checksums cannot
            // vouch for anything, so those blocks are forgotten (and fetched again when read).
            try connection.execute("BEGIN; DELETE FROM blocks; PRAGMA user_version = 2; COMMIT;")
        }
    }

    public static var sqliteVersion: String { String(cString: sqlite3_libversion()) }

    /// Folds the write-ahead log into the database file: a clean shutdown leaves one file behind.
    public func checkpoint() throws(SQLiteError) {
        try connection().query("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    // MARK: Objects and blocks

    /// Finds or creates the object's row; drops its blocks if the source's size or ETag changed.
    public func openObject(bucket: String, key: String, size: Int, etag: String) throws(SQLiteError) -> CachedObject {
        let db = try connection()
        let now = Date().timeIntervalSince1970
        return try db.transaction { () throws(SQLiteError) -> CachedObject in
            let found = try db.query("SELECT id, size, etag FROM objects WHERE bucket = ? AND key = ?", [.text(bucket), .text(key)])
            if let row = found.first, let id = row[0].int {
                if row[1].int == Int64(size) && row[2].string == etag {
                    try db.query("UPDATE objects SET last_access = ? WHERE id = ?", [.real(now), .integer(id)])
                    var blocks: [Int: UInt32] = [:]
                    for block in try db.query("SELECT block, crc FROM blocks WHERE object_id = ?", [.integer(id)]) {
                        blocks[Int(block[0].int!)] = UInt32(truncatingIfNeeded: block[1].int!)
                    }
                    return CachedObject(id: id, blocks: blocks, invalidated: false)
                }
                try db.query("DELETE FROM blocks WHERE object_id = ?", [.integer(id)])
                try db.query("UPDATE objects SET size = ?, etag = ?, last_access = ? WHERE id = ?",
                             [.integer(Int64(size)), .text(etag), .real(now), .integer(id)])
                return CachedObject(id: id, blocks: [:], invalidated: true)
            }
            try db.query("INSERT INTO objects(bucket, key, size, etag, last_access) VALUES(?, ?, ?, ?, ?)",
                         [.text(bucket), .text(key), .integer(Int64(size)), .text(etag), .real(now)])
            let id = try db.query("SELECT last_insert_rowid()").first![0].int!
            return CachedObject(id: id, blocks: [:], invalidated: false)
        }
    }

    /// Records that a block's `length` bytes are on disk. Call only after they were written.
    public func recordBlock(objectID: Int64, block: Int, crc: UInt32, length: Int) throws(SQLiteError) {
        try connection().query("INSERT OR REPLACE INTO blocks(object_id, block, crc, length) VALUES(?, ?, ?, ?)",
                               [.integer(objectID), .integer(Int64(block)), .integer(Int64(crc)), .integer(Int64(length))])
    }

    /// Bytes of all blocks recorded, over every object.
    public func cachedBytes() throws(SQLiteError) -> Int {
        Int(try connection().query("SELECT COALESCE(SUM(length), 0) FROM blocks").first?.first?.int ?? 0)
    }

    /// Objects with cached blocks, least recently opened first: the eviction order.
    public func leastRecentlyUsed(limit: Int) throws(SQLiteError) -> [(id: Int64, bucket: String, key: String, bytes: Int)] {
        let sql = "SELECT o.id, o.bucket, o.key, SUM(b.length) FROM objects o JOIN blocks b ON b.object_id = o.id "
            + "GROUP BY o.id ORDER BY o.last_access ASC LIMIT ?"
        return try connection().query(sql, [.integer(Int64(limit))]).map { row in
            (row[0].int!, row[1].string!, row[2].string!, Int(row[3].int!))
        }
    }

    /// Forgets an object and all its blocks (after its data file was removed).
    public func removeObject(id: Int64) throws(SQLiteError) {
        let db = try connection()
        try db.transaction { () throws(SQLiteError) in
            try db.query("DELETE FROM blocks WHERE object_id = ?", [.integer(id)])
            try db.query("DELETE FROM objects WHERE id = ?", [.integer(id)])
        }
    }

    /// Forgets a block (it failed verification or its file vanished).
    public func dropBlock(objectID: Int64, block: Int) throws(SQLiteError) {
        try connection().query("DELETE FROM blocks WHERE object_id = ? AND block = ?", [.integer(objectID), .integer(Int64(block))])
    }

    // MARK: Maintenance (offline)

    public struct ObjectRow: Sendable { public let id: Int64, bucket: String, key: String; public var blockSize: Int { CacheIndex.blockSize } }

    public func allObjects() throws(SQLiteError) -> [ObjectRow] {
        try connection().query("SELECT id, bucket, key FROM objects").map { ObjectRow(id: $0[0].int!, bucket: $0[1].string!, key: $0[2].string!) }
    }

    /// (block, crc, length) of every block recorded for an object.
    public func blocks(objectID: Int64) throws(SQLiteError) -> [(Int, UInt32, Int)] {
        try connection().query("SELECT block, crc, length FROM blocks WHERE object_id = ?", [.integer(objectID)]).map {
            (Int($0[0].int!), UInt32(truncatingIfNeeded: $0[1].int!), Int($0[2].int!))
        }
    }

    public func blockSummary() throws(SQLiteError) -> (objects: Int, blocks: Int, bytes: Int) {
        let row = try connection().query(
            "SELECT (SELECT COUNT(*) FROM objects WHERE id IN (SELECT object_id FROM blocks)), COUNT(*), COALESCE(SUM(length), 0) FROM blocks").first!
        return (Int(row[0].int!), Int(row[1].int!), Int(row[2].int!))
    }

    // MARK: Listings

    public func storedListing(bucket: String, prefix: String) throws(SQLiteError) -> (fetchedAt: Double, body: String)? {
        guard let row = try connection().query("SELECT fetched_at, body FROM listings WHERE bucket = ? AND prefix = ?",
                                                [.text(bucket), .text(prefix)]).first,
              let at = row[0].double, let body = row[1].string else { return nil }
        return (at, body)
    }

    public func storeListing(bucket: String, prefix: String, fetchedAt: Double, body: String) throws(SQLiteError) {
        try connection().query("INSERT OR REPLACE INTO listings(bucket, prefix, fetched_at, body) VALUES(?, ?, ?, ?)",
                               [.text(bucket), .text(prefix), .real(fetchedAt), .text(body)])
    }

    public func dropListing(bucket: String, prefix: String) throws(SQLiteError) {
        try connection().query("DELETE FROM listings WHERE bucket = ? AND prefix = ?", [.text(bucket), .text(prefix)])
    }
}

/// Counts open connections, so tests can prove that exiting threads close theirs.
final class ConnectionCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// A thread's connection, kept alive by the pthread key until the thread exits.
final class ThreadConnection {
    let connection: SQLiteConnection
    private let counter: ConnectionCounter

    init(connection: SQLiteConnection, counter: ConnectionCounter) {
        self.connection = connection
        self.counter = counter
        counter.value.add(1, ordering: .relaxed)
    }

    deinit {
        connection.close()
        counter.value.subtract(1, ordering: .relaxed)
    }
}
