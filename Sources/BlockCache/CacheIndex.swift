import CSQLite
import Foundation
import Locking
import Synchronization

/// What the index knows about one cached object.
public struct CachedObject: Sendable {
    public let id: Int64
    /// Checksums (CRC-32) of the blocks whose bytes are on disk, by block number.
    public let blocks: [Int: UInt32]
    /// The object changed at the source (size or ETag): its old blocks were dropped.
    public let invalidated: Bool
    /// Bytes of the old blocks dropped (for the cap's count).
    public var droppedBytes = 0
}

/// The SQLite index of the cache: objects, blocks present with their checksums, and listings.
///
/// Each thread gets its own connection, opened on first use and closed when the thread exits
/// (a pthread key destructor). A connection is never shared across threads.
public final class CacheIndex: Sendable {
    /// 4: 16 KiB blocks (3: 1 MiB blocks; 2: data files named by FNV-1a, whose 64 bits let two
    /// objects share a file).
    public static let schemaVersion = 4
    /// Bytes per block, fixed by the cache format: block `i` of an object sits at offset `i × blockSize`.
    /// The unit of presence and of checksums: small, so a scattered read fetches little more than it
    /// needs (an HDF5 chunk, a header); sequential reads still go as multi-MiB requests of many blocks.
    public static let blockSize = 16 << 10
    /// The directory the index lives in; it also holds the data files the index describes.
    public let directory: CacheDirectory
    public let path: String
    /// Set when the file found at `path` was unreadable and a fresh index replaced it.
    public let recoveredFromCorruption: String?
    /// Set when an older schema was upgraded, saying what was forgotten (for the log).
    public let upgradeNote: String?

    private let threadKey: pthread_key_t
    private let counter = ConnectionCounter()
    /// Bumped each time a damaged index is replaced while running: older connections are reopened.
    private let generation = Atomic<Int>(0)
    /// Serialises replacing a damaged index (rare); the hot path only reads `generation`.
    private let recovery = Locked<Recovery>(Recovery())
    private struct Recovery { var handler: (@Sendable (String) -> Void)?; var unreported: [String] = [] }

    /// Connections currently open, over all threads.
    public var openConnectionCount: Int { counter.value.load(ordering: .relaxed) }

    public init(directory: CacheDirectory) throws(SQLiteError) {
        self.directory = directory
        path = directory.indexPath
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            // Runs on the exiting thread: drops that thread's connection.
            if let pointer { Unmanaged<ThreadConnection>.fromOpaque(pointer).release() }
        }
        threadKey = key
        do {
            upgradeNote = try CacheIndex.createSchema(path: path, directory: directory)
            recoveredFromCorruption = nil
        } catch where error.isCorruption {
            let aside = directory.moveIndexAside()
            upgradeNote = try CacheIndex.createSchema(path: path, directory: directory)
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

    /// The calling thread's connection, opened on first use (and again after a recovery).
    func connection() throws(SQLiteError) -> SQLiteConnection {
        let current = generation.load(ordering: .acquiring)
        if let pointer = pthread_getspecific(threadKey) {
            let owned = Unmanaged<ThreadConnection>.fromOpaque(pointer)
            if owned.takeUnretainedValue().generation == current { return owned.takeUnretainedValue().connection }
            pthread_setspecific(threadKey, nil)
            owned.release()
        }
        let owned = ThreadConnection(connection: try CacheIndex.open(path: path), counter: counter, generation: current)
        pthread_setspecific(threadKey, Unmanaged.passRetained(owned).toOpaque())
        return owned.connection
    }

    /// Called with a note each time a damaged index is found while running and replaced; at once
    /// for a replacement before this was set (the mount reads the index before the core exists).
    public func onRecovery(_ body: @escaping @Sendable (String) -> Void) {
        let missed = recovery.withLock { r -> [String] in
            r.handler = body
            defer { r.unreported = [] }
            return r.unreported
        }
        for note in missed { body(note) }
    }

    /// Runs `body` on this thread's connection. A damaged index (interior pages, found only when a
    /// query reaches them) is moved aside and replaced by a fresh one, and `body` runs once more:
    /// the cache forgets what it held, reads go on.
    @discardableResult
    private func run<T>(_ body: (SQLiteConnection) throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        let before = generation.load(ordering: .acquiring)
        do {
            return try body(try connection())
        } catch where error.isCorruption {
            try replaceDamagedIndex(seenGeneration: before, error: error)
            return try body(try connection())
        }
    }

    private func replaceDamagedIndex(seenGeneration: Int, error: SQLiteError) throws(SQLiteError) {
        let result: Result<(String, (@Sendable (String) -> Void)?)?, SQLiteError> = recovery.withLock { r in
            // Another thread replaced it since this one's query began: just use the new one.
            guard generation.load(ordering: .acquiring) == seenGeneration else { return .success(nil) }
            let aside = directory.moveIndexAside()
            do throws(SQLiteError) {
                _ = try CacheIndex.createSchema(path: path, directory: directory)
            } catch let failure {
                return .failure(failure)
            }
            // The blocks the old index described are unknown now: their files go too, or they
            // would sit outside the cap for good.
            directory.removeAllDataFiles()
            generation.add(1, ordering: .releasing)
            let note = "the cache index was found damaged while running (\(error.message)); moved it to \(aside) and started a fresh one: the cache starts empty"
            if r.handler == nil { r.unreported.append(note) }
            return .success((note, r.handler))
        }
        if let (note, handler) = try result.get() { handler?(note) }
    }

    private static func open(path: String) throws(SQLiteError) -> SQLiteConnection {
        let connection = try SQLiteConnection(path: path)
        try connection.execute("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
        return connection
    }

    /// Creates or upgrades the schema; returns what an upgrade forgot, if anything.
    private static func createSchema(path: String, directory: CacheDirectory) throws(SQLiteError) -> String? {
        do { try directory.prepareIndexFiles() } catch {
            throw SQLiteError(code: error.code == ENOSPC ? SQLITE_FULL : SQLITE_CANTOPEN, message: error.description, systemErrno: error.code ?? 0)
        }
        let connection = try open(path: path)
        defer { connection.close() }
        try connection.execute("PRAGMA journal_mode=WAL")
        let version = try connection.query("PRAGMA user_version").first?.first?.int ?? 0
        // A newer goesfs's index may mean something else by the same rows: never misread it.
        guard version <= CacheIndex.schemaVersion else {
            throw SQLiteError(code: SQLITE_CANTOPEN, message: "the cache index was written by a newer goesfs (schema \(version), this one knows \(CacheIndex.schemaVersion)): use that goesfs, or another --cache-dir")
        }
        // Facts about the mounts (the last cap): any schema may hold it, none reads it for blocks.
        try connection.execute("CREATE TABLE IF NOT EXISTS settings(name TEXT PRIMARY KEY, value) WITHOUT ROWID")
        guard version < CacheIndex.schemaVersion else { return nil }
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
                PRAGMA user_version = 4;
                COMMIT;
                """)
            return nil
        }
        // 1 checksummed with zlib's CRC-32, 2 named data files by FNV-1a, 3 checksummed 1 MiB
        // blocks: none of their rows describe version 4's blocks, so they are forgotten (the rows
        // first, so a crash in between leaves only stray files, never rows that point at the wrong
        // bytes) and fetched again when read. Objects and listings are kept.
        let blocks = try connection.query("SELECT COUNT(*) FROM blocks").first?.first?.int ?? 0
        try connection.execute("BEGIN; DELETE FROM blocks; PRAGMA user_version = 4; COMMIT;")
        directory.removeAllDataFiles()
        let change = version == 3 ? "16 KiB blocks instead of 1 MiB" : "data files named by SHA-256, 16 KiB blocks"
        return "upgraded the cache index from schema \(version) to 4 (\(change)): forgot \(blocks) cached blocks of the old format; they are fetched again when read"
    }

    public static var sqliteVersion: String { String(cString: sqlite3_libversion()) }

    /// Folds the write-ahead log into the database file: a clean shutdown leaves one file behind.
    public func checkpoint() throws(SQLiteError) {
        try run { db throws(SQLiteError) in try db.query("PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    // MARK: Objects and blocks

    /// Finds or creates the object's row; drops its blocks if the source's size or ETag changed.
    public func openObject(bucket: String, key: String, size: Int, etag: String) throws(SQLiteError) -> CachedObject {
        try run { db throws(SQLiteError) in try openObject(db, bucket: bucket, key: key, size: size, etag: etag) }
    }

    private func openObject(_ db: SQLiteConnection, bucket: String, key: String, size: Int, etag: String) throws(SQLiteError) -> CachedObject {
        let now = Date().timeIntervalSince1970
        let known = try db.query("SELECT id, size, etag FROM objects WHERE bucket = ? AND key = ?", [.text(bucket), .text(key)])
        if let row = known.first, let id = row[0].int, row[1].int == Int64(size) && row[2].string == etag {
            var blocks: [Int: UInt32] = [:]
            for row in try db.query("SELECT block, crc, length FROM blocks WHERE object_id = ?", [.integer(id)]) {
                // A row no block could have written is ignored here; `cache verify` drops it.
                let stored = BlockRow(row)
                guard stored.extent != nil, let block = stored.validBlock, let crc = stored.crc else { continue }
                blocks[block] = crc
            }
            // Best effort: a full disk must not stop a cached file from opening.
            _ = try? db.query("UPDATE objects SET last_access = ? WHERE id = ?", [.real(now), .integer(id)])
            return CachedObject(id: id, blocks: blocks, invalidated: false)
        }
        return try db.transaction { () throws(SQLiteError) -> CachedObject in
            let found = try db.query("SELECT id, size, etag FROM objects WHERE bucket = ? AND key = ?", [.text(bucket), .text(key)])
            if let row = found.first, let id = row[0].int {
                if row[1].int == Int64(size) && row[2].string == etag {
                    try db.query("UPDATE objects SET last_access = ? WHERE id = ?", [.real(now), .integer(id)])
                    var blocks: [Int: UInt32] = [:]
                    for row in try db.query("SELECT block, crc, length FROM blocks WHERE object_id = ?", [.integer(id)]) {
                        // A row no block could have written is ignored here; `cache verify` drops it.
                        let stored = BlockRow(row)
                        guard stored.extent != nil, let block = stored.validBlock, let crc = stored.crc else { continue }
                        blocks[block] = crc
                    }
                    return CachedObject(id: id, blocks: blocks, invalidated: false)
                }
                let dropped = try db.query("SELECT COALESCE(SUM(length), 0) FROM blocks WHERE object_id = ?", [.integer(id)]).first?.first?.int ?? 0
                try db.query("DELETE FROM blocks WHERE object_id = ?", [.integer(id)])
                try db.query("UPDATE objects SET size = ?, etag = ?, last_access = ? WHERE id = ?",
                             [.integer(Int64(size)), .text(etag), .real(now), .integer(id)])
                return CachedObject(id: id, blocks: [:], invalidated: true, droppedBytes: Int(dropped))
            }
            try db.query("INSERT INTO objects(bucket, key, size, etag, last_access) VALUES(?, ?, ?, ?, ?)",
                         [.text(bucket), .text(key), .integer(Int64(size)), .text(etag), .real(now)])
            let id = try db.query("SELECT last_insert_rowid()").first![0].int!
            return CachedObject(id: id, blocks: [:], invalidated: false)
        }
    }

    /// Records that a block's `length` bytes are on disk. Call only after they were written.
    public func recordBlock(objectID: Int64, block: Int, crc: UInt32, length: Int) throws(SQLiteError) {
        try run { db throws(SQLiteError) in try db.query("INSERT OR REPLACE INTO blocks(object_id, block, crc, length) VALUES(?, ?, ?, ?)",
                               [.integer(objectID), .integer(Int64(block)), .integer(Int64(crc)), .integer(Int64(length))]) }
    }

    /// Records blocks written to disk, in one transaction (a sequential read stores 64 a MiB).
    public func recordBlocks(objectID: Int64, _ blocks: [(block: Int, crc: UInt32, length: Int)]) throws(SQLiteError) {
        guard !blocks.isEmpty else { return }
        try run { db throws(SQLiteError) in
            try db.transaction { () throws(SQLiteError) in
                for entry in blocks {
                    try db.query("INSERT OR REPLACE INTO blocks(object_id, block, crc, length) VALUES(?, ?, ?, ?)",
                                 [.integer(objectID), .integer(Int64(entry.block)), .integer(Int64(entry.crc)), .integer(Int64(entry.length))])
                }
            }
        }
    }

    /// Bytes of all blocks recorded, over every object.
    public func cachedBytes() throws(SQLiteError) -> Int {
        Int(try run { db throws(SQLiteError) in try db.query("SELECT COALESCE(SUM(length), 0) FROM blocks") }.first?.first?.int ?? 0)
    }

    /// Objects with cached blocks, least recently used first (the eviction order), leaving out
    /// `excluded` (those in use: eviction frees only cold blocks of them).
    public func leastRecentlyUsed(limit: Int, excluding excluded: Set<Int64> = [])
        throws(SQLiteError) -> [(id: Int64, bucket: String, key: String, bytes: Int, lastAccess: Double)] {
        let list = "[" + excluded.map(String.init).joined(separator: ",") + "]"
        let sql = "SELECT o.id, o.bucket, o.key, SUM(b.length), o.last_access FROM objects o JOIN blocks b ON b.object_id = o.id "
            + "WHERE o.id NOT IN (SELECT value FROM json_each(?)) GROUP BY o.id ORDER BY o.last_access ASC LIMIT ?"
        return try run { db throws(SQLiteError) in try db.query(sql, [.text(list), .integer(Int64(limit))]) }.compactMap { row in
            // An edited index may hold anything: such a row is still evicted, never trapped on.
            guard let id = row[0].int else { return nil }
            return (id, row[1].string ?? "", row[2].string ?? "", Int(row[3].int ?? 0), row[4].double ?? 0)
        }
    }

    /// Forgets all blocks of an object (evicted, or changed at the source). Its row stays, so its
    /// number is never given to another object: SQLite reuses the largest rowid once deleted, and
    /// a download or a verified-block mark still holding the old number must not land on a new object.
    public func removeObject(id: Int64) throws(SQLiteError) {
        try run { db throws(SQLiteError) in try db.query("DELETE FROM blocks WHERE object_id = ?", [.integer(id)]) }
    }

    /// Forgets blocks of an object in one transaction (evicted while the object is open).
    public func dropBlocks(objectID: Int64, _ blocks: [Int]) throws(SQLiteError) {
        guard !blocks.isEmpty else { return }
        try run { db throws(SQLiteError) in
            try db.transaction { () throws(SQLiteError) in
                for block in blocks {
                    try db.query("DELETE FROM blocks WHERE object_id = ? AND block = ?", [.integer(objectID), .integer(Int64(block))])
                }
            }
        }
    }

    /// Marks an object used now (its last reader closed it): eviction goes least recently used first.
    public func touch(objectID: Int64) throws(SQLiteError) {
        try run { db throws(SQLiteError) in
            try db.query("UPDATE objects SET last_access = ? WHERE id = ?", [.real(Date().timeIntervalSince1970), .integer(objectID)])
        }
    }

    /// The cap the last mount ran with, for `goesfs cache info` (best effort: nil if unknown).
    public func recordCap(_ bytes: Int) throws(SQLiteError) {
        try run { db throws(SQLiteError) in
            try db.query("INSERT OR REPLACE INTO settings(name, value) VALUES('cap_bytes', ?)", [.integer(Int64(bytes))])
        }
    }

    public func recordedCap() -> Int? {
        (try? run { db throws(SQLiteError) in try db.query("SELECT value FROM settings WHERE name = 'cap_bytes'") })?
            .first?.first?.int.map { Int($0) }
    }

    // MARK: Maintenance (offline)

    public struct ObjectRow: Sendable { public let id: Int64, bucket: String, key: String; public var blockSize: Int { CacheIndex.blockSize } }

    public func allObjects() throws(SQLiteError) -> [ObjectRow] {
        try run { db throws(SQLiteError) in try db.query("SELECT id, bucket, key FROM objects") }.compactMap { row in
            guard let id = row[0].int else { return nil }
            return ObjectRow(id: id, bucket: row[1].string ?? "", key: row[2].string ?? "")
        }
    }

    /// A block's row as stored, which a damaged or edited index may fill with anything.
    public struct BlockRow: Sendable {
        /// The stored block number, to delete exactly this row.
        let stored: SQLValue
        public let crc: UInt32?
        public let length: Int?

        init(_ row: [SQLValue]) {
            stored = row[0]
            crc = row[1].int.flatMap { UInt32(exactly: $0) }
            length = row[2].int.flatMap { Int(exactly: $0) }
        }

        /// The block number, if its bytes `[block × blockSize, + length)` can exist in a file.
        public var validBlock: Int? {
            guard let block = stored.int.flatMap({ Int(exactly: $0) }), block >= 0 else { return nil }
            let start = block.multipliedReportingOverflow(by: CacheIndex.blockSize)
            guard !start.overflow, !start.partialValue.addingReportingOverflow(CacheIndex.blockSize).overflow else { return nil }
            return block
        }

        /// The offset and length to read back, if the row describes a block that could exist.
        public var extent: (offset: Int, length: Int)? {
            guard let block = validBlock, crc != nil, let length, length > 0, length <= CacheIndex.blockSize else { return nil }
            return (block * CacheIndex.blockSize, length)
        }

        public var name: String { stored.int.map(String.init) ?? "\(stored)" }
    }

    /// Every block row recorded for an object, as stored.
    public func blocks(objectID: Int64) throws(SQLiteError) -> [BlockRow] {
        try run { db throws(SQLiteError) in try db.query("SELECT block, crc, length FROM blocks WHERE object_id = ?", [.integer(objectID)]) }.map(BlockRow.init)
    }

    /// Forgets a block row exactly as it was stored (`cache verify`, for rows that make no sense).
    public func dropBlock(objectID: Int64, row: BlockRow) throws(SQLiteError) {
        try run { db throws(SQLiteError) in try db.query("DELETE FROM blocks WHERE object_id = ? AND block = ?", [.integer(objectID), row.stored]) }
    }

    public func blockSummary() throws(SQLiteError) -> (objects: Int, blocks: Int, bytes: Int) {
        let row = try run { db throws(SQLiteError) in try db.query(
            "SELECT (SELECT COUNT(*) FROM objects WHERE id IN (SELECT object_id FROM blocks)), COUNT(*), COALESCE(SUM(length), 0) FROM blocks") }.first!
        return (Int(row[0].int ?? 0), Int(row[1].int ?? 0), Int(row[2].int ?? 0))
    }

    // MARK: Listings

    public func storedListing(bucket: String, prefix: String) throws(SQLiteError) -> (fetchedAt: Double, body: String)? {
        let rows = try run { db throws(SQLiteError) in
            try db.query("SELECT fetched_at, body FROM listings WHERE bucket = ? AND prefix = ?", [.text(bucket), .text(prefix)])
        }
        guard let row = rows.first,
              let at = row[0].double, let body = row[1].string else { return nil }
        return (at, body)
    }

    /// Stores a folder's listing; returns the bytes of the body it replaced (nil when there was
    /// none), so the caller can keep a running total without summing the table.
    @discardableResult
    public func storeListing(bucket: String, prefix: String, fetchedAt: Double, body: String) throws(SQLiteError) -> Int? {
        try run { db throws(SQLiteError) in
            try db.transaction { () throws(SQLiteError) -> Int? in
                let old = try db.query("SELECT length(CAST(body AS BLOB)) FROM listings WHERE bucket = ? AND prefix = ?",
                                       [.text(bucket), .text(prefix)]).first?.first?.int
                _ = try db.query("INSERT OR REPLACE INTO listings(bucket, prefix, fetched_at, body) VALUES(?, ?, ?, ?)",
                                 [.text(bucket), .text(prefix), .real(fetchedAt), .text(body)])
                return old.map(Int.init)
            }
        }
    }

    /// Drops a folder's listing; returns the bytes of the body dropped (nil when there was none).
    @discardableResult
    public func dropListing(bucket: String, prefix: String) throws(SQLiteError) -> Int? {
        try run { db throws(SQLiteError) in
            try db.transaction { () throws(SQLiteError) -> Int? in
                let old = try db.query("SELECT length(CAST(body AS BLOB)) FROM listings WHERE bucket = ? AND prefix = ?",
                                       [.text(bucket), .text(prefix)]).first?.first?.int
                _ = try db.query("DELETE FROM listings WHERE bucket = ? AND prefix = ?", [.text(bucket), .text(prefix)])
                return old.map(Int.init)
            }
        }
    }

    /// Listings stored and the bytes of their bodies (UTF-8 JSON).
    public func listingSummary() throws(SQLiteError) -> (count: Int, bytes: Int) {
        let row = try run { db throws(SQLiteError) in
            try db.query("SELECT COUNT(*), COALESCE(SUM(length(CAST(body AS BLOB))), 0) FROM listings")
        }.first
        return (Int(row?[0].int ?? 0), Int(row?[1].int ?? 0))
    }

    /// When the stored bodies exceed `maxBytes`, drops the listings fetched longest ago until they
    /// are within 90 % of it (so pruning is rare). Returns how many were dropped and what is left.
    @discardableResult
    public func pruneListings(maxBytes: Int) throws(SQLiteError) -> (removed: Int, count: Int, bytes: Int) {
        try run { db throws(SQLiteError) in
            try db.transaction { () throws(SQLiteError) -> (removed: Int, count: Int, bytes: Int) in
                let total = try db.query("SELECT COUNT(*), COALESCE(SUM(length(CAST(body AS BLOB))), 0) FROM listings").first
                var count = Int(total?[0].int ?? 0), bytes = Int(total?[1].int ?? 0), removed = 0
                guard bytes > maxBytes else { return (0, count, bytes) }
                let target = maxBytes / 10 * 9
                let oldest = try db.query("SELECT bucket, prefix, length(CAST(body AS BLOB)) FROM listings ORDER BY fetched_at ASC")
                for row in oldest where bytes > target {
                    guard let bucket = row[0].string, let prefix = row[1].string else { continue }
                    _ = try db.query("DELETE FROM listings WHERE bucket = ? AND prefix = ?", [.text(bucket), .text(prefix)])
                    bytes -= Int(row[2].int ?? 0)
                    count -= 1
                    removed += 1
                }
                return (removed, count, bytes)
            }
        }
    }
}

/// Counts open connections, so tests can prove that exiting threads close theirs.
final class ConnectionCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// A thread's connection, kept alive by the pthread key until the thread exits.
final class ThreadConnection {
    let connection: SQLiteConnection
    /// The index generation it was opened on (see `CacheIndex.generation`).
    let generation: Int
    private let counter: ConnectionCounter

    init(connection: SQLiteConnection, counter: ConnectionCounter, generation: Int) {
        self.connection = connection
        self.generation = generation
        self.counter = counter
        counter.value.add(1, ordering: .relaxed)
    }

    deinit {
        connection.close()
        counter.value.subtract(1, ordering: .relaxed)
    }
}
