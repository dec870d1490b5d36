import Foundation
import Locking
import Logging
import ObjectStore

/// Runs the network diagnostics at mount and again after repeated failures, and keeps the last
/// report for `.diagnostics` (reading that file never waits on the network).
final class DiagnosticsRunner: Sendable {
    static let failuresBeforeRun = 3
    static let minimumInterval = 60.0

    private struct State { var report = "network diagnostics are running…\n"; var running = false; var lastRun = 0.0; var failuresInARow = 0 }
    private let state = Locked(State())
    private let sources: [Source]
    private let bucket: String
    private let extra: [String]
    private let statistics: Statistics
    private let logger: Logger

    init(sources: [Source], bucket: String, extra: [String], statistics: Statistics, logger: Logger) {
        self.sources = sources
        self.bucket = bucket
        self.extra = extra
        self.statistics = statistics
        self.logger = logger
    }

    var report: String { state.withLock { $0.report } }

    func downloadSucceeded() { state.withLock { $0.failuresInARow = 0 } }

    func downloadFailed() {
        let due = state.withLock { s -> Bool in
            s.failuresInARow += 1
            return s.failuresInARow >= DiagnosticsRunner.failuresBeforeRun
                && Date().timeIntervalSince1970 - s.lastRun >= DiagnosticsRunner.minimumInterval
        }
        if due { start(reason: "after \(DiagnosticsRunner.failuresBeforeRun) failed downloads in a row") }
    }

    /// Starts a run in the background unless one is under way.
    func start(reason: String) {
        let begin = state.withLock { s -> Bool in
            guard !s.running else { return false }
            s.running = true
            s.lastRun = Date().timeIntervalSince1970
            return true
        }
        guard begin else { return }
        Thread.detachNewThread { [self] in
            let probes = NetworkDiagnostics.probe(sources: sources, bucket: bucket)
            let text = "Run \(reason) at \(Timestamp.iso(Date().timeIntervalSince1970))\n"
                + NetworkDiagnostics.report(probes, extra: extra)
            let verdict = NetworkDiagnostics.verdict(probes)
            state.withLock { $0.report = text; $0.running = false; $0.failuresInARow = 0 }
            logger.info("network diagnostics (\(reason)): \(verdict)")
            statistics.noteEvent("network diagnostics \(reason): \(verdict)")
        }
    }
}
