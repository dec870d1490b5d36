import CCurl
import Foundation
import Locking

/// Timeouts applied to every request.
public struct RequestTimeouts: Sendable {
    public var connectSeconds: Double
    /// A transfer that delivers less than 1 byte/s for this long is abandoned (a stall).
    public var stallSeconds: Int
    /// Upper bound for one request from start to finish.
    public var totalSeconds: Double

    public init(connectSeconds: Double = 5, stallSeconds: Int = 10, totalSeconds: Double = 60) {
        self.connectSeconds = connectSeconds
        self.stallSeconds = stallSeconds
        self.totalSeconds = totalSeconds
    }
}

/// Where one response's body goes: into a caller's buffer (object data) or a growing array (listings, errors).
final class ResponseSink {
    let handle: UnsafeMutableRawPointer
    var status = 0
    var target: UnsafeMutableRawBufferPointer?
    var received = 0
    /// Bytes to drop first when a server ignores Range and sends the whole object.
    var skip = 0
    var body: [UInt8] = []
    /// Bytes of a non-data body kept (listings need whole pages; error bodies only their code).
    var bodyLimit = 64 << 10
    var bodyTooLarge = false
    var overflowed = false
    /// The response's `Content-Range`, `ETag`, `Content-Length` and `Location` headers.
    var contentRange: ContentRange?
    var contentRangeText: String?
    var etag: String?
    var contentLength: Int?
    var location: String?
    var contentEncoding: String?
    /// The object's size as the listing states it: a reply for another size is not our object.
    var expectedTotal: Int?
    /// Set when the reply is not the bytes asked for; the transfer is stopped before any is stored.
    var refusal: String?
    /// The listed ETag: a reply naming another one is refused before any byte is kept.
    var expectedETag: String?
    let bandwidth: BandwidthLimit?
    var progress: ((Int) -> Void)?
    /// Called after every chunk with the bytes now in the target, so a reader can be answered
    /// from the first bytes while the rest still arrives.
    var arrival: ((Int) -> Void)?
    /// Bytes not yet reported to `progress`: reported in batches, so eight download threads do not
    /// queue on the statistics lock for every 16 KB chunk, but at least every quarter second: a
    /// slow transfer holding 256 KB back would make "In progress" lag and its ETA run long.
    var unreportedBytes = 0
    static let progressBatch = 256 << 10
    static let progressIntervalNanoseconds: UInt64 = 250_000_000
    var reportedAt = DispatchTime.now().uptimeNanoseconds
    /// Requests libcurl actually sent: more than one when it silently resent on a dead reused connection.
    var requestsSent = 0
    /// When the last byte (header or body) arrived, for stall detection.
    var lastByteAt = DispatchTime.now().uptimeNanoseconds
    var stallNanoseconds: UInt64 = 10_000_000_000
    var stalled = false
    /// When the whole request must be over (uptime ns): bandwidth waits stop there.
    var deadline: UInt64 = .max
    let expectsRange: Bool
    let rangeStart: Int

    init(handle: UnsafeMutableRawPointer, target: UnsafeMutableRawBufferPointer?, rangeStart: Int, bandwidth: BandwidthLimit?) {
        self.handle = handle
        self.bandwidth = bandwidth
        self.target = target
        self.expectsRange = target != nil
        self.rangeStart = rangeStart
    }

    func flushProgress() {
        if unreportedBytes > 0 { progress?(unreportedBytes) }
        unreportedBytes = 0
        reportedAt = DispatchTime.now().uptimeNanoseconds
    }

    func header(_ line: UnsafeRawBufferPointer) {
        lastByteAt = DispatchTime.now().uptimeNanoseconds
        let text = String(decoding: line, as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            // A new response (after a 100 Continue): its headers replace any seen before.
            contentRange = nil; contentRangeText = nil; etag = nil; contentLength = nil; location = nil; contentEncoding = nil
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = text[..<colon].lowercased()
        let value = String(text[text.index(after: colon)...].trimmingWhitespace())
        switch name {
        case "content-range": contentRangeText = value; contentRange = ContentRange(headerValue: value)
        case "etag": etag = value
        case "content-length": contentLength = ContentRange.number(Substring(value))
        case "location": location = value
        case "content-encoding": contentEncoding = value.lowercased()
        default: break
        }
    }

    /// Decides, at the first body byte, whether this reply carries exactly the bytes asked for.
    private func refusalReason() -> String? {
        guard expectsRange, let target else { return nil }
        // Another version: the caller turns this into "changed" (ESTALE); none of its bytes are kept.
        if let expectedETag, !expectedETag.isEmpty, let sent = etag, ETag.normalized(sent) != ETag.normalized(expectedETag) {
            return "a reply with ETag \(ListingRules.printable(sent)), listed \(ListingRules.printable(expectedETag))"
        }
        // Stored bytes must be the object's own: a compressed (or otherwise encoded) body is not.
        if let encoding = contentEncoding, encoding != "identity" {
            return "a reply with Content-Encoding \(ListingRules.printable(encoding)) (only the object's own bytes can be stored)"
        }
        switch status {
        case 206:
            guard let got = contentRange else {
                return "a 206 reply without a valid Content-Range (\(ListingRules.printable(contentRangeText ?? "none")))"
            }
            let asked = rangeStart..<(rangeStart + target.count)
            if got.range.lowerBound != asked.lowerBound || got.range.upperBound > asked.upperBound {
                return "Content-Range \(got.range.lowerBound)-\(got.range.upperBound - 1) does not match the range asked, \(asked.lowerBound)-\(asked.upperBound - 1)"
            }
            if let expectedTotal, got.total != expectedTotal {
                return "Content-Range says the object has \(got.total.map(String.init) ?? "*") bytes, the listing says \(expectedTotal)"
            }
            if let length = contentLength, length != got.range.count {
                return "Content-Length \(length) differs from the Content-Range's \(got.range.count) bytes"
            }
        case 200:
            // The server ignored Range and sends the whole object: fine if it is our object's size.
            if let expectedTotal, let length = contentLength, length != expectedTotal {
                return "a whole-object reply of \(length) bytes for an object listed with \(expectedTotal)"
            }
        default:
            break
        }
        return nil
    }

    func accept(_ data: UnsafeRawBufferPointer) -> Bool {
        if let bandwidth, !bandwidth.consume(data.count, until: deadline) {
            stalled = true   // the request's time ran out while --max-bandwidth held it back
            return false
        }
        lastByteAt = DispatchTime.now().uptimeNanoseconds
        if status == 0 {
            var code = 0
            _ = goesfs_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &code)
            status = code
            if status == 200 && expectsRange { skip = rangeStart }
            if (200..<300).contains(status), let reason = refusalReason() {
                refusal = reason
                return false
            }
        }
        guard (200..<300).contains(status), let target else {
            guard body.count + data.count <= bodyLimit else {
                // A listing page too large to be one: fail loudly rather than parse a cut page.
                if (200..<300).contains(status) { bodyTooLarge = true; return false }
                return true
            }
            body.append(contentsOf: data)
            return true
        }
        var chunk = data
        if skip > 0 {
            let dropped = min(skip, chunk.count)
            skip -= dropped
            chunk = UnsafeRawBufferPointer(rebasing: chunk[dropped...])
        }
        let room = target.count - received
        let n = min(room, chunk.count)
        if n > 0 {
            UnsafeMutableRawBufferPointer(rebasing: target[received..<(received + n)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: chunk[..<n]))
            received += n
            arrival?(received)
            unreportedBytes += n
            if unreportedBytes >= ResponseSink.progressBatch
                || DispatchTime.now().uptimeNanoseconds - reportedAt >= ResponseSink.progressIntervalNanoseconds { flushProgress() }
        }
        // More than asked for. From a server that ignored Range (200) that is expected: stop, we
        // have our bytes. A 206 sending more than its Content-Range said is not to be trusted.
        if n < chunk.count {
            if status == 206 { refusal = "a 206 reply longer than the range it stated"; return false }
            overflowed = true
            return false
        }
        return true
    }
}

private let writeCallback: goesfs_curl_data_fn = { pointer, size, count, userdata in
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata!).takeUnretainedValue()
    let bytes = size * count
    guard let pointer else { return bytes }
    return sink.accept(UnsafeRawBufferPointer(start: pointer, count: bytes)) ? bytes : 0
}

private let headerCallback: goesfs_curl_data_fn = { pointer, size, count, userdata in
    let bytes = size * count
    if let pointer { Unmanaged<ResponseSink>.fromOpaque(userdata!).takeUnretainedValue().header(UnsafeRawBufferPointer(start: pointer, count: bytes)) }
    return bytes
}

/// Called about once a second while a transfer runs: abort when no byte came for the stall time.
/// (libcurl's own low-speed check averages and reacts seconds late once some bytes arrived.)
private let progressCallback: goesfs_curl_xferinfo_fn = { userdata, _, _, _, _ in
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata!).takeUnretainedValue()
    guard DispatchTime.now().uptimeNanoseconds - sink.lastByteAt > sink.stallNanoseconds else { return 0 }
    sink.stalled = true
    return 1
}

private let prereqCallback: goesfs_curl_prereq_fn = { userdata, _, _, _, _ in
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata!).takeUnretainedValue()
    sink.requestsSent += 1
    sink.lastByteAt = DispatchTime.now().uptimeNanoseconds
    return 0 // CURL_PREREQFUNC_OK
}

/// The outcome of one HTTP exchange, before any retry decision.
struct TransferOutcome {
    var curlCode: CURLcode
    var curlMessage: String
    var status: Int
    var received: Int
    var body: [UInt8]
    var overflowed: Bool
    var bodyTooLarge: Bool
    var contentRange: ContentRange?
    var etag: String?
    /// Why the reply was refused (wrong range, size, or a redirect not followed), if it was.
    var refusal: String?
    var location: String?
    var seconds: Double
    var stalled: Bool
    /// Requests sent beyond the first (libcurl's silent resends), each a failed attempt of its own.
    var silentResends: Int
    var phases = PhaseTimings()

    /// Seconds to the first response byte; nil when no response came.
    var firstByteSeconds: Double? { status > 0 && phases.firstByte > 0 ? phases.firstByte : nil }
}

/// Where the time of one request went, cumulative from its start (libcurl's timing info).
public struct PhaseTimings: Sendable {
    public var dns = 0.0, connect = 0.0, tls = 0.0, firstByte = 0.0, total = 0.0
}

/// One libcurl easy handle. Used by one thread at a time (handed out by `CurlHandlePool`); it keeps
/// its connection open between requests, which is what makes reuse work.
final class CurlHandle: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    private let bandwidth: BandwidthLimit?

    init(bandwidth: BandwidthLimit?) {
        self.bandwidth = bandwidth
        CurlHandle.globalInit
        handle = curl_easy_init()!
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// Redirects followed per request, and only within the same origin: S3 has no reason to send
    /// a reader elsewhere, and a hostile endpoint must not turn one read into thousands of requests.
    static let maxRedirects = 3

    /// Performs a GET, following at most `maxRedirects` redirects to the same scheme, host and port;
    /// with `target`, the body of a 2xx answer is written there.
    func get(_ request: HTTPRequest, timeouts: RequestTimeouts, progress: ((Int) -> Void)? = nil) -> TransferOutcome {
        var url = request.url
        var hops = 0
        var spent = 0.0
        var resends = 0
        while true {
            var bounded = timeouts
            bounded.totalSeconds = max(0.5, timeouts.totalSeconds - spent)
            var outcome = perform(url: url, request: request, timeouts: bounded, progress: progress)
            spent += outcome.seconds
            resends += outcome.silentResends
            outcome.seconds = spent
            outcome.silentResends = resends
            guard [301, 302, 303, 307, 308].contains(outcome.status) else { return outcome }
            let location = outcome.location ?? ""
            guard let next = CurlHandle.sameOrigin(location, as: url) else {
                outcome.refusal = "HTTP \(outcome.status) redirect to \(ListingRules.printable(location)) not followed: only redirects within the same scheme, host and port are"
                return outcome
            }
            guard hops < CurlHandle.maxRedirects else {
                outcome.refusal = "more than \(CurlHandle.maxRedirects) redirects (last to \(ListingRules.printable(location)))"
                return outcome
            }
            hops += 1
            url = next
        }
    }

    /// The `If-Match` line for a listed ETag. The ETag comes from a listing, so anything but
    /// printable ASCII is never sent: a CR LF from one source's listing would otherwise write
    /// headers (or whole requests) to another.
    static func ifMatchHeader(_ etag: String) -> String? {
        guard !etag.isEmpty, etag.utf8.count <= 256, etag.utf8.allSatisfy({ (0x20...0x7e).contains($0) }) else { return nil }
        return "If-Match: " + (etag.hasPrefix("\"") ? etag : "\"\(etag)\"")
    }

    /// `location` resolved against `base`, if it stays on the same origin.
    static func sameOrigin(_ location: String, as base: String) -> String? {
        guard !location.isEmpty, let from = URL(string: base), let to = URL(string: location, relativeTo: from)?.absoluteURL,
              let scheme = to.scheme?.lowercased(), scheme == from.scheme?.lowercased(),
              to.host?.lowercased() == from.host?.lowercased(), port(to) == port(from) else { return nil }
        return to.absoluteString
    }

    private static func port(_ url: URL) -> Int? { url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80) }

    private func perform(url: String, request: HTTPRequest, timeouts: RequestTimeouts, progress: ((Int) -> Void)?) -> TransferOutcome {
        curl_easy_reset(handle)
        errorBuffer[0] = 0
        _ = goesfs_curl_set_string(handle, CURLOPT_URL, url)
        _ = goesfs_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        // Redirects are handled by `get`, which checks where they lead; dot segments are sent as
        // they are (libcurl would squash `a/../b`, sending a request for another key).
        _ = goesfs_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        _ = goesfs_curl_set_long(handle, CURLOPT_PATH_AS_IS, 1)
        _ = goesfs_curl_set_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = goesfs_curl_set_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        _ = goesfs_curl_set_string(handle, CURLOPT_USERAGENT, "goesfs/0.1")
        _ = goesfs_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
        _ = goesfs_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(timeouts.connectSeconds * 1000))
        _ = goesfs_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Int(timeouts.totalSeconds * 1000))
        if let range = request.range {
            _ = goesfs_curl_set_string(handle, CURLOPT_RANGE, "\(range.lowerBound)-\(range.upperBound - 1)")
        }
        var headers: UnsafeMutablePointer<curl_slist>?
        if let line = request.ifMatch.flatMap(CurlHandle.ifMatchHeader) {
            headers = curl_slist_append(nil, line)
            _ = goesfs_curl_set_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headers))
        }
        defer { if let headers { curl_slist_free_all(headers) } }
        let sink = ResponseSink(handle: handle, target: request.target, rangeStart: request.range?.lowerBound ?? 0, bandwidth: bandwidth)
        sink.progress = progress
        sink.arrival = request.arrival
        sink.expectedETag = request.ifMatch
        sink.bodyLimit = request.bodyLimit
        sink.expectedTotal = request.expectedTotal
        sink.stallNanoseconds = UInt64(max(1, timeouts.stallSeconds)) * 1_000_000_000
        sink.deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0.1, timeouts.totalSeconds) * 1e9)
        let box = Unmanaged.passRetained(sink)
        defer { box.release() }
        _ = goesfs_curl_set_data_fn(handle, CURLOPT_WRITEFUNCTION, writeCallback)
        _ = goesfs_curl_set_pointer(handle, CURLOPT_WRITEDATA, box.toOpaque())
        _ = goesfs_curl_set_data_fn(handle, CURLOPT_HEADERFUNCTION, headerCallback)
        _ = goesfs_curl_set_pointer(handle, CURLOPT_HEADERDATA, box.toOpaque())
        _ = goesfs_curl_set_long(handle, CURLOPT_NOPROGRESS, 0)
        _ = goesfs_curl_set_xferinfo_fn(handle, progressCallback)
        _ = goesfs_curl_set_pointer(handle, CURLOPT_XFERINFODATA, box.toOpaque())
        _ = goesfs_curl_set_prereq_fn(handle, prereqCallback)
        _ = goesfs_curl_set_pointer(handle, CURLOPT_PREREQDATA, box.toOpaque())

        let started = DispatchTime.now().uptimeNanoseconds
        let code = curl_easy_perform(handle)
        sink.flushProgress()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        var phases = PhaseTimings()
        _ = goesfs_curl_get_double(handle, CURLINFO_NAMELOOKUP_TIME, &phases.dns)
        _ = goesfs_curl_get_double(handle, CURLINFO_CONNECT_TIME, &phases.connect)
        _ = goesfs_curl_get_double(handle, CURLINFO_APPCONNECT_TIME, &phases.tls)
        _ = goesfs_curl_get_double(handle, CURLINFO_STARTTRANSFER_TIME, &phases.firstByte)
        _ = goesfs_curl_get_double(handle, CURLINFO_TOTAL_TIME, &phases.total)
        if sink.status == 0 {
            var status = 0
            _ = goesfs_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
            sink.status = status
        }
        var message = String(cString: errorBuffer)
        if message.isEmpty { message = String(cString: curl_easy_strerror(code)) }
        return TransferOutcome(curlCode: code, curlMessage: message, status: sink.status, received: sink.received,
                               body: sink.body, overflowed: sink.overflowed, bodyTooLarge: sink.bodyTooLarge,
                               contentRange: sink.contentRange, etag: sink.etag, refusal: sink.refusal, location: sink.location,
                               seconds: seconds, stalled: sink.stalled, silentResends: max(0, sink.requestsSent - 1), phases: phases)
    }
}

/// One GET as the client means it.
struct HTTPRequest {
    var url: String
    var range: Range<Int>? = nil
    /// Where a 2xx body goes (object data); nil keeps the body in the outcome (listings, errors).
    var target: UnsafeMutableRawBufferPointer? = nil
    /// The listed ETag: the server must answer 412 rather than send another version.
    var ifMatch: String? = nil
    /// The object's size as listed; a reply for another size is refused.
    var expectedTotal: Int? = nil
    /// The most body bytes kept without a target (a listing page); beyond it the reply is refused.
    var bodyLimit = 64 << 10
    /// Told the count of body bytes in `target` after each chunk.
    var arrival: ((Int) -> Void)? = nil
}

/// Hands out easy handles so that connections are reused across requests and threads, and caps
/// how many requests (so connections) are open at once.
final class CurlHandlePool: Sendable {
    private let idle = Locked<[CurlHandle]>([])
    private let slots: DispatchSemaphore
    private let bandwidth: BandwidthLimit?

    init(limit: Int, bandwidth: BandwidthLimit?) {
        slots = DispatchSemaphore(value: max(1, limit))
        self.bandwidth = bandwidth
    }

    func withHandle<T>(_ body: (CurlHandle) -> T) -> T {
        slots.wait()
        defer { slots.signal() }
        let handle = idle.withLock { $0.popLast() } ?? CurlHandle(bandwidth: bandwidth)
        defer { idle.withLock { $0.append(handle) } }
        return body(handle)
    }
}
