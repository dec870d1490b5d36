import Foundation
import Synchronization

/// A fixed set of threads that run downloads, so a burst of reads cannot spawn unbounded threads
/// and each thread keeps its own curl connection and SQLite connection warm.
final class DownloadPool: Sendable {
    private let queue = Mutex<[@Sendable () -> Void]>([])
    private let ready = DispatchSemaphore(value: 0)

    init(threads: Int) {
        for index in 0..<max(1, threads) {
            let thread = Thread { [self] in self.run() }
            thread.name = "goesfs-download-\(index)"
            thread.start()
        }
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        queue.withLock { $0.append(job) }
        ready.signal()
    }

    private func run() {
        while true {
            ready.wait()
            guard let job = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
            job()
        }
    }
}
