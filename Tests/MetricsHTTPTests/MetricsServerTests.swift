@testable import MetricsHTTP
import Foundation
import XCTest

final class MetricsServerTests: XCTestCase {
    func testAddresses() throws {
        XCTAssertEqual(try MetricsAddress(parsing: "9464"), MetricsAddress(host: "127.0.0.1", port: 9464))
        XCTAssertEqual(try MetricsAddress(parsing: ":9464"), MetricsAddress(host: "127.0.0.1", port: 9464))
        XCTAssertEqual(try MetricsAddress(parsing: "localhost:9464"), MetricsAddress(host: "127.0.0.1", port: 9464))
        XCTAssertTrue(try MetricsAddress(parsing: "127.0.0.1:9464").isLoopback)
        // Exposing it elsewhere takes an explicit numeric address.
        XCTAssertFalse(try MetricsAddress(parsing: "0.0.0.0:9464").isLoopback)
        for bad in ["", "0", "70000", "metrics.example.com:9464", "::1:9464", "127.0.0.1:", "1.2.3:80"] {
            XCTAssertThrowsError(try MetricsAddress(parsing: bad), bad)
        }
    }

    private func server() throws -> MetricsServer {
        let server = try MetricsServer(address: MetricsAddress(host: "127.0.0.1", port: 0)) {
            (contentType: "text/plain; version=0.0.4", body: "goesfs_up 1\n")
        }
        server.start()
        addTeardownBlock { server.stop() }
        return server
    }

    /// Sends `request` and returns the whole answer (the server closes after one).
    private func exchange(_ port: UInt16, _ request: String) throws -> String {
        let fd = try connected(port)
        defer { close(fd) }
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            answer += chunk[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    private func connected(_ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let ok = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { close(fd); throw MetricsError("connect: \(String(cString: strerror(errno)))") }
        return fd
    }

    func testServesMetricsAndNothingElse() throws {
        let port = try server().port
        let ok = try exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(ok.hasPrefix("HTTP/1.1 200 OK\r\n"), ok)
        XCTAssertTrue(ok.contains("Content-Type: text/plain; version=0.0.4\r\n"), ok)
        XCTAssertTrue(ok.hasSuffix("\r\n\r\ngoesfs_up 1\n"), ok)
        XCTAssertTrue(try exchange(port, "GET / HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 404 "))
        XCTAssertTrue(try exchange(port, "POST /metrics HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 405 "))
        XCTAssertTrue(try exchange(port, "hello\r\n\r\n").hasPrefix("HTTP/1.1 400 "))
        let huge = "GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000) + "\r\n\r\n"
        XCTAssertTrue(try exchange(port, huge).hasPrefix("HTTP/1.1 431 "))
        XCTAssertTrue(try exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n").hasSuffix("Connection: close\r\n\r\n"))
    }

    func testASilentClientHoldsTheNextOneUpOnlyUntilItsDeadline() throws {
        let port = try server().port
        let silent = try connected(port)  // connects, never sends a byte, never reads
        defer { close(silent) }
        let started = Date()
        let answer = try exchange(port, "GET /metrics HTTP/1.1\r\n\r\n")
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200 OK"), answer)
        // Generous bound for a loaded machine: the point is "seconds", not "forever".
        XCTAssertLessThan(Date().timeIntervalSince(started), MetricsServer.clientDeadline + 8)
    }

    func testStopClosesTheSocket() throws {
        let server = try MetricsServer(address: MetricsAddress(host: "127.0.0.1", port: 0)) { (contentType: "text/plain", body: "") }
        server.start()
        let port = server.port
        server.stop()
        XCTAssertThrowsError(try connected(port))
        server.stop()  // twice is harmless
        // One made but never started (the mount failed before serving) stops without waiting.
        try MetricsServer(address: MetricsAddress(host: "127.0.0.1", port: 0)) { (contentType: "text/plain", body: "") }.stop()
    }
}
