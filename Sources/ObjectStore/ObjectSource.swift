/// Where the filesystem core gets listings and bytes: the seam between the read path and the
/// network. `S3Client` is the real one; tests use in-memory and fault-injecting ones
/// (Tests/TestSupport), so the read path runs without a network or a kernel.
public protocol ObjectSource: Sendable {
    /// One folder level under `prefix` (all pages), and why entries were left out.
    func list(bucket: String, prefix: String) throws(FetchError) -> (listing: Listing, rejected: [String])

    /// `range` of the object listed with `objectSize` and `etag` into `buffer` (its count is the
    /// range's), in order from its start. `progress` gets byte counts as they arrive (statistics);
    /// `arrived` gets how many bytes from the buffer's start are final, after each chunk. Never
    /// bytes of another version, not even for a moment: what `arrived` covers is kept.
    func fetch(bucket: String, key: String, objectSize: Int, etag: String, range: Range<Int>,
               into buffer: UnsafeMutableRawBufferPointer, progress: ((Int) -> Void)?,
               arrived: ((Int) -> Void)?) throws(FetchError)

    /// The servers behind it, for `.diagnostics` (none for a fake).
    var diagnosticSources: [Source] { get }
}

extension S3Client: ObjectSource {
    public var diagnosticSources: [Source] { sources.sources }
}
