import Foundation
import GOESCatalog
import Locking
import ObjectStore

/// Domain-aware prefetch: a reader that opens the scans of one band one after another (an
/// animation, a time series) gets the next scans fetched in the background.
///
/// Bounded: at most `ahead` scans and `maxBytes` in flight at once.
final class ScanPrefetcher: Sendable {
    static let ahead = 2
    static let maxBytes = 96 << 20

    private struct State { var lastStart: [String: ScanTime] = [:]; var bytesInFlight = 0; var queued: Set<String> = [] }
    private let state = Locked(State())
    private let listings: ListingCache
    private let pool: DownloadPool
    /// Fetches a whole object in the background and calls back when done (GOESFileSystem does it).
    private let fetchWhole: @Sendable (ObjectRef, @escaping @Sendable () -> Void) -> Void

    init(listings: ListingCache, pool: DownloadPool, fetchWhole: @escaping @Sendable (ObjectRef, @escaping @Sendable () -> Void) -> Void) {
        self.listings = listings
        self.pool = pool
        self.fetchWhole = fetchWhole
    }

    /// The series a scan belongs to: satellite bucket, product, sector and band.
    static func series(_ bucket: String, _ name: ObjectName) -> String {
        "\(bucket)|\(name.product)|\(name.sector ?? "")|\(name.band.map(String.init) ?? "")"
    }

    func opened(_ ref: ObjectRef) {
        guard let name = ObjectKey(ref.object.key).objectName else { return }
        let series = ScanPrefetcher.series(ref.bucket, name)
        let walking = state.withLock { s -> Bool in
            defer { s.lastStart[series] = name.start }
            guard let previous = s.lastStart[series] else { return false }
            let step = name.start.secondsSinceEpoch - previous.secondsSinceEpoch
            return step > 0 && step <= 2 * 3600
        }
        guard walking else { return }
        pool.submit(.background) { [self] in prefetchAfter(ref, name: name, series: series) }
    }

    private func prefetchAfter(_ ref: ObjectRef, name: ObjectName, series: String) {
        let folder = String(ref.object.key[..<(ref.object.key.lastIndex(of: "/") ?? ref.object.key.startIndex)])
        var candidates = nextScans(bucket: ref.bucket, prefix: folder + "/", after: name, series: series)
        if candidates.count < ScanPrefetcher.ahead, let hour = HourPrefix(prefix: folder + "/"),
           let next = ScanTime(secondsSinceEpoch: hour.endSecondsSinceEpoch) {
            let nextFolder = String(format: "%@/%04d/%03d/%02d/", hour.product, next.year, next.dayOfYear, next.hour)
            candidates += nextScans(bucket: ref.bucket, prefix: nextFolder, after: name, series: series)
        }
        for object in candidates.prefix(ScanPrefetcher.ahead) {
            let id = ref.bucket + "/" + object.key
            let admitted = state.withLock { s -> Bool in
                guard !s.queued.contains(id), s.bytesInFlight + object.size <= ScanPrefetcher.maxBytes else { return false }
                s.queued.insert(id)
                s.bytesInFlight += object.size
                return true
            }
            guard admitted else { continue }
            fetchWhole(ObjectRef(bucket: ref.bucket, object: object)) { [self] in
                state.withLock { s in
                    s.queued.remove(id)
                    s.bytesInFlight -= object.size
                }
            }
        }
    }

    private func nextScans(bucket: String, prefix: String, after name: ObjectName, series: String) -> [ListedObject] {
        guard let entry = try? listings.listing(bucket: bucket, prefix: prefix) else { return [] }
        return entry.listing.objects
            .compactMap { object in ObjectKey(object.key).objectName.map { (object, $0) } }
            .filter { ScanPrefetcher.series(bucket, $0.1) == series && $0.1.start > name.start }
            .sorted { $0.1.start < $1.1.start }
            .map(\.0)
    }
}
