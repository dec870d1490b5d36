import Foundation

/// Written only by `SignalActions.install` before the handlers exist; read by the handlers.
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// SIGHUP (reopen the log, for logrotate) and SIGUSR1 (write the report to the log).
///
/// The handlers only write the signal number to a pipe (async-signal-safe); a thread reads it and
/// does the work in ordinary code. SIGTERM/SIGINT stay with libfuse: they end the loop.
enum SignalActions {
    static func install(onHangup: @escaping @Sendable () -> Void, onUser1: @escaping @Sendable () -> Void) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { return }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        signalPipeWriteEnd = ends[1]
        _ = fcntl(ends[1], F_SETFL, O_NONBLOCK)
        for signal in [SIGHUP, SIGUSR1] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(signalPipeWriteEnd, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(signal, &action, nil)
        }
        let readEnd = ends[0]
        Thread.detachNewThread {
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                guard n == 1 else { return }
                if Int32(byte) == SIGHUP { onHangup() } else if Int32(byte) == SIGUSR1 { onUser1() }
            }
        }
    }
}
