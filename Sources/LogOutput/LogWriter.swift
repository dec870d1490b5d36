import Glibc // Linux only, like the filesystem (sigtimedwait, pthread_mutex_timedlock)
import Logging

/// The log's output: whole lines written to a descriptor (stderr, which the daemon points at its
/// log file) with write(2), never through stdio.
///
/// Why not stdio: libfuse ends its loop by cancelling its worker threads, and one cancelled inside
/// `fwrite` keeps stderr's FILE lock for good; the next log line (the main thread's "unmounted")
/// then waits forever. Here a line is written under this writer's own mutex with cancellation
/// disabled, so no thread can die holding it, and a line that cannot be written within `patience`
/// (the lock held that long, a full pipe or socket nobody reads, a closed descriptor, a full disk)
/// is dropped: logging never crashes and never blocks for good.
public final class LogWriter: @unchecked Sendable {
    /// The process's stderr, shared by every handler so their lines never interleave.
    public static let standardError = LogWriter(descriptor: STDERR_FILENO)

    private let descriptor: Int32
    private let patience: Double
    /// A raw mutex rather than `Locked`: it is taken with a deadline, and its body is the write.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// At most this much goes in one write(2): a pipe takes it whole once poll says it has room.
    private static let chunkBytes = 4096

    public init(descriptor: Int32, patience seconds: Double = 2) {
        self.descriptor = descriptor
        patience = seconds
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Writes `line` (which should end in a newline) whole, or not at all if the descriptor fails
    /// or stays busy past the deadline; true when it was written. A line cut by a failure midway
    /// is not completed.
    @discardableResult
    public func write(_ line: String) -> Bool {
        var bytes = Array(line.utf8)
        guard !bytes.isEmpty else { return true }
        guard descriptor >= 0 else { return false } // poll would ignore it and wait out the patience
        let deadline = Self.now() + patience
        // Cancellation points (write, poll) are passed with the lock held: no cancel in between.
        var cancelState: Int32 = 0
        pthread_setcancelstate(Int32(PTHREAD_CANCEL_DISABLE), &cancelState)
        defer { pthread_setcancelstate(cancelState, nil) }
        var lockDeadline = Self.timespec(at: deadline)
        guard pthread_mutex_timedlock(mutex, &lockDeadline) == 0 else { return false }
        defer { pthread_mutex_unlock(mutex) }
        return Self.withoutSIGPIPE {
            bytes.withUnsafeMutableBytes { Self.writeAll($0, to: descriptor, until: deadline) }
        }
    }

    private static func writeAll(_ bytes: UnsafeMutableRawBufferPointer, to descriptor: Int32, until deadline: Double) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        var done = 0
        while done < bytes.count {
            let left = deadline - now()
            guard left > 0 else { return false }
            var wanted = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&wanted, 1, Int32(min(left * 1000 + 1, 60_000)))
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue } // timed out: the deadline check above decides
            if ready < 0 || wanted.revents & Int16(POLLNVAL) != 0 { return false }
            let n = Glibc.write(descriptor, base + done, min(bytes.count - done, chunkBytes))
            if n > 0 { done += n; continue }
            if n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) { continue }
            return false // EPIPE, EBADF, ENOSPC, EIO…: the line is dropped
        }
        return true
    }

    /// Runs `body` with SIGPIPE blocked in this thread, and swallows the one a closed pipe raised:
    /// outside libfuse's loop SIGPIPE kills the process, and a closed log pipe must not.
    private static func withoutSIGPIPE<Result>(_ body: () -> Result) -> Result {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previous)
        var pending = sigset_t()
        sigpending(&pending)
        let wasPending = sigismember(&pending, SIGPIPE) == 1
        let result = body()
        if !wasPending {
            sigpending(&pending)
            if sigismember(&pending, SIGPIPE) == 1 {
                var noWait = Glibc.timespec(tv_sec: 0, tv_nsec: 0)
                _ = sigtimedwait(&pipeSignal, nil, &noWait)
            }
        }
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        return result
    }

    private static func now() -> Double {
        var clock = Glibc.timespec()
        clock_gettime(CLOCK_REALTIME, &clock)
        return Double(clock.tv_sec) + Double(clock.tv_nsec) / 1e9
    }

    private static func timespec(at seconds: Double) -> Glibc.timespec {
        let whole = seconds.rounded(.down)
        return Glibc.timespec(tv_sec: Int(whole), tv_nsec: Int((seconds - whole) * 1e9))
    }
}

/// The text log: swift-log's `StreamLogHandler` line, byte for byte (the e2e tests and people grep
/// it), `2026-12-01T23:22:16+0000 info goesfs: key=value [goesfs] message`, written by a `LogWriter`.
public struct TextLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata = Logger.Metadata()
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let writer: LogWriter

    public init(label: String, writer: LogWriter = .standardError,
                metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.writer = writer
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let explicit = event.metadata { merged.merge(explicit) { $1 } }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        writer.write(Self.line(time: LogClock.localTimestamp(), level: event.level, label: label,
                               metadata: merged, source: event.source, message: event.message))
    }

    static func line(time: String, level: Logger.Level, label: String, metadata: Logger.Metadata,
                     source: String, message: Logger.Message) -> String {
        let pairs = metadata.isEmpty ? "" : " " + metadata.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ")
        return "\(time) \(level)\(label.isEmpty ? "" : " ")\(label):\(pairs) [\(source)] \(message)\n"
    }
}

/// The text log's clock: local time to the second with its offset, `2026-12-01T23:22:16+0000`.
public enum LogClock {
    public static func localTimestamp() -> String {
        var now = time(nil)
        var parts = tm()
        guard localtime_r(&now, &parts) != nil else { return "<unknown>" }
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
