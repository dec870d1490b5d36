import BlockCache

/// Every tunable of the read path in one place: request sizes, windows, failure memory, prefetch
/// bounds. Chosen for S3 as it is (15–30 ms to first byte, ~90 MB/s per connection, 8–16 MiB
/// ranges recommended); tests make their own with smaller numbers.
public struct Policies: Sendable {
    /// The cache's unit of presence and checksums (the cache format fixes it).
    public var blockSize = CacheIndex.blockSize

    // MARK: Requests
    /// The largest range one GET asks for. The site cache's nginx slices are as big, so one miss
    /// here is one fill there.
    public var maxRequestBytes = 8 << 20
    /// A read at offset 0 of a cold object fetches at least this much: the header region of a
    /// NetCDF/HDF5 file, whose many small reads then need no round trip each. The reader is
    /// answered as soon as its own bytes arrive, so the first byte does not wait for the rest.
    public var headBytes = 64 << 10
    /// An object this small is fetched whole by its first read: one round trip instead of one per
    /// kernel read (GLM files, small L2 products).
    public var wholeObjectBytes = 1 << 20

    // MARK: Sequential readahead
    /// A run of reads in order this long starts readahead; the HDF5 metadata reads of an open
    /// stay under it, so they never pull in what nobody reads.
    public var sequentialThreshold = 512 << 10
    /// Readahead is this many times the run so far, up to `maxReadahead`: it grows as fast as the
    /// reader shows it keeps going (each new connection starts in TCP slow start, so the first
    /// MiBs need many requests in parallel).
    public var readaheadGrowth = 4
    /// Bytes ahead of a sequential reader, at most: 8 requests of 8 MiB in flight per file, one per
    /// download thread (so also the memory bound: 8 × 8 MiB of buffers).
    public var maxReadahead = 64 << 20
    /// Readahead requests are a quarter of the run, at least this and at most `maxRequestBytes`:
    /// a short sequential read never waits behind a huge request.
    public var firstReadaheadRequest = 1 << 20
    /// The slack within which a read still continues a run (the kernel reorders a little).
    public var sequentialSlack = 2 << 20

    // MARK: Random readers
    /// An object whose reader missed this many times at scattered places gets the rest fetched in
    /// the background (large parallel requests, low priority), so later random reads are local.
    /// A slice of a NetCDF file misses about 4–8 times (header, trailer, a few chunks): it stays a
    /// slice.
    public var backgroundFillAfterMisses = 12
    /// Objects smaller than this are never filled whole on a random pattern.
    public var backgroundFillMinimumSize = 16 << 20

    // MARK: Threads (their number is `MountConfiguration.downloadThreads`)
    /// Threads kept free of background work (fill, scan prefetch), so a reader's miss never
    /// queues behind a whole object being fetched.
    public var threadsReservedForReaders = 2

    // MARK: Failure memory and memory bounds
    /// After a failed download, readers of those blocks get the error at once for this long. The
    /// kernel re-reads synchronously right after a failed readahead: without it every retry count
    /// and deadline would double.
    public var failureMemoryNanoseconds: UInt64 = 2_000_000_000
    /// Bytes held in memory per object when the cache cannot store (a full disk).
    public var unstoredBytesPerObject = 24 << 20

    // MARK: The cache's cap
    /// Open objects lose cold parts in extents of this many bytes, least recently read first.
    public var evictionExtentBytes = 1 << 20
    /// Over the cap, eviction frees down to this share of it, so it runs in bursts, not per block.
    public var evictionTargetPercent = 90

    // MARK: Listings
    /// Folder listings held in memory (the least recently used go first, down to 90 %). A past
    /// hour's folder of a busy product is a few hundred KiB of entries; the index keeps the rest.
    public var listingsInMemory = 512
    /// Bytes of listing bodies (JSON) the index keeps; past it the listings fetched longest ago are
    /// dropped, down to 90 %. A folder dropped from both is listed again when next used.
    public var listingBytesOnDisk = 64 << 20

    public init() {}

    /// The smallest cap the read path can keep: what download threads write before recording
    /// (a record batch and a write piece each) plus replies pinned while the kernel takes them.
    public static func minimumCacheBytes(downloadThreads: Int) -> Int {
        downloadThreads * (2 << 20) + (8 << 20)
    }

    /// The block count of `bytes`, rounded up (at least 1).
    func blocks(_ bytes: Int) -> Int { max(1, (bytes + blockSize - 1) / blockSize) }
}
