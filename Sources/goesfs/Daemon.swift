import ArgumentParser
import Foundation

/// Runs the mount in a background process and waits until it is usable (or says why not).
///
/// The child is this same program with `--foreground`; it tells the parent "ready" or an error on a
/// pipe passed as file descriptor 3. Re-executing avoids fork() in a process that already has threads.
enum Daemon {
    static let readyDescriptor: Int32 = 3
    static let environmentKey = "GOESFS_READY_FD"

    static func start(arguments: [String], logFile: String, mountpoint: String) throws {
        let log = try openLog(logFile)
        defer { close(log) }
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw CLIError("cannot create a pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Opened here, not by name in the child: so a refusal (a link) is our message, not a spawn error.
        posix_spawn_file_actions_adddup2(&actions, log, 1)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Close the read end first: it may itself be descriptor 3.
        posix_spawn_file_actions_addclose(&actions, readEnd)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, readyDescriptor)
        if writeEnd != readyDescriptor { posix_spawn_file_actions_addclose(&actions, writeEnd) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID (glibc, _GNU_SOURCE only, so not imported): detach from the terminal's session.
        posix_spawnattr_setflags(&attributes, 0x80)

        var environment = ProcessInfo.processInfo.environment
        environment[environmentKey] = String(readyDescriptor)
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { (envp + argv).forEach { free($0) } }

        var child: pid_t = 0
        let rc = posix_spawn(&child, "/proc/self/exe", &actions, &attributes, argv, envp)
        close(writeEnd)
        guard rc == 0 else { throw CLIError("cannot start the background process: \(String(cString: strerror(rc)))") }

        var message = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(readEnd, &buffer, buffer.count)
            if n > 0 { message += buffer[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        close(readEnd)
        let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text == "ready" else {
            let reason = text.isEmpty ? "the background process exited before mounting; see \(logFile)" : text
            Console.error("Error: \(reason)\n")
            throw ExitCode.failure
        }
        // The mount answers once libfuse's loop runs; a stat proves it before we return.
        var st = stat()
        guard stat(mountpoint, &st) == 0 else {
            Console.error("goesfs: mounted, but \(mountpoint) does not answer: \(String(cString: strerror(errno)))\n")
            throw ExitCode.failure
        }
        print("goesfs: mounted at \(mountpoint) (pid \(child), log \(logFile))")
    }

    /// Opens a log file for appending, created 0640; a symbolic link in its place is refused, never followed.
    static func openLog(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            let why = errno == ELOOP ? "it is a symbolic link, which goesfs does not follow" : String(cString: strerror(errno))
            throw CLIError("cannot open the log file \(path): \(why)")
        }
        return fd
    }

    static func reportReady() { tell("ready\n") }

    /// The parent hears first (the pipe cannot be full), then the log, which may sit on a full disk.
    static func reportFailure(_ message: String) {
        tell(message + "\n")
        Console.error("Error: \(message)\n")
    }

    /// Writes to the parent's pipe once; nothing when running in the foreground by hand.
    private static func tell(_ text: String) {
        guard ProcessInfo.processInfo.environment[environmentKey] != nil else { return }
        _ = text.withCString { write(readyDescriptor, $0, strlen($0)) }
        close(readyDescriptor)
        unsetenv(environmentKey)
    }
}

/// Runs a program and returns its exit status.
enum Subprocess {
    static func run(_ program: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        do { try process.run() } catch { return 127 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
