import Foundation
import LogOutput

/// Writes to stderr (or stdout) with write(2), ignoring errors: `FileHandle.write` traps when the write fails
/// (a full disk under the log file, a closed pipe), and a failing report must not become a crash.
enum Console {
    /// Through the log's writer: in the daemon stderr is the log, and a refusal written there must
    /// not tear a log line another thread is writing, nor wait on a lock a cancelled thread kept.
    static func error(_ text: String) { LogWriter.standardError.write(text) }

    /// Stdout, for output drawn without `print` (the live view): a closed pipe ends it quietly.
    static func output(_ text: String) { put(text, to: STDOUT_FILENO) }

    private static func put(_ text: String, to descriptor: Int32) {
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            done += n
        }
    }
}
