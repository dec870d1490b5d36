import BlockCache
import Foundation
import Locking
import Logging

/// Whether the cache can take new blocks right now. When writing fails (the cache disk is full,
/// or failing), reads go on from the network and the bytes are served from memory; storing is
/// tried again after a pause, so caching resumes by itself once space returns.
final class CacheStoreHealth: Sendable {
    static let pauseNanoseconds: UInt64 = 10_000_000_000
    private struct State { var pausedUntil: UInt64 = 0; var failing = false }
    private let state = Locked(State())
    private let statistics: Statistics
    private let logger: Logger
    private let warnings: RateLimitedWarnings

    init(statistics: Statistics, logger: Logger) {
        self.statistics = statistics
        self.logger = logger
        warnings = RateLimitedWarnings(logger: logger)
    }

    /// False while storing is paused after a failure.
    var mayStore: Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        return state.withLock { now >= $0.pausedUntil }
    }

    func storeFailed(_ error: any Error, what: String) {
        // Only a disk that cannot take writes pauses storing for everyone; anything else (a cache
        // file replaced under an open object, a constraint) costs just this one block or object.
        guard CacheStoreHealth.isDiskFull(error) || CacheStoreHealth.isDiskFailure(error) else {
            warnings.warning("could not store \(what) in the cache (\(error)); served from memory", key: "store-other")
            return
        }
        let now = DispatchTime.now().uptimeNanoseconds
        let first = state.withLock { s -> Bool in
            defer { s.failing = true; s.pausedUntil = now + CacheStoreHealth.pauseNanoseconds }
            return !s.failing
        }
        guard first else { return }
        let cause = CacheStoreHealth.isDiskFull(error) ? "the cache disk is full" : "the cache cannot be written"
        let text = "\(cause) (\(error)) while storing \(what): reads go on from the network, nothing is stored until it can be"
        logger.error("\(text)")
        statistics.noteEvent(text)
    }

    func storeSucceeded() {
        let recovered = state.withLock { s -> Bool in
            defer { s.failing = false }
            return s.failing
        }
        guard recovered else { return }
        logger.notice("the cache can be written again: caching resumed")
        statistics.noteEvent("caching resumed")
    }

    static func isDiskFailure(_ error: any Error) -> Bool {
        if let posix = error as? POSIXError { return [.EIO, .EROFS].contains(posix.code) }
        if let sqlite = error as? SQLiteError { return sqlite.code & 0xff == 10 /* SQLITE_IOERR */ || sqlite.code == 8 /* READONLY */ }
        if let failure = error as? CacheDirectory.Failure, let code = failure.code { return [ENOSPC, EDQUOT, EIO, EROFS].contains(code) }
        return false
    }

    static func isDiskFull(_ error: any Error) -> Bool {
        if let failure = error as? CacheDirectory.Failure { return failure.code == ENOSPC || failure.code == EDQUOT }
        if let posix = error as? POSIXError { return posix.code == .ENOSPC || posix.code == .EDQUOT }
        if let sqlite = error as? SQLiteError { return sqlite.code == 13 /* SQLITE_FULL */ }
        return false
    }
}
