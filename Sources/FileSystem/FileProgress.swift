/// Per-file progress for `.stats` "In progress", `.stats.json` `in_progress` and `goesfs stats
/// --watch`: one row per object being fetched, however many block requests it takes.

/// Bytes per second over the last few seconds of one file's arrivals, from its first byte on.
///
/// A window rather than the last request: a file's blocks arrive one request at a time, and a
/// per-request rate restarts at zero with every block.
struct RateWindow: Sendable {
    static let span = 4.0
    /// The first second of a file is left out of its rate once there is more: readahead is
    /// still opening its connections then, so it runs slower than what follows.
    static let rampSpan = 1.0
    /// No speed before this much time of data (one burst is no rate) …
    static let minimumSpan = 0.5
    /// … and no ETA before this much: the first seconds mix in connection set-up.
    static let stableSpan = 2.0
    static let sampleInterval = 0.25

    private var firstByteAt: Double?
    private var samples: [(at: Double, total: Int)] = []
    private(set) var total = 0

    mutating func add(_ bytes: Int, at now: Double) {
        if firstByteAt == nil { firstByteAt = now; samples = [(now, 0)] }
        total += bytes
        if let last = samples.last, now - last.at >= RateWindow.sampleInterval { samples.append((now, total)) }
        let settled = now - (firstByteAt ?? now) >= RateWindow.stableSpan ? firstByteAt! + RateWindow.rampSpan : -Double.infinity
        while samples.count > 2, samples[1].at <= max(now - RateWindow.span, settled) { samples.removeFirst() }
    }

    /// Nil while estimating. Time without arrivals counts: a stalled file slows down honestly.
    func rate(at now: Double) -> Double? {
        guard let first = firstByteAt, now - first >= RateWindow.minimumSpan, let base = samples.first else { return nil }
        let seconds = now - base.at
        return seconds > 0 ? Double(total - base.total) / seconds : nil
    }

    func isStable(at now: Double) -> Bool { firstByteAt.map { now - $0 >= RateWindow.stableSpan } ?? false }
}

/// What the download threads report about one object (kept by `Statistics`).
public struct FileActivity: Sendable {
    public let bucket: String, key: String, size: Int
    /// Bytes received so far by each block request under way.
    var transfers: [UInt64: Int] = [:]
    var window = RateWindow()
    var lastActivity: Double
    /// The largest "bytes present" shown so far: a block between its last byte and its index row
    /// must not make the bar step back.
    var shownPresent = 0

    /// A file with nothing under way is forgotten after this long (its rate with it).
    static let linger = 3.0

    public var bytesInFlight: Int { transfers.values.reduce(0, +) }
    public var requestsInFlight: Int { transfers.count }
}

/// The blocks of an open object, in bytes: on disk (or in memory), queued or downloading with a
/// reader waiting, and queued or downloading ahead of any reader (readahead).
struct BlockSummary: Sendable {
    var present = 0, waited = 0, ahead = 0
}

/// One row of "In progress".
public struct FileRow: Sendable {
    /// What the ETA is of.
    public enum Coverage: String, Sendable {
        /// Everything not yet present: the file is fetched whole or read through in order.
        case restOfFile = "rest_of_file"
        /// Only the blocks requested so far (a reader jumping around may ask for more, or stop).
        case requestedBlocks = "requested_blocks"
    }
    /// Who makes the file be fetched.
    public enum Driver: String, Sendable {
        case reader, readahead, readerAndReadahead = "reader+readahead", scanPrefetch = "scan_prefetch"
    }

    public let bucket: String, key: String, size: Int
    public let present: Int
    /// Bytes of the requested blocks not yet arrived.
    public let fetching: Int
    public let rate: Double?
    public let coverage: Coverage
    /// The bytes the ETA is of.
    public let remaining: Int
    /// Nil until the rate is stable.
    public let eta: Double?
    public let driver: Driver
    public let requests: Int

    public var fraction: Double { size > 0 ? min(1, Double(present) / Double(size)) : 1 }

    /// A row from what the object's block table says and what its downloads reported. `readerOpen`:
    /// a reader still has the file open (readahead for a closed file only finishes what is in flight).
    static func make(activity: FileActivity?, bucket: String, key: String, size: Int, blocks: BlockSummary,
                     scanPrefetch: Bool, readerOpen: Bool, now: Double) -> FileRow {
        let inFlight = activity?.bytesInFlight ?? 0
        let present = max(activity?.shownPresent ?? 0, min(size, blocks.present + inFlight))
        let fetching = max(0, blocks.waited + blocks.ahead - inFlight)
        let driver: Driver = scanPrefetch ? .scanPrefetch
            : blocks.ahead > 0 ? (blocks.waited > 0 ? .readerAndReadahead : .readahead) : .reader
        // A sequential reader is taken to read on while it has the file open; one that closed it
        // early is promised only what is still in flight.
        let whole = scanPrefetch || (driver != .reader && readerOpen) || present + fetching >= size
        let remaining = whole ? size - present : fetching
        let rate = activity?.window.rate(at: now)
        let stable = activity?.window.isStable(at: now) ?? false
        let eta = rate.flatMap { r -> Double? in stable ? (r > 0 ? Double(remaining) / r : .infinity) : nil }
        return FileRow(bucket: bucket, key: key, size: size, present: present, fetching: fetching, rate: rate,
                       coverage: whole ? .restOfFile : .requestedBlocks, remaining: remaining, eta: eta,
                       driver: driver, requests: activity?.requestsInFlight ?? 0)
    }
}

/// The sum of the rows: bytes present of the sizes, summed rates, ETA of everything the rows' ETAs cover.
public struct FileTotals: Sendable {
    public let files: Int, present: Int, size: Int, remaining: Int
    public let rate: Double?
    public let eta: Double?

    init(_ rows: [FileRow]) {
        files = rows.count
        present = rows.reduce(0) { $0 + $1.present }
        size = rows.reduce(0) { $0 + $1.size }
        remaining = rows.reduce(0) { $0 + $1.remaining }
        let rates = rows.compactMap(\.rate)
        let sum: Double? = rates.isEmpty ? nil : rates.reduce(0, +)
        let left = remaining
        rate = sum
        // Only when every row has one: a total made of some rows would claim too little.
        eta = rows.allSatisfy({ $0.eta != nil }) ? sum.map { $0 > 0 ? Double(left) / $0 : .infinity } : nil
    }
}

/// An object open by a reader now.
public struct OpenFileLine: Sendable {
    public let bucket: String, key: String, size: Int, handles: Int, present: Int
}
