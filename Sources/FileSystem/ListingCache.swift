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
final class ListingCache: Sendable {
    struct Entry: Sendable {
        let listing: Listing
        let fetchedAt: Double
        let expiresAt: Double
        /// The listing indexed once, so a lookup in a folder of thousands is not a linear search.
        let objectsByKey: [String: ListedObject]
        let prefixes: Set<String>

        init(listing: Listing, fetchedAt: Double, expiresAt: Double) {
            self.listing = listing
            self.fetchedAt = fetchedAt
            self.expiresAt = expiresAt
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
    private let memory = Locked<[String: Entry]>([:])
    private let flights = Locked<[String: ListingFlight]>([:])

    init(client: any ObjectSource, index: CacheIndex, logger: Logger) {
        self.client = client
        self.index = index
        self.logger = logger
    }

    /// The fresh listing of a folder if memory holds one; never asks the server.
    func cached(bucket: String, prefix: String) -> Entry? {
        guard let entry = memory.withLock({ $0[bucket + "/" + prefix] }), entry.expiresAt > Date().timeIntervalSince1970 else { return nil }
        return entry
    }

    func listing(bucket: String, prefix: String) throws(FSError) -> Entry {
        let id = bucket + "/" + prefix
        if let entry = memory.withLock({ $0[id] }), entry.expiresAt > Date().timeIntervalSince1970 { return entry }
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
        if let entry = memory.withLock({ $0[id] }), entry.expiresAt > now { return entry }
        let stored = storedEntry(bucket: bucket, prefix: prefix)
        if let stored, stored.expiresAt > now {
            memory.withLock { $0[id] = stored }
            return stored
        }
        do {
            let (listing, rejected) = try client.list(bucket: bucket, prefix: prefix)
            if !rejected.isEmpty {
                let shown = rejected.prefix(5).joined(separator: "; ")
                logger.warning("listing \(id): left out \(rejected.count) entries the filesystem cannot show: \(shown)\(rejected.count > 5 ? "; …" : "")")
            }
            let entry = Entry(listing: listing, fetchedAt: now, expiresAt: now + ListingCache.lifetime(prefix: prefix, now: now))
            memory.withLock { $0[id] = entry }
            store(bucket: bucket, prefix: prefix, entry: entry)
            return entry
        } catch {
            if let stale = stored ?? memory.withLock({ $0[id] }), error.category != .notFound {
                logger.warning("listing \(id) failed (\(error)); serving the copy from \(Timestamp.iso(stale.fetchedAt))")
                return stale
            }
            throw FSError(error)
        }
    }

    /// Drops a folder's listing (memory and index): an object in it changed at the source.
    func forget(bucket: String, prefix: String) {
        _ = memory.withLock { $0.removeValue(forKey: bucket + "/" + prefix) }
        do { try index.dropListing(bucket: bucket, prefix: prefix) } catch {
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
                     expiresAt: row.fetchedAt + ListingCache.lifetime(prefix: prefix, now: Date().timeIntervalSince1970))
    }

    private func store(bucket: String, prefix: String, entry: Entry) {
        guard let data = try? JSONEncoder().encode(entry.listing) else { return }
        do {
            try index.storeListing(bucket: bucket, prefix: prefix, fetchedAt: entry.fetchedAt, body: String(decoding: data, as: UTF8.self))
        } catch {
            logger.warning("could not store the listing of \(bucket)/\(prefix): \(error)")
        }
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
