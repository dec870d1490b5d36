@testable import ObjectStore
import XCTest

final class ListingPageTests: XCTestCase {
    func testElementsAreFoundByNameInAnyOrder() {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Name>noaa-goes16</Name><Prefix>ABI-L1b-RadC/2023/066/14/</Prefix><KeyCount>2</KeyCount>
            <Contents><Size>4096</Size><ETag>&quot;abc&quot;</ETag><Key>ABI-L1b-RadC/2023/066/14/a &amp; b.nc</Key>
            <LastModified>2023-03-07T14:34:19.000Z</LastModified></Contents>
            <Contents><Key>ABI-L1b-RadC/2023/066/14/c.nc</Key><LastModified>2023-03-07T14:39:19Z</LastModified><Size>0</Size></Contents>
            <CommonPrefixes><Prefix>ABI-L1b-RadC/2023/066/14/sub/</Prefix></CommonPrefixes>
            <NextContinuationToken>tok/+=</NextContinuationToken><IsTruncated>true</IsTruncated></ListBucketResult>
            """
        let page = ListingPage(xml: xml, prefix: "ABI-L1b-RadC/2023/066/14/")
        XCTAssertEqual(page.listing.objects.map(\.key), ["ABI-L1b-RadC/2023/066/14/a & b.nc", "ABI-L1b-RadC/2023/066/14/c.nc"])
        XCTAssertEqual(page.listing.objects.map(\.size), [4096, 0])
        XCTAssertEqual(page.listing.objects[0].etag, "\"abc\"")
        XCTAssertEqual(page.listing.objects[0].lastModified, 1_678_199_659)
        XCTAssertEqual(page.listing.commonPrefixes, ["ABI-L1b-RadC/2023/066/14/sub/"])
        XCTAssertTrue(page.isTruncated)
        XCTAssertEqual(page.continuationToken, "tok/+=")
    }

    func testEntityDecoding() {
        XCTAssertEqual(XMLScan.decodeEntities("a&lt;b&gt;&#65;&#x42;&apos;&bogus;"), "a<b>AB'&bogus;")
    }

    func testURLEncodingKeepsSlashesInPathsOnly() {
        XCTAssertEqual(URLEncoding.path("a b/c+d.nc"), "a%20b/c%2Bd.nc")
        XCTAssertEqual(URLEncoding.query("ABI/2023/"), "ABI%2F2023%2F")
        XCTAssertEqual(Source.endpoint("http://127.0.0.1:9000/").objectURL(bucket: "noaa-goes16", key: "k/x.nc"),
                       "http://127.0.0.1:9000/noaa-goes16/k/x.nc")
        XCTAssertEqual(Source.aws.objectURL(bucket: "noaa-goes18", key: "k"), "https://noaa-goes18.s3.amazonaws.com/k")
    }

    func testErrorTaxonomy() {
        XCTAssertEqual(FetchError.http(status: 403, s3Code: "AccessDenied").category, .auth)
        XCTAssertEqual(FetchError.http(status: 404, s3Code: "NoSuchKey").category, .notFound)
        XCTAssertEqual(FetchError.http(status: 503, s3Code: "SlowDown").category, .server)
        XCTAssertEqual(FetchError.http(status: 429, s3Code: nil).category, .server)
        XCTAssertFalse(ErrorCategory.notFound.isRetryable)
        XCTAssertFalse(ErrorCategory.auth.isRetryable)
        XCTAssertTrue(ErrorCategory.timeout.isRetryable)
    }

    func testBackoffIsJitteredAndCapped() {
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: 0.1, maxDelay: 1, deadline: 30)
        for attempt in 1...10 {
            let delay = policy.delay(afterAttempt: attempt)
            XCTAssertGreaterThanOrEqual(delay, 0)
            XCTAssertLessThanOrEqual(delay, min(1, 0.1 * pow(2, Double(attempt - 1))))
        }
    }

    func testUnreachableServerFailsFastAsNetworkError() {
        // Port 9 on loopback: nothing listens, so the connection is refused at once.
        let client = S3Client(source: .endpoint("http://127.0.0.1:9"), retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.01, deadline: 5))
        let started = Date()
        XCTAssertThrowsError(try client.list(bucket: "noaa-goes16", prefix: "")) { error in
            XCTAssertEqual((error as? FetchError)?.category, .network)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }
}
