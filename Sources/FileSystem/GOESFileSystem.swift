import BlockCache
import Foundation
import GOESCatalog
import Locking
import Logging
import ObjectStore

/// What the read path needs from the rest of the filesystem.
struct ReadContext: Sendable {
    let policies: Policies
    let client: any ObjectSource
    let store: any BlockStore
    let pool: DownloadPool
    let statistics: Statistics
    let budget: CacheBudget
    let diagnostics: DiagnosticsRunner
    let openObjects: OpenObjects
    let verified: VerifiedBlocks
    let storeHealth: CacheStoreHealth
    let listings: ListingCache
    let changes: ChangeNotifier
    let logger: Logger
}

/// Passes "this object changed" from the read path to whoever shows files to the kernel.
public final class ChangeNotifier: Sendable {
    private let handler = Locked<(@Sendable (MountPath) -> Void)?>(nil)
    private let queue = DispatchQueue(label: "goesfs-changes")

    public func onChange(_ body: @escaping @Sendable (MountPath) -> Void) { handler.withLock { $0 = body } }

    /// No more notifications; waits for one under way (the session is about to go).
    public func stop() {
        handler.withLock { $0 = nil }
        queue.sync {}
    }

    /// Runs the handler later, on its own queue: never inside a reply still owed to the kernel.
    func objectChanged(bucket: String, key: String) {
        let path = [bucket] + key.split(separator: "/").map(String.init)
        queue.async { [handler] in handler.withLock { $0 }?(path) }
    }
}

/// Settings of one mount.
public struct MountConfiguration: Sendable {
    public var buckets: [String]
    public var cacheDirectory: String
    public var downloadThreads: Int
    /// The cache's size cap in bytes.
    public var cacheLimit: Int
    /// Readahead for sequential readers and next-scan prefetch for readers walking through time.
    public var prefetch = true
    /// Request sizes, windows and bounds of the read path.
    public var policies = Policies()
    /// Version lines for `.diagnostics` (goesfs, SQLite, libfuse), from the layers that own them.
    public var versionLines: [String] = []

    public static let defaultDownloadThreads = 8

    /// The smallest cap this mount can hold (see `Policies.minimumCacheBytes`).
    public var minimumCacheLimit: Int { Policies.minimumCacheBytes(downloadThreads: downloadThreads) }

    public init(buckets: [String], cacheDirectory: String, cacheLimit: Int, downloadThreads: Int = MountConfiguration.defaultDownloadThreads) {
        self.buckets = buckets
        self.cacheDirectory = cacheDirectory
        self.cacheLimit = cacheLimit
        self.downloadThreads = downloadThreads
    }
}

/// The filesystem core, with no kernel in sight: paths in, attributes and bytes out.
///
/// The FUSE bridge maps inodes to paths and calls this; tests call it directly.
public final class GOESFileSystem: Sendable {
    public let statistics: Statistics
    /// Told the mirror path of an object found changed at the source, after its readers got their
    /// error: the bridge drops the kernel's cached pages of it (files are opened with keep_cache).
    public let changes = ChangeNotifier()
    private let namespace: Namespace
    private let context: ReadContext
    private let handles = Locked<HandleTable>(HandleTable())
    private let openObjects: OpenObjects
    private let prefetch: Bool
    private let scans: ScanPrefetcher?
    /// Ids (`bucket/key`) of objects a scan prefetch is fetching whole, for "In progress".
    private let scanPrefetching = Locked<Set<String>>([])

    private struct HandleTable {
        var next: UInt64 = 1
        var open: [UInt64: OpenHandle] = [:]
    }

    private enum OpenHandle {
        case object(OpenObject, ReadPattern)
        case snapshot([UInt8])
    }

    /// `index` keeps listings; blocks go to `store` (the index's own disk store unless another is given).
    public init(configuration: MountConfiguration, client: any ObjectSource, index: CacheIndex,
                store: (any BlockStore)? = nil, statistics: Statistics, logger: Logger) {
        let store = store ?? DiskBlockStore(index: index)
        self.statistics = statistics
        let registry = OpenObjects()
        openObjects = registry
        let verified = VerifiedBlocks()
        let budget = CacheBudget(limit: configuration.cacheLimit, store: store, openObjects: registry, verified: verified,
                                 statistics: statistics, policies: configuration.policies, logger: logger)
        let diagnostics = DiagnosticsRunner(sources: client.diagnosticSources, bucket: configuration.buckets.first ?? "noaa-goes16",
                                            extra: configuration.versionLines, statistics: statistics, logger: logger)
        diagnostics.start(reason: "at mount")
        let listings = ListingCache(client: client, index: index, policies: configuration.policies, logger: logger)
        let readContext = ReadContext(policies: configuration.policies, client: client, store: store,
                                      pool: DownloadPool(threads: configuration.downloadThreads, reserved: configuration.policies.threadsReservedForReaders),
                                      statistics: statistics, budget: budget, diagnostics: diagnostics,
                                      openObjects: registry, verified: verified,
                                      storeHealth: CacheStoreHealth(statistics: statistics, logger: logger),
                                      listings: listings, changes: changes, logger: logger)
        context = readContext
        prefetch = configuration.prefetch
        // A prefetched scan is held open (so it cannot be evicted) until all its blocks are in.
        let prefetching = scanPrefetching
        scans = configuration.prefetch ? ScanPrefetcher(listings: listings, pool: readContext.pool) { ref, ranges, done in
            let object = registry.acquire(ref, context: readContext)
            let id = OpenObjects.id(bucket: ref.bucket, key: ref.object.key)
            prefetching.withLock { _ = $0.insert(id) }
            object.fetch(ranges) {
                prefetching.withLock { _ = $0.remove(id) }
                registry.release(object)
                done()
            }
        } : nil
        let now = Date().timeIntervalSince1970
        namespace = Namespace(
            mirror: MirrorView(buckets: configuration.buckets, listings: listings, mountedAt: now),
            friendly: FriendlyView(satellites: configuration.buckets.compactMap(Satellite.init(parsing:)), listings: listings, mountedAt: now),
            mountedAt: now)
        index.onRecovery { [statistics, logger] note in
            verified.removeAll()
            budget.recount()
            logger.error("\(note)")
            statistics.noteEvent(note)
        }
        if let note = index.recoveredFromCorruption {
            logger.warning("\(note)")
            statistics.noteEvent(note)
        }
    }

    public func attributes(_ path: MountPath) throws(FSError) -> NodeAttributes {
        try namespace.attributes(path, virtualSize: { render($0).count })
    }

    public func entries(_ path: MountPath) throws(FSError) -> [DirectoryEntry] {
        try namespace.entries(path)
    }

    public func extendedAttributes(_ path: MountPath) throws(FSError) -> [String: String] {
        try namespace.extendedAttributes(path)
    }

    /// Opens a file for reading and returns a handle for `read` and `release`.
    public func open(_ path: MountPath) throws(FSError) -> UInt64 {
        if path.count == 1, let file = VirtualFile(rawValue: path[0]) {
            return register(.snapshot(render(file)))
        }
        let ref = try namespace.object(at: path)
        let object = openObjects.acquire(ref, context: context)
        scans?.opened(ref)
        return register(.object(object, ReadPattern(policies: context.policies)))
    }

    /// Reads from an open handle; `reply` runs exactly once, possibly on another thread.
    public func read(handle: UInt64, offset: Int, length: Int, reply: @escaping @Sendable (Result<ReadData, FSError>) -> Void) {
        switch handles.withLock({ $0.open[handle] }) {
        case .object(let object, let pattern)?:
            object.read(offset: offset, length: length, pattern: prefetch ? pattern : nil, reply: reply)
        case .snapshot(let bytes)?:
            let start = min(max(offset, 0), bytes.count), end = min(bytes.count, start + min(max(length, 0), bytes.count))
            reply(.success(.bytes(Array(bytes[start..<end]))))
        case nil:
            reply(.failure(.io("unknown file handle \(handle)")))
        }
    }

    public func release(handle: UInt64) {
        if case .object(let object, _)? = handles.withLock({ $0.open.removeValue(forKey: handle) }) {
            scans?.readerClosed(bucket: object.bucket, key: object.key, size: object.size, touched: object.touchedRanges())
            openObjects.release(object)
            // Used until now, not since its open: eviction ranks closed objects by this.
            try? object.stored?.touch()
        }
    }

    /// Waits (at most `seconds`) for the downloads under way to finish and record what they
    /// fetched: at a clean unmount a reader may have been answered from bytes not yet recorded.
    /// Requests not started are dropped (their files are closed).
    public func finishDownloads(within seconds: Double) {
        let deadline = Date() + seconds
        while openObjects.downloadsRunning > 0 && Date() < deadline { usleep(10_000) }
    }

    /// The cache's cap and the bytes cached now, for `statfs` (`df`).
    public func cacheCapacity() -> (limit: Int, used: Int) {
        (context.budget.limit, max(0, context.budget.usedBytes))
    }

    /// The `.stats` text as it stands now.
    public func statsReport() -> String { StatsReport.text(snapshot()) }

    /// `/metrics` as it stands now: the figures of `.stats.json`.
    public func metricsText() -> String { PrometheusText.render(snapshot()) }

    /// The figures now, with the count of cached objects from the (local) index and a row per
    /// object being fetched (from the block tables: only they know what is queued).
    func snapshot() -> Statistics.Snapshot {
        var snapshot = statistics.snapshot()
        snapshot.cachedObjects = (try? context.store.storedObjects()) ?? 0
        snapshot.cachedListings = context.listings.counts
        let prefetching = scanPrefetching.withLock { $0 }
        snapshot.unrecordedBytes = context.budget.unrecordedBytes
        for (object, handles) in openObjects.inUse() {
            snapshot.pinnedBytes += object.pinnedBytes
            let id = OpenObjects.id(bucket: object.bucket, key: object.key)
            let blocks = object.blockSummary()
            let activity = snapshot.activity[id]
            let scanOnly = prefetching.contains(id) && handles <= 1
            if !scanOnly && handles > 0 {
                snapshot.openFiles.append(OpenFileLine(bucket: object.bucket, key: ListingRules.printable(object.key), size: object.size,
                                                       handles: handles - (prefetching.contains(id) ? 1 : 0), present: blocks.present))
            }
            guard blocks.waited + blocks.ahead > 0 || (activity?.requestsInFlight ?? 0) > 0 else { continue }
            let row = FileRow.make(activity: activity, bucket: object.bucket, key: ListingRules.printable(object.key), size: object.size,
                                   blocks: blocks, scanPrefetch: scanOnly,
                                   readerOpen: handles - (prefetching.contains(id) ? 1 : 0) > 0, now: snapshot.now)
            statistics.notePresentShown(file: id, bytes: row.present)
            snapshot.files.append(row)
        }
        snapshot.files.sort { ($0.bucket, $0.key) < ($1.bucket, $1.key) }
        snapshot.openFiles.sort { ($0.bucket, $0.key) < ($1.bucket, $1.key) }
        if snapshot.openFiles.count > GOESFileSystem.openFilesShown { snapshot.openFiles.removeLast(snapshot.openFiles.count - GOESFileSystem.openFilesShown) }
        return snapshot
    }

    static let openFilesShown = 20

    /// A virtual file's content now: rendered once per open, so one reader sees one consistent snapshot.
    func render(_ file: VirtualFile) -> [UInt8] {
        switch file {
        case .stats: return Array(StatsReport.text(snapshot()).utf8)
        case .statsJSON: return Array(StatsJSON.render(snapshot()).utf8)
        case .diagnostics: return Array(context.diagnostics.report.utf8)
        }
    }

    private func register(_ handle: OpenHandle) -> UInt64 {
        handles.withLock { table in
            let id = table.next
            table.next += 1
            table.open[id] = handle
            return id
        }
    }
}
