import CCurl
import Foundation

/// Bounds on one folder's listing: GOES hour folders hold at most ~2,000 keys (2 pages).
public enum ListingLimits {
    public static let maxPages = 200
    /// A page of 1,000 keys is ~350 KB; 16 MiB leaves room for long keys, not for a flood.
    public static let maxPageBytes = 16 << 20
}

/// ETags compare without quotes or the weak marker: servers and listings write them differently.
enum ETag {
    static func normalized(_ tag: String) -> String {
        var t = Substring(tag.trimmingWhitespace())
        if t.hasPrefix("W/") { t = t.dropFirst(2) }
        return String(t.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
    }
}

/// Reads listings and byte ranges from the sources, applying the retry policy and failing over.
///
/// Anonymous (unsigned) requests: the NOAA buckets are public. Every data request is reported to the
/// observer, so statistics never need to know about HTTP.
public final class S3Client: Sendable {
    public let sources: SourcePool
    public let retry: RetryPolicy
    public let timeouts: RequestTimeouts
    private let observer: any TransferObserver
    private let handles: CurlHandlePool

    public init(sources: SourcePool, retry: RetryPolicy = RetryPolicy(), timeouts: RequestTimeouts = RequestTimeouts(),
                maxConnections: Int = 16, bandwidth: BandwidthLimit? = nil, observer: any TransferObserver = SilentObserver()) {
        self.sources = sources
        self.retry = retry
        self.timeouts = timeouts
        self.observer = observer
        handles = CurlHandlePool(limit: maxConnections, bandwidth: bandwidth)
    }

    public convenience init(source: Source, retry: RetryPolicy = RetryPolicy(), timeouts: RequestTimeouts = RequestTimeouts(),
                            observer: any TransferObserver = SilentObserver()) {
        self.init(sources: SourcePool(sources: [source]), retry: retry, timeouts: timeouts, observer: observer)
    }

    /// Lists one level under `prefix` (all pages), with `/` as delimiter; `rejected` says which
    /// entries broke `ListingRules` and were left out.
    ///
    /// A listing ends: a repeated continuation token, more than `ListingLimits.maxPages` pages, a
    /// page over `ListingLimits.maxPageBytes`, a cut page or one that says it continues without a
    /// token all fail it, and all its pages share one read deadline.
    public func list(bucket: String, prefix: String) throws(FetchError) -> (listing: Listing, rejected: [String]) {
        var listing = Listing()
        var rejected: [String] = []
        var token: String?
        var seenTokens = Set<String>()
        let started = Date()
        let label = prefix.isEmpty ? bucket : prefix
        for pageNumber in 1... {
            guard pageNumber <= ListingLimits.maxPages else {
                throw FetchError(category: .server, message: "listing of \(label) has more than \(ListingLimits.maxPages) pages: stopped")
            }
            // A listing that never ends (a fresh token on every page) ends at the read deadline.
            let elapsed = Date().timeIntervalSince(started)
            guard elapsed < retry.deadline else {
                throw FetchError(category: .server, message: "listing of \(label) still had more pages after \(Int(elapsed)) s (\(pageNumber - 1) pages): stopped at the read deadline")
            }
            var query = "?list-type=2&delimiter=%2F&encoding-type=url&prefix=" + URLEncoding.query(prefix)
            if let token { query += "&continuation-token=" + URLEncoding.query(token) }
            let page = try withRetries(key: label, kind: .listing, started: started) { attempt, source, timeouts throws(FetchError) in
                let url = source.bucketURL(bucket) + query
                let outcome = handles.withHandle {
                    $0.get(HTTPRequest(url: url, bodyLimit: ListingLimits.maxPageBytes), timeouts: timeouts)
                }
                reportSilentResends(outcome, kind: .listing, key: prefix, attempt: attempt, source: source)
                observer.requestFinished(kind: .listing, firstByteSeconds: outcome.firstByteSeconds, seconds: outcome.seconds)
                try S3Client.check(outcome)
                if outcome.bodyTooLarge {
                    throw FetchError(category: .server, message: "a listing page of \(label) is over \(ListingLimits.maxPageBytes >> 20) MiB: refused")
                }
                let page = ListingPage(xml: String(decoding: outcome.body, as: UTF8.self), prefix: prefix)
                guard page.isComplete else {
                    throw FetchError(category: .server, message: "a listing page of \(label) is incomplete (no closing tag)")
                }
                if page.isTruncated && page.continuationToken == nil {
                    throw FetchError(category: .server, message: "a listing page of \(label) says more follow but gives no continuation token")
                }
                observer.listingPageReceived(prefix: prefix)
                return page
            }
            listing.commonPrefixes += page.listing.commonPrefixes
            listing.objects += page.listing.objects
            rejected += page.rejected
            guard page.isTruncated, let next = page.continuationToken else { break }
            guard seenTokens.insert(next).inserted else {
                throw FetchError(category: .server, message: "listing of \(label) repeats a continuation token: stopped after \(pageNumber) pages")
            }
            token = next
        }
        return (listing, rejected)
    }

    /// Fetches `range` of an object of `objectSize` bytes into `buffer` (whose count equals the range length).
    ///
    /// A connection cut mid-body resumes from the last byte received, not from the start, possibly
    /// from another source. Every reply must be the listed object (`If-Match` with its ETag, the
    /// size in `Content-Range`) and exactly the bytes asked for, so two versions or two copies are
    /// never mixed and no byte is stored at the wrong offset.
    /// `progress` is called on this thread with each chunk's byte count as it arrives.
    public func fetch(bucket: String, key: String, objectSize: Int, etag: String = "", range: Range<Int>,
                      into buffer: UnsafeMutableRawBufferPointer, progress: ((Int) -> Void)? = nil,
                      arrived: ((Int) -> Void)? = nil) throws(FetchError) {
        precondition(buffer.count == range.count)
        var done = 0
        try withRetries(key: key, kind: .data) { attempt, source, timeouts throws(FetchError) in
            let url = source.objectURL(bucket: bucket, key: key)
            if done > 0 { observer.transferResumed(key: key, keptBytes: done) }
            let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            let kept = done
            let request = HTTPRequest(url: url, range: (range.lowerBound + done)..<range.upperBound, target: rest,
                                      ifMatch: etag.isEmpty ? nil : etag, expectedTotal: objectSize,
                                      arrival: arrived.map { report in { report(kept + $0) } })
            let outcome = handles.withHandle { $0.get(request, timeouts: timeouts, progress: progress) }
            reportSilentResends(outcome, kind: .data, key: key, attempt: attempt, source: source)
            observer.requestFinished(kind: .data, firstByteSeconds: outcome.firstByteSeconds, seconds: outcome.seconds)
            if (200..<300).contains(outcome.status), !etag.isEmpty, let sent = outcome.etag, ETag.normalized(sent) != ETag.normalized(etag) {
                throw FetchError(category: .changed, message: "the object changed at the source: ETag \(ListingRules.printable(sent)), listed \(ListingRules.printable(etag))")
            }
            if let refusal = outcome.refusal {
                throw FetchError(category: .server, message: "\(refusal); nothing of that reply kept", httpStatus: outcome.status)
            }
            let before = done
            if (200..<300).contains(outcome.status) { done += outcome.received }
            if done == range.count {
                observer.transferSucceeded(key: key, bytes: done - before, seconds: outcome.seconds, attempt: attempt)
                return
            }
            try S3Client.check(outcome)
            throw FetchError(category: .network, message: "connection closed after \(done) of \(range.count) bytes (truncated body)")
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy gives up; reports each failure.
    /// Each attempt gets the timeouts cut to what is left of the deadline, so the whole stays bounded.
    private func withRetries<T>(key: String, kind: RequestKind, started: Date = Date(),
                                _ attempt: (Int, Source, RequestTimeouts) throws(FetchError) -> T) throws(FetchError) -> T {
        var number = 1
        while true {
            let attemptStart = DispatchTime.now().uptimeNanoseconds
            var bounded = timeouts
            let left = max(0.5, retry.deadline - Date().timeIntervalSince(started))
            bounded.totalSeconds = min(bounded.totalSeconds, left)
            bounded.connectSeconds = min(bounded.connectSeconds, left)
            let sourceIndex = sources.pick()
            do {
                let value = try attempt(number, sources.sources[sourceIndex], bounded)
                sources.succeeded(sourceIndex)
                return value
            } catch let failure {
                let error = FetchError(category: failure.category, message: "\(sources.sources[sourceIndex]): \(failure.message)",
                                       httpStatus: failure.httpStatus)
                if sources.failed(sourceIndex, category: error.category) {
                    observer.sourceDemoted(sources.sources[sourceIndex].description, until: Date().timeIntervalSince1970 + sources.coolDown)
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - attemptStart) / 1e9
                let elapsed = Date().timeIntervalSince(started)
                let delay = retry.delay(afterAttempt: number, throttled: error.isThrottling)
                let willRetry = retry.mayRetry(after: error, attempt: number, elapsed: elapsed, delay: delay)
                observer.transferFailed(kind: kind, key: key, error: error, seconds: seconds, attempt: number,
                                        maxAttempts: retry.maxAttempts, retryDelay: willRetry ? delay : nil)
                guard willRetry else {
                    if error.category.isRetryable && (number < retry.maxAttempts || error.isThrottling) {
                        throw FetchError(category: .timeout, message: "gave up after \(number) attempts in \(Int(elapsed)) s: \(error.message)", httpStatus: error.httpStatus)
                    }
                    throw error
                }
                Thread.sleep(forTimeInterval: delay)
                number += 1
            }
        }
    }

    /// libcurl resends a request by itself when a reused connection turns out dead before any
    /// response byte; each such send reached the source and failed: an attempt `.stats` must count.
    private func reportSilentResends(_ outcome: TransferOutcome, kind: RequestKind, key: String, attempt: Int, source: Source) {
        for _ in 0..<outcome.silentResends {
            sources.resent(source)
            observer.requestResent(kind: kind, key: key)
            observer.transferFailed(kind: kind, key: key,
                                    error: FetchError(category: .network, message: "connection closed before any response; resent at once"),
                                    seconds: 0, attempt: attempt, maxAttempts: retry.maxAttempts, retryDelay: 0)
        }
    }

    /// Turns a transport failure or a non-2xx answer into a categorised error.
    static func check(_ outcome: TransferOutcome) throws(FetchError) {
        if outcome.stalled {
            throw FetchError(category: .timeout, message: "transfer stalled: no data for the stall timeout after \(outcome.received) bytes")
        }
        if outcome.curlCode != CURLE_OK && !(outcome.curlCode == CURLE_WRITE_ERROR && outcome.overflowed) {
            throw classify(curlCode: outcome.curlCode, message: outcome.curlMessage)
        }
        if !(200..<300).contains(outcome.status) {
            let code = XMLScan.first("Code", in: String(decoding: outcome.body, as: UTF8.self))
            throw FetchError.http(status: outcome.status, s3Code: code)
        }
    }

    static func classify(curlCode: CURLcode, message: String) -> FetchError {
        switch curlCode {
        case CURLE_OPERATION_TIMEDOUT:
            return FetchError(category: .timeout, message: "request timed out or stalled: \(message)")
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return FetchError(category: .network, message: "cannot resolve host (check DNS or the endpoint URL): \(message)")
        case CURLE_COULDNT_CONNECT:
            return FetchError(category: .network, message: "cannot connect (server down or blocked): \(message)")
        default:
            return FetchError(category: .network, message: message)
        }
    }
}
