import ObjectStore
import XCTest

final class SourcePoolTests: XCTestCase {
    let first = Source.endpoint("http://127.0.0.1:1")
    let second = Source.endpoint("http://127.0.0.1:2")

    func testThreeRetryableFailuresInARowDemoteUntilTheCoolDownEnds() {
        let pool = SourcePool(sources: [first, second], demoteAfter: 3, coolDown: 60)
        XCTAssertEqual(pool.pick(now: 0), 0)
        XCTAssertFalse(pool.failed(0, category: .network, now: 0))
        XCTAssertFalse(pool.failed(0, category: .timeout, now: 0))
        XCTAssertTrue(pool.failed(0, category: .server, now: 0))
        XCTAssertEqual(pool.pick(now: 1), 1)
        XCTAssertEqual(pool.pick(now: 59.9), 1)
        XCTAssertEqual(pool.pick(now: 60), 0, "probed again after the cool-down")
    }

    func testObjectErrorsAndSuccessesResetNothingOrEverything() {
        let pool = SourcePool(sources: [first, second], demoteAfter: 3, coolDown: 60)
        for _ in 0..<5 { XCTAssertFalse(pool.failed(0, category: .notFound, now: 0)) }
        pool.failed(0, category: .network, now: 0)
        pool.failed(0, category: .network, now: 0)
        pool.succeeded(0)
        XCTAssertFalse(pool.failed(0, category: .network, now: 0), "a success in between resets the run")
        XCTAssertEqual(pool.pick(now: 0), 0)
        XCTAssertEqual(pool.snapshot()[0].health.failures, 8)
    }

    func testWhenAllAreDemotedTheOneBackSoonestIsUsed() {
        let pool = SourcePool(sources: [first, second], demoteAfter: 1, coolDown: 60)
        pool.failed(0, category: .network, now: 10)
        pool.failed(1, category: .network, now: 5)
        XCTAssertEqual(pool.pick(now: 20), 1)
    }

    func testMirrorBucketNames() {
        XCTAssertEqual(Source.googleCloud.objectURL(bucket: "noaa-goes18", key: "ABI-L1b-RadC/x.nc"),
                       "https://storage.googleapis.com/gcp-public-data-goes-18/ABI-L1b-RadC/x.nc")
    }

    func testSourceWordsNameThePublicBuckets() {
        XCTAssertEqual(Source.named("aws"), [.aws])
        XCTAssertEqual(Source.named("GCP"), [.googleCloud])
        XCTAssertEqual(Source.named("public"), Source.publicDefaults)
        XCTAssertNil(Source.named("http://127.0.0.1:9000"), "a URL is not a word")
    }
}
