import Foundation
import Locking
import Logging

/// Warnings that can repeat in a tight loop (eviction that finds everything in use) are logged once
/// per interval, with the count of those held back.
public final class RateLimitedWarnings: Sendable {
    private struct Seen { var lastLogged: UInt64; var suppressed: Int }
    private let seen = Locked<[String: Seen]>([:])
    private let intervalNanoseconds: UInt64
    private let logger: Logger

    public init(logger: Logger, intervalSeconds: Double = 60) {
        self.logger = logger
        intervalNanoseconds = UInt64(intervalSeconds * 1e9)
    }

    public func warning(_ text: String, key: String? = nil) {
        let now = DispatchTime.now().uptimeNanoseconds
        let id = key ?? text
        let held: Int? = seen.withLock { table in
            if var entry = table[id], now - entry.lastLogged < intervalNanoseconds {
                entry.suppressed += 1
                table[id] = entry
                return nil
            }
            let suppressed = table[id]?.suppressed ?? 0
            table[id] = Seen(lastLogged: now, suppressed: 0)
            return suppressed
        }
        guard let held else { return }
        logger.warning("\(text)\(held > 0 ? " (\(held) more like this since the last one)" : "")")
    }
}
