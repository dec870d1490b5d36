import Foundation
import Locking

/// A fixed set of threads that run downloads, so a burst of reads cannot spawn unbounded threads
/// and each thread keeps its own curl connection and SQLite connection warm.
///
/// Reads someone waits for go before prefetches, so readahead never delays a reader.
final class DownloadPool: Sendable {
    private struct Queues { var urgent: [@Sendable () -> Void] = []; var background: [@Sendable () -> Void] = [] }
    private let queue = Locked(Queues())
    private let ready = DispatchSemaphore(value: 0)

    init(threads: Int) {
        for index in 0..<max(1, threads) {
            let thread = Thread { [self] in self.run() }
            thread.name = "goesfs-download-\(index)"
            thread.start()
        }
    }

    func submit(urgent: Bool = true, _ job: @escaping @Sendable () -> Void) {
        queue.withLock { if urgent { $0.urgent.append(job) } else { $0.background.append(job) } }
        ready.signal()
    }

    private func run() {
        while true {
            ready.wait()
            let job = queue.withLock { q -> (@Sendable () -> Void)? in
                if !q.urgent.isEmpty { return q.urgent.removeFirst() }
                return q.background.isEmpty ? nil : q.background.removeFirst()
            }
            guard let job else { continue }
            job()
        }
    }
}
