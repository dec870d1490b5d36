#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Locking

/// Serves `GET /metrics` over plain HTTP/1.1 on its own thread, one short connection at a time.
///
/// It must never hurt the mount: it runs on a thread of its own, reads at most `requestLimit`
/// bytes of a request, and gives each client `clientDeadline` seconds in all (reading and
/// writing), so a slow or silent client holds the next one up for at most that long.
/// `stop()` closes the socket and waits for the thread.
public final class MetricsServer: Sendable {
    public static let requestLimit = 8192
    public static let clientDeadline = 2.0
    private static let pollMilliseconds: Int32 = 200

    public let address: MetricsAddress
    private let listener: Int32
    private let render: @Sendable () -> (contentType: String, body: String)
    private let state = Locked(State.created)
    private enum State { case created, running, stopped }
    private let finished = DispatchSemaphore(value: 0)

    /// Binds and listens now, so a port in use is an error at mount time, not later.
    public init(address: MetricsAddress, render: @escaping @Sendable () -> (contentType: String, body: String)) throws(MetricsError) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MetricsError("--metrics: cannot create a socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = address.port.bigEndian
        _ = inet_pton(AF_INET, address.host, &sin.sin_addr)
        let bound = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw MetricsError("--metrics: cannot listen on \(address): \(why)")
        }
        self.address = address
        listener = fd
        self.render = render
    }

    /// The port listened on (the kernel's choice when the address said 0).
    public var port: UInt16 {
        var sin = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let got = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        return got == 0 ? UInt16(bigEndian: sin.sin_port) : address.port
    }

    public func start() {
        let fresh = state.withLock { s -> Bool in
            guard s == .created else { return false }
            s = .running
            return true
        }
        guard fresh else { return }
        let thread = Thread { [self] in
            serve()
            finished.signal()
        }
        thread.name = "goesfs-metrics"
        thread.start()
    }

    /// Stops accepting, lets a client being answered finish (within its deadline), closes the socket.
    public func stop() {
        let was = state.withLock { s -> State in defer { s = .stopped }; return s }
        guard was != .stopped else { return }
        if was == .running { finished.wait() }
        close(listener)
    }

    private func serve() {
        while state.withLock({ $0 == .running }) {
            var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, MetricsServer.pollMilliseconds) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)  // not inherited by anything the mount runs
            answer(client)
            close(client)
        }
    }

    private func answer(_ client: Int32) {
        let deadline = Date().addingTimeInterval(MetricsServer.clientDeadline)
        guard let head = readHead(client, until: deadline) else {
            return send(client, status: "431 Request Header Fields Too Large", body: "request too large or too slow\n", until: deadline)
        }
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let words = requestLine.split(separator: " ")
        guard words.count == 3, words[2].hasPrefix("HTTP/1.") else {
            return send(client, status: "400 Bad Request", body: "not an HTTP/1 request\n", until: deadline)
        }
        guard words[0] == "GET" || words[0] == "HEAD" else {
            return send(client, status: "405 Method Not Allowed", body: "only GET\n", until: deadline, extra: "Allow: GET, HEAD\r\n")
        }
        let path = words[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard path == "/metrics" else {
            return send(client, status: "404 Not Found", body: "goesfs serves /metrics only\n", until: deadline)
        }
        let page = render()
        send(client, status: "200 OK", body: page.body, contentType: page.contentType, until: deadline, headOnly: words[0] == "HEAD")
    }

    /// The request up to its blank line; nil when it is longer than `requestLimit` or not complete by the deadline.
    private func readHead(_ client: Int32, until deadline: Date) -> String? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while bytes.count <= MetricsServer.requestLimit {
            guard setTimeout(client, SO_RCVTIMEO, until: deadline) else { return nil }
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            bytes += chunk[0..<n]
            if let text = String(bytes: bytes, encoding: .utf8), text.contains("\r\n\r\n") { return text }
        }
        return nil
    }

    private func send(_ client: Int32, status: String, body: String, contentType: String = "text/plain; charset=utf-8",
                      until deadline: Date, extra: String = "", headOnly: Bool = false) {
        let payload = Array(body.utf8)
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(payload.count)\r\n\(extra)Connection: close\r\n\r\n"
        let bytes = Array(head.utf8) + (headOnly ? [] : payload)
        var done = 0
        while done < bytes.count {
            guard setTimeout(client, SO_SNDTIMEO, until: deadline) else { return }
            let n = bytes[done...].withUnsafeBytes { Glibc.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            done += n
        }
    }

    /// Sets a receive or send timeout to what is left until `deadline`; false when nothing is left.
    private func setTimeout(_ client: Int32, _ option: Int32, until deadline: Date) -> Bool {
        let left = deadline.timeIntervalSinceNow
        guard left > 0 else { return false }
        var value = timeval(tv_sec: Int(left), tv_usec: Int((left - left.rounded(.down)) * 1_000_000))
        return setsockopt(client, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size)) == 0
    }
}
