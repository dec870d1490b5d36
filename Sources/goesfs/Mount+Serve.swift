import ArgumentParser
import BlockCache
import FileSystem
import Foundation
import FUSEBridge
import Logging
import LogOutput
import MetricsHTTP
import ObjectStore

extension Mount {
    /// Mounts and serves in this process until unmounted or signalled.
    func serve(cacheDirectory: String, options: MountOptions) throws {
        do { try reopenLog() } catch {
            Daemon.reportFailure("\(error)")
            throw ExitCode.failure
        }
        let level: Logger.Level = debug ? .debug : .info
        let format = logFormat
        LoggingSystem.bootstrap { label in
            switch format {
            case .json: return JSONLogHandler(logLevel: level, label: label)
            case .text:
                var handler = TextLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
        let logger = Logger(label: "goesfs")
        let descriptors = DescriptorLimit.raiseToHardLimit() // logged once the cache is open: a refusal stays one line
        let pool = SourcePool(sources: sourceURLs.isEmpty ? Source.publicDefaults : sourceURLs.flatMap { Source.named($0) ?? [Source.endpoint($0)] },
                              coolDown: sourceCooldown)
        let statistics = Statistics(sources: pool)
        let client = S3Client(sources: pool, retry: RetryPolicy(maxAttempts: retries, deadline: readTimeout),
                              maxConnections: maxConnections,
                              bandwidth: maxBandwidth.flatMap(ByteSize.parse).map(BandwidthLimit.init(bytesPerSecond:)),
                              observer: LoggingObserver(statistics: statistics, logger: logger))
        let lock: CacheLock
        let index: CacheIndex
        do {
            let directory = try CacheDirectory(path: cacheDirectory, create: true)
            lock = try CacheLock(directory: directory, waitSeconds: 5)
            index = try CacheIndex(directory: directory)
        } catch {
            Daemon.reportFailure(Mount.cacheFailure(error, in: cacheDirectory))
            throw ExitCode.failure
        }
        defer { withExtendedLifetime(lock) {} }
        if let note = index.upgradeNote { logger.notice("\(note)") }
        let limit = cacheLimit(cacheDirectory: cacheDirectory, cachedBytes: (try? index.cachedBytes()) ?? 0)
        logger.info("\(descriptors)")
        logger.info("\(limit.reason)")
        try? index.recordCap(limit.bytes)
        var configuration = MountConfiguration(buckets: try buckets(), cacheDirectory: cacheDirectory,
                                               cacheLimit: limit.bytes)
        configuration.prefetch = !noPrefetch
        configuration.versionLines = GoesFS.versionLines
        let fileSystem = GOESFileSystem(
            configuration: configuration,
            client: client, index: index, statistics: statistics, logger: logger)
        let metricsServer: MetricsServer?
        do {
            metricsServer = try metricsAddress().map { address throws in
                try MetricsServer(address: address) { (PrometheusText.contentType, fileSystem.metricsText()) }
            }
        } catch {
            Daemon.reportFailure("\(error)")
            throw ExitCode.failure
        }
        // Stopped once the session is over, whichever way it ends.
        defer { metricsServer?.stop() }
        if let metricsServer {
            metricsServer.start()
            let exposed = metricsServer.address.isLoopback ? "" : " (not loopback: anyone who can reach this address can read it)"
            logger.info("metrics at http://\(metricsServer.address)/metrics\(exposed)")
        }
        let bridge = FUSEBridge(fileSystem: fileSystem, ownership: options.ownership, logger: logger)
        let session = MountSession(mountpoint: mountpoint, options: options.forLibfuse)
        var hooks = MountSession.Hooks()
        let mountpoint = mountpoint
        hooks.signalsInstalled = {
            SignalActions.install(
                onHangup: { [self] in
                    try? reopenLog()
                    logger.info("reopened the log file (SIGHUP)")
                },
                onUser1: { logger.info("report requested (SIGUSR1):\n\(fileSystem.statsReport())") })
        }
        hooks.ready = {
            logger.info("mounted \(pool.sources.map(\.description).joined(separator: ", ")) at \(mountpoint); cache in \(cacheDirectory)")
            Daemon.reportReady()
            SystemdNotify.send("READY=1\nSTATUS=serving \(mountpoint)")
        }
        hooks.stopping = {
            SystemdNotify.send("STOPPING=1")
            fileSystem.finishDownloads(within: 10)
            do { try index.checkpoint() } catch { logger.warning("could not checkpoint the cache index: \(error)") }
        }
        do {
            try session.run(bridge: bridge, hooks: hooks)
        } catch {
            Daemon.reportFailure("\(error)")
            throw ExitCode.failure
        }
        logger.info("unmounted \(mountpoint)")
    }

    /// Why the cache cannot be used, naming a full disk as such (SQLite says "database or disk is full").
    static func cacheFailure(_ error: Error, in directory: String) -> String {
        let full = (error as? SQLiteError)?.isDiskFull == true || (error as? CacheDirectory.Failure)?.code == ENOSPC
            || "\(error)".contains("ENOSPC")
        if full { return "the cache disk is full (ENOSPC) at \(directory); free some space there or choose another --cache-dir" }
        return "cannot use the cache in \(directory): \(error)"
    }

    /// Points stderr (the log) at `--log-file`, appending; again on SIGHUP after a rotation.
    func reopenLog() throws {
        guard let logFile else { return }
        let descriptor = try Daemon.openLog(logFile)
        dup2(descriptor, STDERR_FILENO)
        close(descriptor)
    }
}
