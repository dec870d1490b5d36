/// Where the filesystem core gets listings and bytes: the seam between the read path and the
/// network. `S3Client` is the real one; tests use in-memory and fault-injecting ones
/// (Tests/TestSupport), so the read path runs without a network or a kernel.
public protocol ObjectSource: Sendable {
    /// One folder level under `prefix` (all pages), and why entries were left out.
    func list(bucket: String, prefix: String) throws(FetchError) -> (listing: Listing, rejected: [String])

    /// `range` of the object listed with `objectSize` and `etag` into `buffer` (its count is the
    /// range's); `progress` gets byte counts as they arrive. Never bytes of another version.
    func fetch(bucket: String, key: String, objectSize: Int, etag: String, range: Range<Int>,
               into buffer: UnsafeMutableRawBufferPointer, progress: ((Int) -> Void)?) throws(FetchError)

    /// The servers behind it, for `.diagnostics` (none for a fake).
    var diagnosticSources: [Source] { get }
}

extension S3Client: ObjectSource {
    public var diagnosticSources: [Source] { sources.sources }
}
