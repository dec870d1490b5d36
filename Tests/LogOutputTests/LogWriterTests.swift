import Glibc
import Logging
@testable import LogOutput
import XCTest

final class LogWriterTests: XCTestCase {
    /// Lines from many threads arrive whole, each exactly once, even when longer than a pipe takes
    /// in one write.
    func testLinesFromManyThreadsNeverInterleave() throws {
        let (readEnd, writeEnd) = try makePipe()
        let writer = LogWriter(descriptor: writeEnd, patience: 30)
        let received = Captured()
        let readerDone = DispatchSemaphore(value: 0)
        let reader = Thread {
            received.bytes = Self.readAll(readEnd)
            readerDone.signal()   // the hand-over of `bytes` to the test thread
        }
        reader.start()
        let threads = 8, linesPerThread = 300
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for line in 0..<linesPerThread {
                let filler = String(repeating: Character(UnicodeScalar(UInt8(97 + thread))), count: (line * 37) % 9000)
                XCTAssertTrue(writer.write("thread \(thread) line \(line) \(filler)\n"))
            }
        }
        close(writeEnd)
        XCTAssertEqual(readerDone.wait(timeout: .now() + 60), .success, "the reader never saw the end of the pipe")
        close(readEnd)

        let lines = String(decoding: received.bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.last, "") // ends with a newline
        var seen = Set<String>()
        for line in lines.dropLast() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 5, let thread = Int(fields[1]), let number = Int(fields[3]) else {
                return XCTFail("a torn line: \(line.prefix(80))")
            }
            let filler = String(repeating: Character(UnicodeScalar(UInt8(97 + thread))), count: (number * 37) % 9000)
            XCTAssertEqual(String(fields[4]), filler, "line \(thread)/\(number) holds another thread's bytes")
            XCTAssertTrue(seen.insert("\(thread)/\(number)").inserted)
        }
        XCTAssertEqual(seen.count, threads * linesPerThread)
    }

    /// A closed or invalid descriptor, a pipe nobody reads any more and a full pipe nobody drains:
    /// the line is dropped at once or within the writer's patience, and the process lives on.
    func testFailingDescriptorsDropTheLine() throws {
        let line = "2026-12-01T23:22:16+0000 info goesfs: [goesfs] unmounted /mnt\n"
        XCTAssertFalse(LogWriter(descriptor: -1).write(line))

        let (closedRead, closedWrite) = try makePipe()
        close(closedRead)
        close(closedWrite)
        XCTAssertFalse(LogWriter(descriptor: closedWrite).write(line))

        // SIGPIPE's default action kills the process (libfuse ignores it only while its loop runs).
        let previous = signal(SIGPIPE, SIG_DFL)
        defer { signal(SIGPIPE, previous) }
        let (deafRead, deafWrite) = try makePipe()
        close(deafRead)
        XCTAssertFalse(LogWriter(descriptor: deafWrite).write(line))
        close(deafWrite)

        let (fullRead, fullWrite) = try makePipe()
        defer { close(fullRead); close(fullWrite) }
        let writer = LogWriter(descriptor: fullWrite, patience: 0.2)
        let started = Date()
        var written = 0
        while writer.write(line) { written += 1; XCTAssertLessThan(written, 100_000) }
        XCTAssertGreaterThan(written, 0)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    /// A thread cancelled while it writes (libfuse cancels its workers at unmount) finishes the
    /// line first and does not take the lock with it: the next line is still written.
    func testCancelledWriterDoesNotKeepTheLock() throws {
        let (readEnd, writeEnd) = try makePipe()
        defer { close(readEnd); close(writeEnd) }
        let writer = LogWriter(descriptor: writeEnd, patience: 0.5)
        let filler = String(repeating: "x", count: 1000) + "\n"
        while writer.write(filler) {} // the pipe is full: the next write waits out its patience
        let box = Unmanaged.passRetained(writer)
        var thread = pthread_t()
        XCTAssertEqual(pthread_create(&thread, nil, { context in
            let writer = Unmanaged<LogWriter>.fromOpaque(context!).takeRetainedValue()
            writer.write("from the thread to be cancelled\n")
            while true { pthread_testcancel(); usleep(1000) }
        }, box.toOpaque()), 0)
        usleep(100_000) // inside the write now, holding the lock
        XCTAssertEqual(pthread_cancel(thread), 0)
        XCTAssertEqual(pthread_join(thread, nil), 0)
        _ = Self.drain(readEnd)
        XCTAssertTrue(writer.write("after the cancel\n"))
        XCTAssertTrue(String(decoding: Self.drain(readEnd), as: UTF8.self).hasSuffix("after the cancel\n"))
    }

    /// The text line is swift-log's `StreamLogHandler` line, byte for byte.
    func testTextLineMatchesStreamLogHandler() throws {
        let captured = Captured()
        var stream = StreamLogHandler(label: "goesfs", stream: captured, metadataProvider: nil)
        stream.logLevel = .debug
        stream[metadataKey: "mount"] = "/mnt"
        for (metadata, level) in [(nil, Logger.Level.info), (["category": "timeout", "attempt": "2"], .warning)] as [(Logger.Metadata?, Logger.Level)] {
            let event = LogEvent(level: level, message: "listing noaa-goes19/ABI-L1b-RadC/ failed", metadata: metadata,
                                 source: "goesfs", file: #fileID, function: #function, line: #line)
            for _ in 0..<3 { // the clock may tick between the two
                let time = LogClock.localTimestamp()
                captured.text = ""
                stream.log(event: event)
                guard captured.text.hasPrefix(time + " ") else { continue }
                XCTAssertEqual(TextLogHandler.line(time: time, level: level, label: "goesfs",
                                                   metadata: stream.metadata.merging(metadata ?? [:]) { $1 },
                                                   source: "goesfs", message: event.message),
                               captured.text)
                break
            }
        }
        XCTAssertEqual(TextLogHandler.line(time: "2026-12-01T23:22:16+0000", level: .info, label: "goesfs", metadata: [:],
                                           source: "goesfs", message: "unmounted /mnt"),
                       "2026-12-01T23:22:16+0000 info goesfs: [goesfs] unmounted /mnt\n")
    }

    private final class Captured: TextOutputStream, @unchecked Sendable {
        var text = ""
        var bytes: [UInt8] = []
        func write(_ string: String) { text += string }
    }

    private func makePipe() throws -> (Int32, Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw XCTSkip("no pipe: errno \(errno)") }
        return (ends[0], ends[1])
    }

    private static func readAll(_ descriptor: Int32) -> [UInt8] {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(descriptor, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return all }
            all += buffer[..<n]
        }
    }

    /// What the pipe holds now, without waiting for more.
    private static func drain(_ descriptor: Int32) -> [UInt8] {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        while poll(&ready, 1, 0) == 1 {
            let n = read(descriptor, &buffer, buffer.count)
            guard n > 0 else { break }
            all += buffer[..<n]
        }
        return all
    }
}
