import ArgumentParser
import Foundation
import Locking

struct Prefetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Warm the cache: read files on a mount ahead of use.",
        discussion: """
            Give files or folders on a goesfs mount; folders are walked. With the friendly view a
            shell glob picks a band and a time range: goesfs prefetch ~/goes/goes16/RadC/C13/2023-03-07/1[4-6]/*.nc
            """
    )

    @Argument(help: "Files or folders on a goesfs mount.")
    var paths: [String]

    @Option(help: "Files read at once.")
    var concurrency: Int = 4

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
    }

    func run() throws {
        let files = try collect()
        let total = files.reduce(0) { $0 + $1.size }
        let progress = PrefetchProgress(files: files.count, bytes: total, terminal: isatty(STDERR_FILENO) == 1)
        let queue = Locked(files[...])
        let group = DispatchGroup()
        for _ in 0..<min(concurrency, max(1, files.count)) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                while let file = queue.withLock({ $0.popFirst() }) { progress.finished(file.path, bytes: readAll(file.path)) }
            }
        }
        group.wait()
        progress.done()
        if progress.failures > 0 { throw ExitCode(1) }
    }

    /// Regular files under the arguments (links followed, as a friendly-view leaf is a link).
    private func collect() throws -> [(path: String, size: Int)] {
        var files: [(String, Int)] = []
        for path in paths {
            var st = stat()
            guard stat(path, &st) == 0 else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
            if st.st_mode & S_IFMT == S_IFDIR {
                files += walk(path)
            } else {
                files.append((path, Int(st.st_size)))
            }
        }
        return files
    }

    /// Regular files below a folder, depth first, in name order.
    private func walk(_ folder: String) -> [(String, Int)] {
        var found: [(String, Int)] = []
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted() {
            let full = folder + "/" + name
            var entry = stat()
            guard stat(full, &entry) == 0 else { continue }
            if entry.st_mode & S_IFMT == S_IFDIR { found += walk(full) }
            else if entry.st_mode & S_IFMT == S_IFREG { found.append((full, Int(entry.st_size))) }
        }
        return found
    }

    /// Reads a file to the end in 1 MiB pieces (so the mount fetches and caches it); bytes read or -1.
    private func readAll(_ path: String) -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return -1 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return -1 }
            if n == 0 { return total }
            total += n
        }
    }
}

/// One status line (redrawn on a terminal), and a summary at the end.
final class PrefetchProgress: Sendable {
    private struct State { var files = 0; var bytes = 0; var failures: [String] = [] }
    private let state = Locked(State())
    private let totalFiles: Int, totalBytes: Int, terminal: Bool
    private let started = Date()

    init(files: Int, bytes: Int, terminal: Bool) {
        totalFiles = files
        totalBytes = bytes
        self.terminal = terminal
    }

    var failures: Int { state.withLock { $0.failures.count } }

    func finished(_ path: String, bytes: Int) {
        let line = state.withLock { s -> String in
            s.files += 1
            if bytes < 0 { s.failures.append(path) } else { s.bytes += bytes }
            return status(s)
        }
        if terminal { Console.error("\r" + line + "\u{1B}[K") }
    }

    func done() {
        let s = state.withLock { $0 }
        var text = (terminal ? "\r" : "") + status(s) + (terminal ? "\u{1B}[K" : "") + "\n"
        for path in s.failures { text += "failed: \(path)\n" }
        Console.error(text)
    }

    private func status(_ s: State) -> String {
        let seconds = max(0.001, Date().timeIntervalSince(started))
        let rate = Double(s.bytes) / seconds / 1e6
        let eta = rate > 0 ? String(format: ", ETA %.0fs", Double(totalBytes - s.bytes) / 1e6 / rate) : ""
        return String(format: "prefetched %d/%d files, %.1f/%.1f MB, %.1f MB/s", s.files, totalFiles,
                      Double(s.bytes) / 1e6, Double(totalBytes) / 1e6, rate) + (s.files < totalFiles ? eta : "")
    }
}
