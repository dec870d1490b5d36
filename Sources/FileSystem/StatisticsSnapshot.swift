import ObjectStore

/// Attempts of one kind of request and how they ended (see docs/STATS-FORMAT.md for each figure).
public struct RequestCounts: Sendable, Equatable {
    /// Successes plus failures, by definition (so the figures add up at any instant).
    public var attempts: Int { successes + failures }
    public var successes = 0
    /// Always the sum of `errorsByCategory`.
    public var failures = 0
    /// Failures followed by another attempt.
    public var retries = 0
    public var errorsByCategory: [ErrorCategory: Int] = [:]

    public func errors(_ category: ErrorCategory) -> Int { errorsByCategory[category] ?? 0 }
}

/// Listings kept (see `ListingCache`): entries and bytes of their JSON bodies, in memory and in
/// the index, with the bounds of `Policies`.
public struct CachedListings: Sendable, Equatable {
    public var inMemory = 0
    public var bytesInMemory = 0
    public var memoryLimit = 0
    public var onDisk = 0
    public var bytesOnDisk = 0
    public var diskLimitBytes = 0

    public init(inMemory: Int = 0, bytesInMemory: Int = 0, memoryLimit: Int = 0,
                onDisk: Int = 0, bytesOnDisk: Int = 0, diskLimitBytes: Int = 0) {
        self.inMemory = inMemory
        self.bytesInMemory = bytesInMemory
        self.memoryLimit = memoryLimit
        self.onDisk = onDisk
        self.bytesOnDisk = bytesOnDisk
        self.diskLimitBytes = diskLimitBytes
    }
}

extension Statistics {
    public struct ErrorRecord: Sendable {
        public let at: Double, kind: RequestKind, category: ErrorCategory, message: String, key: String, attempt: Int, maxAttempts: Int
    }
    public struct AttemptRecord: Sendable {
        public let at: Double, succeeded: Bool, bytes: Int?, seconds: Double, key: String
    }
    public struct SourceLine: Sendable {
        public let name: String, attempts: Int, failures: Int
        /// Nil while active.
        public let demotedUntil: Double?
    }

    /// The figures at one instant; what a report renders.
    public struct Snapshot: Sendable {
        public var sessionID: String
        public var hostname: String
        public var startTime: Double
        public var now: Double
        /// Ranged GETs of object bytes ("attempts" in `.stats`).
        public var data = RequestCounts()
        /// ListObjectsV2 requests (one per page per attempt).
        public var listings = RequestCounts()
        /// Sends libcurl repeated by itself on a dead reused connection (each also a failed network attempt).
        public var resends = 0
        public var timings: [RequestKind: RequestTimings] = [:]
        public var totalBytes = 0
        public var receivingSeconds = 0.0
        public var successSeconds = 0.0
        /// Time of all data attempts plus backoff waits: the denominator of the download rate.
        public var wallSeconds = 0.0
        public var largest: Int?
        public var smallest: Int?
        public var lastSuccess: Double?
        public var recentErrors: [ErrorRecord] = []
        public var recentAttempts: [AttemptRecord] = []
        /// Timestamped notes (repairs, index recovery, source demotions, diagnostics verdicts),
        /// printed after the cache figures and in `cache.notes`; the last 20.
        public var events: [String] = []
        public var reads = (fromCache: 0, afterDownload: 0)
        public var bytesFromCache = 0
        public var bytesFromNetwork = 0
        public var traffic = ProductTraffic()
        /// Bytes that arrived from the network for blocks (every attempt, readahead and prefetch too).
        public var bytesReceived = 0
        /// What the cache spared the network: the products' bytes served beyond those fetched.
        public var bytesSaved: Int { traffic.bytes.values.reduce(0) { $0 + $1.saved } }
        public var cachedBytes = 0
        public var cacheLimit = 0
        public var evictions = Evictions()
        /// Bytes pinned by replies being served, and reserved by downloads not yet recorded.
        public var pinnedBytes = 0
        public var unrecordedBytes = 0
        public var repairs = 0
        public var bytesResumed = 0
        /// Objects with cached blocks (read from the index when a report is rendered).
        public var cachedObjects = 0
        /// Listings kept (filled by the filesystem when it renders a report).
        public var cachedListings = CachedListings()
        public var sources: [SourceLine] = []
        /// Per object id (`bucket/key`): what its downloads reported.
        public var activity: [String: FileActivity] = [:]
        /// Filled by the filesystem when it renders a report (it knows the block tables).
        public var files: [FileRow] = []
        public var openFiles: [OpenFileLine] = []
        var nextTransfer: UInt64 = 1
        var transferFile: [UInt64: String] = [:]

        public var fileTotals: FileTotals { FileTotals(files) }
        /// Data requests under way (block GETs, including their retries and backoff).
        public var requestsInFlight: Int { transferFile.count }
    }
}

/// What eviction freed, by kind of unit, and the room it could not make.
public struct Evictions: Sendable, Equatable {
    /// Objects nobody used, deleted whole.
    public var closedObjects = 0
    public var closedObjectBytes = 0
    /// Cold extents of objects in use (their blocks present and not pinned).
    public var openExtents = 0
    public var openExtentBytes = 0
    /// Writes the cap had no room for (everything left pinned or being written): served from memory.
    public var refused = 0
    public var refusedBytes = 0

    public var count: Int { closedObjects + openExtents }
    public var bytes: Int { closedObjectBytes + openExtentBytes }
}
