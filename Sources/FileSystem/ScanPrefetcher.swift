import Foundation
import GOESCatalog
import Locking
import ObjectStore

/// Domain-aware prefetch: a reader that opens the scans of one band one after another (an
/// animation, a time series) gets the next scans fetched in the background, but only the parts
/// it read of the last scan it closed: a 500×500 slice of each scan prefetches that slice's
/// chunks (and the header), not whole files.
///
/// Bounded: at most `ahead` scans and `maxBytes` in flight at once. A scan the friendly view hides
/// (an older creation of the same slot) is never fetched.
final class ScanPrefetcher: Sendable {
    static let ahead = 2
    static let maxBytes = 96 << 20

    /// What a reader read of one scan: replayed onto the next scans of the same series.
    struct Profile: Sendable, Equatable {
        var size: Int
        var ranges: [Range<Int>]
    }

    private struct State {
        var lastStart: [String: ScanTime] = [:]
        var profiles: [String: Profile] = [:]
        var bytesInFlight = 0
        var queued: Set<String> = []
    }
    private let state = Locked(State())
    private let listings: ListingCache
    private let pool: DownloadPool
    /// Fetches byte ranges of an object in the background and calls back when done (GOESFileSystem does it).
    private let fetchRanges: @Sendable (ObjectRef, [Range<Int>], @escaping @Sendable () -> Void) -> Void

    init(listings: ListingCache, pool: DownloadPool,
         fetchRanges: @escaping @Sendable (ObjectRef, [Range<Int>], @escaping @Sendable () -> Void) -> Void) {
        self.listings = listings
        self.pool = pool
        self.fetchRanges = fetchRanges
    }

    /// The series a scan belongs to: satellite bucket, product, sector and band.
    static func series(_ bucket: String, _ name: ObjectName) -> String {
        "\(bucket)|\(name.product)|\(name.sector ?? "")|\(name.band.map(String.init) ?? "")"
    }

    func opened(_ ref: ObjectRef) {
        guard let name = ObjectKey(ref.object.key).objectName else { return }
        let series = ScanPrefetcher.series(ref.bucket, name)
        let profile = state.withLock { s -> Profile? in
            defer { s.lastStart[series] = name.start }
            guard let previous = s.lastStart[series] else { return nil }
            let step = name.start.secondsSinceEpoch - previous.secondsSinceEpoch
            return step > 0 && step <= 2 * 3600 ? s.profiles[series] : nil
        }
        guard let profile else { return }
        pool.submit(.background) { [self] in prefetchAfter(ref, name: name, series: series, profile: profile) }
    }

    /// A reader closed a scan: what it read is what the next scans' readers will likely read.
    func readerClosed(bucket: String, key: String, size: Int, touched: [Range<Int>]) {
        guard !touched.isEmpty, let name = ObjectKey(key).objectName else { return }
        let series = ScanPrefetcher.series(bucket, name)
        state.withLock { $0.profiles[series] = Profile(size: size, ranges: touched) }
    }

    /// `profile`'s ranges placed on an object of `size` bytes. Scans of one band differ a little in
    /// size (compressed chunks), so offsets scale with the size and each range gets slack: 0.25 %
    /// of the object, at least 16 KiB, on both sides (a range that still misses is read on demand).
    static func replay(_ profile: Profile, onto size: Int) -> [Range<Int>] {
        guard profile.size > 0, size > 0 else { return [] }
        let scale = Double(size) / Double(profile.size)
        let slack = max(16 << 10, size / 400)
        var out: [Range<Int>] = []
        for range in profile.ranges {
            let lower = max(0, Int(Double(range.lowerBound) * scale) - slack)
            let upper = min(size, Int((Double(range.upperBound) * scale).rounded(.up)) + slack)
            guard lower < upper else { continue }
            if let last = out.last, lower <= last.upperBound {
                out[out.count - 1] = last.lowerBound..<max(last.upperBound, upper)
            } else {
                out.append(lower..<upper)
            }
        }
        return out
    }

    private func prefetchAfter(_ ref: ObjectRef, name: ObjectName, series: String, profile: Profile) {
        let folder = String(ref.object.key[..<(ref.object.key.lastIndex(of: "/") ?? ref.object.key.startIndex)])
        var candidates = nextScans(bucket: ref.bucket, prefix: folder + "/", after: name, series: series)
        if candidates.count < ScanPrefetcher.ahead, let hour = HourPrefix(prefix: folder + "/"),
           let next = ScanTime(secondsSinceEpoch: hour.endSecondsSinceEpoch) {
            let nextFolder = String(format: "%@/%04d/%03d/%02d/", hour.product, next.year, next.dayOfYear, next.hour)
            candidates += nextScans(bucket: ref.bucket, prefix: nextFolder, after: name, series: series)
        }
        for object in candidates.prefix(ScanPrefetcher.ahead) {
            let id = ref.bucket + "/" + object.key
            let ranges = ScanPrefetcher.replay(profile, onto: object.size)
            let bytes = ranges.reduce(0) { $0 + $1.count }
            let admitted = state.withLock { s -> Bool in
                guard !s.queued.contains(id), s.bytesInFlight + bytes <= ScanPrefetcher.maxBytes else { return false }
                s.queued.insert(id)
                s.bytesInFlight += bytes
                return true
            }
            guard admitted else { continue }
            fetchRanges(ObjectRef(bucket: ref.bucket, object: object), ranges) { [self] in
                state.withLock { s in
                    s.queued.remove(id)
                    s.bytesInFlight -= bytes
                }
            }
        }
    }

    /// The scans of `series` after `name` in one hour folder, oldest first, one per slot (the
    /// latest creation, as the friendly view shows).
    private func nextScans(bucket: String, prefix: String, after name: ObjectName, series: String) -> [ListedObject] {
        guard let entry = try? listings.listing(bucket: bucket, prefix: prefix) else { return [] }
        var bySlot: [String: (ListedObject, ObjectName)] = [:]
        for object in entry.listing.objects {
            guard let candidate = ObjectKey(object.key).objectName, ScanPrefetcher.series(bucket, candidate) == series,
                  candidate.start > name.start else { continue }
            if let other = bySlot[candidate.slotName], other.1.created >= candidate.created { continue }
            bySlot[candidate.slotName] = (object, candidate)
        }
        return bySlot.values.sorted { $0.1.start < $1.1.start }.map(\.0)
    }
}
