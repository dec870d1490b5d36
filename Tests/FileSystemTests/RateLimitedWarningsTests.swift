@testable import FileSystem
import Foundation
import Logging
import XCTest

/// "cache over its limit but every cached object is open" was logged ~1,000 times in 7 s.
final class RateLimitedWarningsTests: XCTestCase {
    func testARepeatedWarningIsLoggedOncePerIntervalWithTheCountHeldBack() {
        let lines = CapturedLines()
        let logger = Logger(label: "test") { _ in CapturingHandler(lines: lines) }
        let warnings = RateLimitedWarnings(logger: logger, intervalSeconds: 3600)
        for _ in 0..<1000 { warnings.warning("cache over its limit but every cached object is open; nothing evicted") }
        warnings.warning("another problem")
        XCTAssertEqual(lines.values, ["cache over its limit but every cached object is open; nothing evicted", "another problem"])
    }

    func testAfterTheIntervalItIsLoggedAgainSayingHowManyWereHeldBack() {
        let lines = CapturedLines()
        let logger = Logger(label: "test") { _ in CapturingHandler(lines: lines) }
        let warnings = RateLimitedWarnings(logger: logger, intervalSeconds: 0)
        warnings.warning("x")
        warnings.warning("x")
        XCTAssertEqual(lines.values.count, 2)
        XCTAssertFalse(lines.values[1].contains("more like this"))
    }
}

final class CapturedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ line: String) { lock.lock(); stored.append(line); lock.unlock() }
    var values: [String] { lock.lock(); defer { lock.unlock() }; return stored }
}

struct CapturingHandler: LogHandler {
    let lines: CapturedLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        lines.append(event.message.description)
    }
}
