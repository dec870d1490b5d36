import ArgumentParser
import BlockCache
import FileSystem
import Foundation
import FUSEBridge
import GOESCatalog
import Logging
import MetricsHTTP
import ObjectStore

enum LogFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount the GOES buckets at a directory.",
        discussion: "Without --foreground, returns once the mount is usable and keeps serving in the background."
    )

    @Argument(help: "An existing empty directory.")
    var mountpoint: String

    @Option(help: "An S3-compatible base URL, addressed path-style (default: the public AWS buckets; env GOESFS_ENDPOINT).")
    var endpoint: String?

    @Option(name: .customLong("source"), help: "A source URL, path-style, or aws, gcp or public (the NOAA buckets on AWS, on Google Cloud's mirror, both); repeat for fallbacks in order (default: public).")
    var sources: [String] = []

    @Option(help: "Seconds a source is skipped after failing 3 times in a row.")
    var sourceCooldown: Double = 60

    @Option(help: "Requests open at once, over all sources.")
    var maxConnections: Int = 16

    @Option(help: "Cap on download speed over all transfers, bytes per second (e.g. 10M).")
    var maxBandwidth: String?

    @Option(help: "Where cached data and the index live (default: $XDG_CACHE_HOME/goesfs or ~/.cache/goesfs).")
    var cacheDir: String?

    @Option(help: "The cache's size cap, e.g. 500M, 20G (default: a quarter of the free space in the cache directory, at least 1G, at most half of it).")
    var cacheSize: String?

    @Option(help: "Satellites to show, comma-separated.")
    var satellites: String = "16,17,18,19"

    @Option(help: "Attempts per request before giving up.")
    var retries: Int = 5

    @Option(help: "Seconds a read may wait for the network before failing with ETIMEDOUT.")
    var readTimeout: Double = 30

    @Option(name: .customShort("o"), help: "A FUSE mount option such as allow_other (repeatable).")
    var fuseOptions: [String] = []

    @Option(help: "Write the log here (default when in the background: <cache-dir>/goesfs.log).")
    var logFile: String?

    @Option(help: "The log's format: text, or json (one event per line, for journald and log shippers).")
    var logFormat: LogFormat = .text

    @Option(help: "Serve Prometheus metrics at http://ADDRESS:PORT/metrics; PORT alone means 127.0.0.1. Off by default; any other address must be given explicitly, as a number (0.0.0.0: every interface).")
    var metrics: String?

    @Option(help: "A TOML file of mount settings; keys mirror these flags (cache_size = \"20G\"). Flags win.")
    var config: String?

    @Flag(help: "Turn off readahead and next-scan prefetch (for comparisons).")
    var noPrefetch = false

    @Flag(help: "Stay in the foreground and log to stderr.")
    var foreground = false

    @Flag(help: "Verbose logging.")
    var debug = false

    func validate() throws {
        _ = try buckets()
        for url in sourceURLs where !(url.hasPrefix("http://") || url.hasPrefix("https://")) && Source.named(url) == nil {
            throw CLIError("a source must be an http:// or https:// URL, or aws, gcp or public, not \(Source.redacted(url))")
        }
        if let maxBandwidth, ByteSize.parse(maxBandwidth) == nil {
            throw CLIError("--max-bandwidth must be a rate such as 10M (bytes per second: digits with K, M, G, T or P, less than 8 EiB), not '\(maxBandwidth)'")
        }
        if let cacheSize {
            guard let bytes = ByteSize.parse(cacheSize) else {
                throw CLIError("--cache-size must be a size such as 500M or 20G (digits with K, M, G, T or P, less than 8 EiB), not '\(cacheSize)'")
            }
            // Downloads write this much before it is recorded and evictable: a smaller cap could not hold.
            let minimum = Policies.minimumCacheBytes(downloadThreads: MountConfiguration.defaultDownloadThreads)
            guard bytes >= minimum else {
                throw CLIError("--cache-size \(cacheSize) is below the \(ByteSize.human(minimum)) that downloads in flight need "
                               + "(\(MountConfiguration.defaultDownloadThreads) download threads × 2 MiB written before it is recorded, plus 8 MiB for replies being served)")
            }
        }
        // Bounds, so no later conversion of a number (to milliseconds, to a count of handles) can trap.
        _ = try metricsAddress()
        guard (1...4096).contains(maxConnections) else { throw CLIError("--max-connections must be between 1 and 4096, not \(maxConnections)") }
        guard (1...1000).contains(retries) else { throw CLIError("--retries must be between 1 and 1000, not \(retries)") }
        guard readTimeout.isFinite, readTimeout > 0, readTimeout <= 86_400 else {
            throw CLIError("--read-timeout must be more than 0 and at most 86400 seconds, not \(readTimeout)")
        }
        guard sourceCooldown.isFinite, sourceCooldown >= 0, sourceCooldown <= 86_400 else {
            throw CLIError("--source-cooldown must be between 0 and 86400 seconds, not \(sourceCooldown)")
        }
    }

    func run() throws {
        let options = try MountOptions(fuseOptions)
        try Mountpoint.prepare(mountpoint, allowNonEmpty: options.allowNonEmpty)
        let cacheDirectory = try prepareCacheDirectory()
        if foreground {
            try serve(cacheDirectory: cacheDirectory, options: options)
        } else {
            // The background process logs to a file it knows by name, so SIGHUP can reopen it.
            let log = logFile ?? cacheDirectory + "/" + CacheDirectory.defaultLogName
            try Daemon.start(arguments: CommandLine.arguments + ["--foreground"] + (logFile == nil ? ["--log-file", log] : []),
                             logFile: log, mountpoint: mountpoint)
        }
    }

    /// Where `/metrics` listens, if it is on (`MetricsAddress` says which addresses are accepted).
    func metricsAddress() throws -> MetricsAddress? {
        do { return try metrics.map { text throws(MetricsError) in try MetricsAddress(parsing: text) } } catch { throw CLIError(error.description) }
    }

    /// `--source` URLs in order, else `--endpoint` (or its environment variable); empty means the public defaults.
    var sourceURLs: [String] {
        if !sources.isEmpty { return sources }
        return (endpoint ?? ProcessInfo.processInfo.environment["GOESFS_ENDPOINT"]).map { [$0] } ?? []
    }

    func buckets() throws -> [String] {
        try satellites.split(separator: ",").map { text in
            guard let satellite = Satellite(parsing: text.trimmingCharacters(in: .whitespaces)) else {
                throw CLIError("unknown satellite '\(text)': use 16, 17, 18 or 19")
            }
            return satellite.bucket
        }
    }

    /// Creates the cache directory if missing (its parents 0755, itself 0700) and checks that it is
    /// safe to use (`CacheDirectory`), so a bad one is refused here, in the foreground.
    private func prepareCacheDirectory() throws -> String {
        let directory = CacheLocation.resolve(cacheDir)
        // mkdir -p of the parents by hand, so the message names the component that failed and why.
        var path = ""
        for component in directory.split(separator: "/").dropLast() {
            path += "/" + component
            if mkdir(path, 0o755) != 0 && errno != EEXIST {
                throw CLIError("cannot create the cache directory \(directory): \(path): \(String(cString: strerror(errno)))")
            }
        }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw CLIError("cannot create the cache directory \(directory): \(String(cString: strerror(errno)))")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError("cannot create the cache directory \(directory): something else is in the way")
        }
        guard access(directory, W_OK) == 0 else { throw CLIError("the cache directory \(directory) is not writable") }
        do {
            _ = try CacheDirectory(path: directory, create: true)
        } catch {
            throw CLIError(error.description)
        }
        return directory
    }

    /// The cache's size cap and a line for the log saying how it was chosen. The default is a quarter
    /// of the room the cache has (free space plus what it already holds), at least 1 GiB, but never
    /// more than half of that room: a cap above the free space would fill the disk instead of evicting.
    func cacheLimit(cacheDirectory: String, cachedBytes: Int) -> (bytes: Int, reason: String) {
        var fs = statvfs()
        let free: Int? = statvfs(cacheDirectory, &fs) == 0
            ? Int(exactly: UInt64(fs.f_bavail).multipliedReportingOverflow(by: UInt64(fs.f_frsize)).partialValue) : nil
        let room = free.map { $0.addingReportingOverflow(cachedBytes).partialValue }
        if let cacheSize, let bytes = ByteSize.parse(cacheSize) {
            let warning = room.map { bytes > $0 ? "; only \(ByteSize.human($0)) are free for it at \(cacheDirectory)" : "" } ?? ""
            return (bytes, "cache size cap: \(ByteSize.human(bytes)) (--cache-size)\(warning)")
        }
        guard let room, room > 0 else {
            return (1 << 30, "cache size cap: 1 GiB (the free space at \(cacheDirectory) is unknown)")
        }
        let bytes = min(max(room / 4, 1 << 30), room / 2)
        return (bytes, "cache size cap: \(ByteSize.human(bytes)) (a quarter of the \(ByteSize.human(room)) free for the cache at "
                + "\(cacheDirectory), at least 1 GiB but at most half of it; --cache-size sets it)")
    }
}
