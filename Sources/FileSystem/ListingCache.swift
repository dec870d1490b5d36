import BlockCache
import Foundation
import GOESCatalog
import Locking
import Logging
import ObjectStore

/// Directory listings: in memory, persisted in the cache index, and refreshed by the lifetime policy.
///
/// A past hour's folder never changes, so it is kept for good; the current hour and the levels above
/// it expire after a short time. With the network down, a stale listing is better than none.
/// Both copies are bounded (`Policies.listingsInMemory`, `listingBytesOnDisk`): memory keeps the
/// most recently used listings, the index the most recently fetched; a folder in neither is
/// listed again when next used.
final class ListingCache: Sendable {
    struct Entry: Sendable {
        let listing: Listing
        let fetchedAt: Double
        let expiresAt: Double
        /// The listing indexed once, so a lookup in a folder of thousands is not a linear search.
        let objectsByKey: [String: ListedObject]
        let prefixes: Set<String>
        /// The size of the listing as stored (its JSON body): what the bounds and `.stats` count.
        let bodyBytes: Int

        init(listing: Listing, fetchedAt: Double, expiresAt: Double, bodyBytes: Int) {
            self.listing = listing
            self.fetchedAt = fetchedAt
            self.expiresAt = expiresAt
            self.bodyBytes = bodyBytes
            objectsByKey = Dictionary(listing.objects.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
            prefixes = Set(listing.commonPrefixes)
        }
    }

    /// How long a fresh listing of a prefix may be used without asking again.
    static func lifetime(prefix: String, now: Double) -> Double {
        if let hour = HourPrefix(prefix: prefix), hour.endSecondsSinceEpoch + 3600 < now { return 365 * 86400 }
        return 60
    }

    private let client: any ObjectSource
    private let index: CacheIndex
    private let logger: Logger
    private let maxInMemory: Int
    private let maxBytesOnDisk: Int
    private let memory = Locked(RecentListings())
    /// The index's listings, counted as they are stored and dropped, and exactly at each prune.
    private let disk = Locked((count: 0, bytes: 0))
    private let flights = Locked<[String: ListingFlight]>([:])

    init(client: any ObjectSource, index: CacheIndex, policies: Policies = Policies(), logger: Logger) {
        self.client = client
        self.index = index
        self.logger = logger
        maxInMemory = max(1, policies.listingsInMemory)
        maxBytesOnDisk = policies.listingBytesOnDisk
        if let stored = try? index.listingSummary() { disk.withLock { $0 = stored } }
    }

    /// What memory and the index hold now, with their bounds (for `.stats`).
    var counts: CachedListings {
        var counts = CachedListings(memoryLimit: maxInMemory, diskLimitBytes: maxBytesOnDisk)
        (counts.inMemory, counts.bytesInMemory) = memory.withLock { ($0.entries.count, $0.bytes) }
        (counts.onDisk, counts.bytesOnDisk) = disk.withLock { ($0.count, $0.bytes) }
        return counts
    }

    /// The fresh listing of a folder if memory holds one; never asks the server.
    func cached(bucket: String, prefix: String) -> Entry? {
        guard let entry = memory.withLock({ $0.use(bucket + "/" + prefix) }), entry.expiresAt > Date().timeIntervalSince1970 else { return nil }
        return entry
    }

    /// Whether memory holds a folder's listing, fresh or not (tests: it does not count as a use).
    func isHeld(bucket: String, prefix: String) -> Bool {
        memory.withLock { $0.entries[bucket + "/" + prefix] != nil }
    }

    func listing(bucket: String, prefix: String) throws(FSError) -> Entry {
        let id = bucket + "/" + prefix
        if let entry = memory.withLock({ $0.use(id) }), entry.expiresAt > Date().timeIntervalSince1970 { return entry }
        // One request per folder however many readers ask at once (satpy opening a whole hour).
        let (flight, leads) = flights.withLock { flights -> (ListingFlight, Bool) in
            if let flight = flights[id] { return (flight, false) }
            let flight = ListingFlight()
            flights[id] = flight
            return (flight, true)
        }
        guard leads else { return try flight.wait().get() }
        let result = Result { () throws(FSError) -> Entry in try load(bucket: bucket, prefix: prefix, id: id) }
        flights.withLock { $0[id] = nil }
        flight.finish(result)
        return try result.get()
    }

    private func load(bucket: String, prefix: String, id: String) throws(FSError) -> Entry {
        let now = Date().timeIntervalSince1970
        if let entry = memory.withLock({ $0.use(id) }), entry.expiresAt > now { return entry }
        let stored = storedEntry(bucket: bucket, prefix: prefix)
        if let stored, stored.expiresAt > now {
            remember(id, stored)
            return stored
        }
        do {
            let (listing, rejected) = try client.list(bucket: bucket, prefix: prefix)
            if !rejected.isEmpty {
                let shown = rejected.prefix(5).joined(separator: "; ")
                logger.warning("listing \(id): left out \(rejected.count) entries the filesystem cannot show: \(shown)\(rejected.count > 5 ? "; …" : "")")
            }
            let body = (try? JSONEncoder().encode(listing)).map { String(decoding: $0, as: UTF8.self) }
            let entry = Entry(listing: listing, fetchedAt: now, expiresAt: now + ListingCache.lifetime(prefix: prefix, now: now),
                              bodyBytes: body?.utf8.count ?? 0)
            remember(id, entry)
            if let body { store(bucket: bucket, prefix: prefix, fetchedAt: now, body: body) }
            return entry
        } catch {
            if let stale = stored ?? memory.withLock({ $0.use(id) }), error.category != .notFound {
                logger.warning("listing \(id) failed (\(error)); serving the copy from \(Timestamp.iso(stale.fetchedAt))")
                return stale
            }
            throw FSError(error)
        }
    }

    /// Drops a folder's listing (memory and index): an object in it changed at the source.
    func forget(bucket: String, prefix: String) {
        memory.withLock { $0.remove(bucket + "/" + prefix) }
        do {
            if let dropped = try index.dropListing(bucket: bucket, prefix: prefix) {
                disk.withLock { $0 = (max(0, $0.count - 1), max(0, $0.bytes - dropped)) }
            }
        } catch {
            logger.warning("could not drop the stored listing of \(bucket)/\(prefix): \(error)")
        }
    }

    private func storedEntry(bucket: String, prefix: String) -> Entry? {
        guard let row = try? index.storedListing(bucket: bucket, prefix: prefix),
              let decoded = try? JSONDecoder().decode(Listing.self, from: Data(row.body.utf8)) else { return nil }
        // Stored listings live for a year: one written before a rule existed must not outlive it.
        let (listing, rejected) = ListingRules.validated(decoded, prefix: prefix)
        if rejected > 0 { logger.warning("stored listing \(bucket)/\(prefix): left out \(rejected) entries that break the listing rules") }
        return Entry(listing: listing, fetchedAt: row.fetchedAt,
                     expiresAt: row.fetchedAt + ListingCache.lifetime(prefix: prefix, now: Date().timeIntervalSince1970),
                     bodyBytes: row.body.utf8.count)
    }

    private func remember(_ id: String, _ entry: Entry) {
        memory.withLock { $0.insert(id, entry, bound: maxInMemory) }
    }

    /// Stores a listing, then prunes the index's oldest when their bodies pass the bound: the
    /// running total makes the check free, and pruning goes down to 90 %, so it runs rarely.
    private func store(bucket: String, prefix: String, fetchedAt: Double, body: String) {
        do {
            let replaced = try index.storeListing(bucket: bucket, prefix: prefix, fetchedAt: fetchedAt, body: body)
            let over = disk.withLock { total -> Bool in
                total = (total.count + (replaced == nil ? 1 : 0), total.bytes + body.utf8.count - (replaced ?? 0))
                return total.bytes > maxBytesOnDisk
            }
            guard over else { return }
            let left = try index.pruneListings(maxBytes: maxBytesOnDisk)
            disk.withLock { $0 = (left.count, left.bytes) }
            logger.debug("pruned \(left.removed) stored listings fetched longest ago: \(left.count) left, \(left.bytes) bytes")
        } catch {
            logger.warning("could not store the listing of \(bucket)/\(prefix): \(error)")
        }
    }
}

/// The listings held in memory, with when each was last used: past the bound, the least recently
/// used go, down to 90 % (one scan per tenth of the bound's insertions).
struct RecentListings {
    private(set) var entries: [String: (entry: ListingCache.Entry, lastUse: UInt64)] = [:]
    private(set) var bytes = 0
    private var clock: UInt64 = 0

    mutating func use(_ id: String) -> ListingCache.Entry? {
        guard entries[id] != nil else { return nil }
        clock += 1
        entries[id]!.lastUse = clock
        return entries[id]!.entry
    }

    mutating func insert(_ id: String, _ entry: ListingCache.Entry, bound: Int) {
        clock += 1
        bytes += entry.bodyBytes - (entries.updateValue((entry, clock), forKey: id)?.entry.bodyBytes ?? 0)
        guard entries.count > bound else { return }
        let keep = max(1, bound * 9 / 10)
        for (old, _) in entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }).prefix(entries.count - keep) { remove(old) }
    }

    mutating func remove(_ id: String) {
        if let gone = entries.removeValue(forKey: id) { bytes -= gone.entry.bodyBytes }
    }
}

/// A listing request under way, which later askers wait for instead of sending their own.
final class ListingFlight: Sendable {
    private let result = Locked<Result<ListingCache.Entry, FSError>?>(nil)
    private let done = DispatchGroup()

    init() { done.enter() }

    func finish(_ outcome: Result<ListingCache.Entry, FSError>) {
        result.withLock { $0 = outcome }
        done.leave()
    }

    func wait() -> Result<ListingCache.Entry, FSError> {
        done.wait()
        return result.withLock { $0! }
    }
}
