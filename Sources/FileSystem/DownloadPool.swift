import Foundation

/// A fixed set of threads that run downloads, so a burst of reads cannot spawn unbounded threads
/// and each thread keeps its own curl connection and SQLite connection warm.
///
/// Jobs run by priority: a read someone waits for first, then readahead, then background work
/// (whole-object fills, next-scan prefetch), which never takes the last `reserved` threads: a
/// reader's miss does not queue behind a 256 MiB fill.
final class DownloadPool: @unchecked Sendable {
    enum Priority: Int, CaseIterable { case reader = 0, readahead = 1, background = 2 }

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var queues: [[@Sendable () -> Void]] = Array(repeating: [], count: Priority.allCases.count)
    private var backgroundRunning = 0
    private let backgroundLimit: Int

    init(threads: Int, reserved: Int = 2) {
        let count = max(1, threads)
        backgroundLimit = max(1, count - max(0, reserved))
        for index in 0..<count {
            let thread = Thread { [self] in self.run() }
            thread.name = "goesfs-download-\(index)"
            thread.start()
        }
    }

    func submit(_ priority: Priority, _ job: @escaping @Sendable () -> Void) {
        condition.lock()
        queues[priority.rawValue].append(job)
        condition.unlock()
        condition.broadcast()
    }

    private func next() -> (@Sendable () -> Void, Priority) {
        condition.lock()
        defer { condition.unlock() }
        while true {
            for priority in Priority.allCases where !queues[priority.rawValue].isEmpty {
                if priority == .background && backgroundRunning >= backgroundLimit { continue }
                if priority == .background { backgroundRunning += 1 }
                return (queues[priority.rawValue].removeFirst(), priority)
            }
            condition.wait()
        }
    }

    private func run() {
        while true {
            let (job, priority) = next()
            job()
            if priority == .background {
                condition.lock()
                backgroundRunning -= 1
                condition.unlock()
                condition.broadcast()
            }
        }
    }
}
