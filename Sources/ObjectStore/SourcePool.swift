import Foundation
import Locking

/// The ordered sources for the same keys, and which of them is healthy.
///
/// Requests go to the first source that is not demoted. A source whose requests fail
/// `demoteAfter` times in a row (timeouts, network or server errors: not 404/403, which are about
/// the object) is demoted for `coolDown` seconds; after that it is tried again first.
public final class SourcePool: Sendable {
    public struct Health: Sendable {
        public var attempts = 0
        public var failures = 0
        public var consecutiveFailures = 0
        /// Seconds since the epoch until which the source is skipped; 0 when active.
        public var demotedUntil: Double = 0
    }

    public let sources: [Source]
    public let demoteAfter: Int
    public let coolDown: Double
    private let health: Locked<[Health]>

    public init(sources: [Source], demoteAfter: Int = 3, coolDown: Double = 60) {
        precondition(!sources.isEmpty)
        self.sources = sources
        self.demoteAfter = demoteAfter
        self.coolDown = coolDown
        health = Locked(Array(repeating: Health(), count: sources.count))
    }

    /// The index of the source to use now: the first active one, or, when all are demoted,
    /// the one whose cool-down ends first (a request must go somewhere).
    public func pick(now: Double = Date().timeIntervalSince1970) -> Int {
        health.withLock { h in
            h.indices.first { h[$0].demotedUntil <= now } ?? h.indices.min { h[$0].demotedUntil < h[$1].demotedUntil }!
        }
    }

    public func succeeded(_ index: Int) {
        health.withLock { h in
            h[index].attempts += 1
            h[index].consecutiveFailures = 0
            h[index].demotedUntil = 0
        }
    }

    /// Records a failure; returns true when this one demoted the source.
    @discardableResult
    public func failed(_ index: Int, category: ErrorCategory, now: Double = Date().timeIntervalSince1970) -> Bool {
        health.withLock { h in
            h[index].attempts += 1
            h[index].failures += 1
            guard category.isRetryable else { return false }
            h[index].consecutiveFailures += 1
            guard h[index].consecutiveFailures >= demoteAfter, sources.count > 1 else { return false }
            h[index].consecutiveFailures = 0
            h[index].demotedUntil = now + coolDown
            return true
        }
    }

    /// libcurl sent an attempt again by itself (a reused connection was dead): the source got one
    /// more request, and it failed; never a demotion (the next send usually works).
    public func resent(_ source: Source) {
        guard let index = sources.firstIndex(of: source) else { return }
        health.withLock { h in
            h[index].attempts += 1
            h[index].failures += 1
        }
    }

    public func snapshot() -> [(source: Source, health: Health)] {
        let h = health.withLock { $0 }
        return Array(zip(sources, h))
    }
}
