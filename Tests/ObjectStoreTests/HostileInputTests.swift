@testable import ObjectStore
import XCTest

/// What a misbehaving or hostile server can put in a listing or a reply header, and what survives.
final class HostileInputTests: XCTestCase {
    private let prefix = "ABI-L1b-RadC/2023/066/14/"

    private func page(_ contents: String, extra: String = "") -> ListingPage {
        ListingPage(xml: "<ListBucketResult>\(contents)\(extra)<IsTruncated>false</IsTruncated></ListBucketResult>", prefix: prefix)
    }

    private func entry(_ leaf: String, size: String = "10", modified: String = "2023-03-07T14:34:19.000Z") -> String {
        "<Contents><Key>\(prefix)\(leaf)</Key><Size>\(size)</Size><LastModified>\(modified)</LastModified></Contents>"
    }

    func testSizesOutsideS3sLimitsAreLeftOutNotTrusted() {
        let listed = page(entry("good.nc") + entry("max.nc", size: "9223372036854775807") + entry("near.nc", size: "9223372036854775000")
                          + entry("over.nc", size: String((5 << 40) + 1)) + entry("neg.nc", size: "-1") + entry("text.nc", size: "12abc")
                          + entry("fivetib.nc", size: String(5 << 40)))
        XCTAssertEqual(listed.listing.objects.map(\.key), [prefix + "good.nc", prefix + "fivetib.nc"])
        XCTAssertEqual(listed.rejected.count, 5)
    }

    func testDatesOutOfRangeAreLeftOut() {
        let listed = page(entry("good.nc") + entry("far.nc", modified: "1000000000000000-01-01T00:00:00.000Z")
                          + entry("month.nc", modified: "2023-13-01T00:00:00Z") + entry("junk.nc", modified: "yesterday"))
        XCTAssertEqual(listed.listing.objects.map(\.key), [prefix + "good.nc"])
        XCTAssertNil(ISO8601.seconds("99999999999999999999-01-01T00:00:00Z"))
        XCTAssertEqual(ISO8601.seconds("1970-01-01T00:00:00Z"), 0)
    }

    func testNamesLinuxCannotShowOrThatClimbAreLeftOut() {
        let long = String(repeating: "x", count: 256)
        let listed = page(entry("nul&#0;.nc") + entry("hex&#x0;.nc") + entry(long) + entry("ok.nc") + entry("sub/x.nc"),
                          extra: "<CommonPrefixes><Prefix>\(prefix)../</Prefix></CommonPrefixes>"
                              + "<CommonPrefixes><Prefix>\(prefix)./</Prefix></CommonPrefixes>"
                              + "<CommonPrefixes><Prefix>\(prefix)a/../</Prefix></CommonPrefixes>"
                              + "<CommonPrefixes><Prefix>elsewhere/</Prefix></CommonPrefixes>"
                              + "<CommonPrefixes><Prefix>\(prefix)fine/</Prefix></CommonPrefixes>")
        XCTAssertEqual(listed.listing.objects.map(\.key), [prefix + "ok.nc"])
        XCTAssertEqual(listed.listing.commonPrefixes, [prefix + "fine/"])
        XCTAssertNotNil(ListingRules.problem(key: "ABI-L1b-RadC/2023/066/14/../../ESCAPED/x", under: ""))
    }

    func testURLEncodedKeysAreDecodedAndNonUTF8IsRefusedNotCollapsed() {
        let xml = "<ListBucketResult><EncodingType>url</EncodingType>"
            + "<Contents><Key>\(prefix)a%20b+c.nc</Key><Size>1</Size></Contents>"
            + "<Contents><Key>\(prefix)bad%FF.nc</Key><Size>1</Size></Contents>"
            + "<Contents><Key>\(prefix)bad%FE.nc</Key><Size>1</Size></Contents>"
            + "<Contents><Key>\(prefix)cut%F</Key><Size>1</Size></Contents>"
            + "<IsTruncated>false</IsTruncated></ListBucketResult>"
        let listed = ListingPage(xml: xml, prefix: prefix)
        XCTAssertEqual(listed.listing.objects.map(\.key), [prefix + "a b c.nc"])
        XCTAssertEqual(listed.rejected.count, 3)
    }

    func testACutPageIsNotComplete() {
        XCTAssertFalse(ListingPage(xml: "<ListBucketResult><Contents><Key>\(prefix)a</Key>", prefix: prefix).isComplete)
        XCTAssertTrue(page("").isComplete)
    }

    func testStoredListingsAreCheckedAgain() {
        let stored = Listing(commonPrefixes: [prefix + "../", prefix + "ok/"],
                             objects: [ListedObject(key: prefix + "a.nc", size: Int.max, etag: "", lastModified: 0),
                                       ListedObject(key: prefix + "b.nc", size: 3, etag: "", lastModified: 1e18),
                                       ListedObject(key: prefix + "c.nc", size: 3, etag: "", lastModified: 1)])
        let (kept, rejected) = ListingRules.validated(stored, prefix: prefix)
        XCTAssertEqual(kept.objects.map(\.key), [prefix + "c.nc"])
        XCTAssertEqual(kept.commonPrefixes, [prefix + "ok/"])
        XCTAssertEqual(rejected, 3)
    }

    func testContentRangeIsParsedStrictly() {
        XCTAssertEqual(ContentRange(headerValue: "bytes 0-1023/4096"), ContentRange(headerValue: " bytes 0-1023/4096\r\n"))
        XCTAssertEqual(ContentRange(headerValue: "bytes 0-1023/4096")?.range, 0..<1024)
        XCTAssertEqual(ContentRange(headerValue: "bytes 0-1023/4096")?.total, 4096)
        XCTAssertNil(ContentRange(headerValue: "bytes 0-1023/*")?.total)
        for bad in ["bytes 10-5/100", "bytes 0-100/100", "bytes -1-5/10", "bytes 0-9223372036854775807/9223372036854775807",
                    "bytes 0-99999999999999999999/1", "items 0-1/2", "bytes 0-1", "bytes a-b/c", "bytes +1-2/3", ""] {
            XCTAssertNil(ContentRange(headerValue: bad), bad)
        }
    }

    func testThrottlingBacksOffForSecondsUntilTheDeadline() {
        let policy = RetryPolicy(maxAttempts: 5, deadline: 30)
        let slowDown = FetchError.http(status: 503, s3Code: "SlowDown")
        XCTAssertTrue(slowDown.isThrottling)
        var total = 0.0
        for attempt in 1...6 { total += policy.delay(afterAttempt: attempt, throttled: true) }
        XCTAssertGreaterThan(total, 5, "six throttled waits must add up to seconds")
        XCTAssertLessThanOrEqual(policy.delay(afterAttempt: 40, throttled: true), policy.throttleMaxDelay)
        // Past maxAttempts a throttled request still retries while the deadline allows; others do not.
        XCTAssertTrue(policy.mayRetry(after: slowDown, attempt: 9, elapsed: 10, delay: 4))
        XCTAssertFalse(policy.mayRetry(after: slowDown, attempt: 9, elapsed: 27, delay: 4))
        XCTAssertFalse(policy.mayRetry(after: FetchError.http(status: 500, s3Code: nil), attempt: 5, elapsed: 1, delay: 0.1))
        XCTAssertFalse(policy.mayRetry(after: FetchError.http(status: 412, s3Code: nil), attempt: 1, elapsed: 0, delay: 0.1))
    }

    func testRedirectsStayOnTheirOrigin() {
        let base = "http://127.0.0.1:9000/noaa-goes16/k"
        XCTAssertEqual(CurlHandle.sameOrigin("/noaa-goes16/other", as: base), "http://127.0.0.1:9000/noaa-goes16/other")
        XCTAssertNotNil(CurlHandle.sameOrigin("http://127.0.0.1:9000/x", as: base))
        XCTAssertNil(CurlHandle.sameOrigin("http://127.0.0.1:9001/x", as: base))
        XCTAssertNil(CurlHandle.sameOrigin("https://127.0.0.1:9000/x", as: base))
        XCTAssertNil(CurlHandle.sameOrigin("http://evil.example:9000/x", as: base))
        XCTAssertNil(CurlHandle.sameOrigin("http://evil.example/x", as: "https://noaa-goes16.s3.amazonaws.com/k"))
        XCTAssertNil(CurlHandle.sameOrigin("", as: base))
        XCTAssertNil(CurlHandle.sameOrigin("file:///etc/passwd", as: base))
    }

    func testAnETagCannotWriteHeaders() {
        XCTAssertEqual(CurlHandle.ifMatchHeader("\"abc\""), "If-Match: \"abc\"")
        XCTAssertEqual(CurlHandle.ifMatchHeader("abc"), "If-Match: \"abc\"")
        for bad in ["\"x\r\nX-Inj: 1\r\n\"", "x\ny", "x\ry", "\u{7f}", "é", "", String(repeating: "a", count: 300)] {
            XCTAssertNil(CurlHandle.ifMatchHeader(bad), bad.debugDescription)
        }
    }

    /// `--max-bandwidth 1` used to sleep off a whole chunk's debt inside libcurl's callback: no
    /// timeout could fire, and the daemon outlived SIGTERM for minutes.
    func testATinyBandwidthLimitGivesUpAtTheRequestDeadline() {
        let limit = BandwidthLimit(bytesPerSecond: 1)
        let started = DispatchTime.now().uptimeNanoseconds
        XCTAssertFalse(limit.consume(16 << 10, until: started + 300_000_000))
        let took = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        XCTAssertLessThan(took, 5, "it must stop near the deadline (0.3 s), not after 16,384 s")
        XCTAssertTrue(BandwidthLimit(bytesPerSecond: 1 << 30).consume(1024, until: started + 10_000_000_000))
    }
}
