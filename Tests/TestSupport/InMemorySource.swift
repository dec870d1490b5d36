import Foundation
import Locking
import ObjectStore

/// An object source held in memory: buckets of keys with bytes and ETags, listed with `/` as the
/// delimiter like S3. It counts what it was asked, so tests can assert what went over the "wire".
public final class InMemorySource: ObjectSource, Sendable {
    public struct Stored: Sendable { public var bytes: [UInt8]; public var etag: String }
    public struct Fetch: Sendable, Equatable { public let key: String; public let range: Range<Int> }

    private struct State {
        var buckets: [String: [String: Stored]] = [:]
        var listings: [String] = []
        var fetches: [Fetch] = []
    }
    private let state = Locked(State())

    public init() {}

    public func put(bucket: String, key: String, bytes: [UInt8], etag: String? = nil) {
        state.withLock { $0.buckets[bucket, default: [:]][key] = Stored(bytes: bytes, etag: etag ?? "\"\(key.hashValue)-\(bytes.count)\"") }
    }

    public var listingRequests: [String] { state.withLock { $0.listings } }
    public var fetches: [Fetch] { state.withLock { $0.fetches } }
    public func resetCounts() { state.withLock { $0.listings = []; $0.fetches = [] } }

    public var diagnosticSources: [Source] { [] }

    public func list(bucket: String, prefix: String) throws(FetchError) -> (listing: Listing, rejected: [String]) {
        let objects = state.withLock { s -> [String: Stored]? in
            s.listings.append(prefix)
            return s.buckets[bucket]
        }
        guard let objects else { throw FetchError.http(status: 404, s3Code: "NoSuchBucket") }
        var listing = Listing()
        var prefixes = Set<String>()
        for (key, stored) in objects.sorted(by: { $0.key < $1.key }) where key.hasPrefix(prefix) {
            let rest = key.dropFirst(prefix.count)
            if let slash = rest.firstIndex(of: "/") {
                prefixes.insert(prefix + rest[...slash])
            } else {
                listing.objects.append(ListedObject(key: key, size: stored.bytes.count, etag: stored.etag, lastModified: 1_678_000_000))
            }
        }
        listing.commonPrefixes = prefixes.sorted()
        return (listing, [])
    }

    public func fetch(bucket: String, key: String, objectSize: Int, etag: String, range: Range<Int>,
                      into buffer: UnsafeMutableRawBufferPointer, progress: ((Int) -> Void)?,
                      arrived: ((Int) -> Void)?) throws(FetchError) {
        let stored = state.withLock { s -> Stored? in
            s.fetches.append(Fetch(key: key, range: range))
            return s.buckets[bucket]?[key]
        }
        guard let stored else { throw FetchError.http(status: 404, s3Code: "NoSuchKey") }
        guard etag.isEmpty || stored.etag == etag else { throw FetchError.http(status: 412, s3Code: "PreconditionFailed") }
        guard stored.bytes.count == objectSize, range.upperBound <= objectSize else {
            throw FetchError(category: .server, message: "size differs from the listing")
        }
        stored.bytes[range].withUnsafeBytes { buffer.copyMemory(from: $0) }
        progress?(range.count)
        arrived?(range.count)
    }
}

/// Wraps a source and misbehaves on cue: scripted failures, latency, a changed object.
public final class FaultySource: ObjectSource, Sendable {
    public enum Fault: Sendable {
        /// The next `count` fetches fail with `error`.
        case fail(FetchError, count: Int)
        /// Every fetch waits this long first (a slow network; lets concurrent readers pile up).
        case latency(seconds: Double)
        /// The next fetch delivers its first `afterBytes` bytes, then the connection drops for good.
        case cut(afterBytes: Int)
    }
    private let inner: any ObjectSource
    private let faults = Locked<[Fault]>([])
    private let concurrency = Locked<(now: Int, most: Int)>((0, 0))

    /// The most fetches that were under way at the same moment.
    public var mostConcurrentFetches: Int { concurrency.withLock { $0.most } }

    public init(_ inner: any ObjectSource) { self.inner = inner }

    public func arm(_ fault: Fault) { faults.withLock { $0.append(fault) } }
    public func clear() { faults.withLock { $0 = [] } }

    public var diagnosticSources: [Source] { [] }

    public func list(bucket: String, prefix: String) throws(FetchError) -> (listing: Listing, rejected: [String]) {
        try inner.list(bucket: bucket, prefix: prefix)
    }

    public func fetch(bucket: String, key: String, objectSize: Int, etag: String, range: Range<Int>,
                      into buffer: UnsafeMutableRawBufferPointer, progress: ((Int) -> Void)?,
                      arrived: ((Int) -> Void)?) throws(FetchError) {
        concurrency.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
        defer { concurrency.withLock { $0.now -= 1 } }
        var delay = 0.0
        var cutAfter: Int?
        let failure = faults.withLock { list -> FetchError? in
            for (index, fault) in list.enumerated() {
                switch fault {
                case .latency(let seconds): delay = max(delay, seconds)
                case .fail(let error, let count):
                    list[index] = count > 1 ? .fail(error, count: count - 1) : .latency(seconds: 0)
                    return error
                case .cut(let bytes) where cutAfter == nil:
                    cutAfter = bytes
                    list[index] = .latency(seconds: 0)
                case .cut: continue
                }
            }
            return nil
        }
        if delay > 0 { Thread.sleep(forTimeInterval: delay) }
        if let failure { throw failure }
        if let cutAfter {
            let kept = min(cutAfter, range.count)
            var whole = [UInt8](repeating: 0, count: range.count)
            var failed: FetchError?
            whole.withUnsafeMutableBytes { all in
                do throws(FetchError) { try inner.fetch(bucket: bucket, key: key, objectSize: objectSize, etag: etag, range: range, into: all, progress: nil, arrived: nil) } catch { failed = error }
            }
            if let failed { throw failed }
            whole.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[0..<kept]).copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<kept])) }
            progress?(kept)
            arrived?(kept)
            throw FetchError(category: .network, message: "connection cut after \(kept) bytes")
        }
        try inner.fetch(bucket: bucket, key: key, objectSize: objectSize, etag: etag, range: range, into: buffer,
                        progress: progress, arrived: arrived)
    }
}
