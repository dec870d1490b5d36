@testable import GOESCatalog
import XCTest

final class NearestRequestTests: XCTestCase {
    func testTimesAndTolerancesParse() {
        XCTAssertEqual(NearestRequest(name: "2023-03-07T14:23Z.nc")?.instant, ScanTime(stamp: "20230661423000")!.secondsSinceEpoch)
        XCTAssertEqual(NearestRequest(name: "2023-03-07T14:23:10Z.nc")?.instant, ScanTime(stamp: "20230661423100")!.secondsSinceEpoch)
        XCTAssertEqual(NearestRequest(name: "2023-03-07T14:23Z.nc")?.tolerance, 3600)
        XCTAssertEqual(NearestRequest(name: "2023-03-07T14:23Z~10m.nc")?.tolerance, 600)
        XCTAssertEqual(NearestRequest(name: "2023-03-07T14:23Z~90s.nc")?.tolerance, 90)
        XCTAssertEqual(NearestRequest(name: "2023-03-07T14:23Z~2h.nc")?.tolerance, 7200)
        XCTAssertEqual(NearestRequest(name: "2023-03-07T14:23Z~1.5h.nc")?.tolerance, 5400)
        XCTAssertEqual(NearestRequest(name: "2023-03-07T14:23Z~24h.nc")?.hours.count, 49)
    }

    /// Names any local user can `stat`: each used to trap the daemon or loop for billions of steps.
    func testHostileNamesAreRejectedNotTrapped() {
        for name in [".nc", "~.nc", "x", "", "~", "~~.nc", "2023-03-07T14:23Z~.nc", "2023-03-07T14:23Z~infh.nc", "2023-03-07T14:23Z~nanm.nc",
                     "2023-03-07T14:23Z~1e16h.nc", "2023-03-07T14:23Z~1e9h.nc", "2023-03-07T14:23Z~25h.nc", "2023-03-07T14:23Z~2000h.nc",
                     "2023-03-07T14:23Z~-1h.nc", "2023-03-07T14:23Z~2d.nc", "2023-03-07T14:23.nc", "2023-02-30T14:23Z.nc",
                     "2023-03-07T24:00Z.nc", "2023-03-07T+1:-1Z.nc", "2023-03-07TZ.nc", "2023-03-07T::Z.nc", "9999-12-31T23:59Z~24h.nc",
                     "1970-01-01T00:00Z~99999999999999999999h.nc", String(repeating: "9", count: 10_000) + ".nc"] {
            let parsed = NearestRequest(name: name)
            if let parsed { XCTAssertLessThanOrEqual(parsed.hours.count, 49, name) } else { XCTAssertNil(parsed, name) }
        }
        XCTAssertNil(NearestRequest(name: "2023-03-07T14:23Z~infh.nc"))
        XCTAssertNil(NearestRequest(name: "2023-03-07T14:23Z~2000h.nc"))
        // The year 9999's last hours: the search stops at the calendar's end instead of trapping.
        XCTAssertLessThan(NearestRequest(name: "9999-12-31T23:59Z~24h.nc")!.hours.count, 49)
    }

    func testSecondsOutsideTheCalendarAreNotTimes() {
        XCTAssertNil(ScanTime(secondsSinceEpoch: .infinity))
        XCTAssertNil(ScanTime(secondsSinceEpoch: .nan))
        XCTAssertNil(ScanTime(secondsSinceEpoch: 1e30))
        XCTAssertNil(ScanTime(secondsSinceEpoch: -1))
        XCTAssertEqual(ScanTime(secondsSinceEpoch: 0)?.year, 1970)
    }
}

final class FolderLevelTests: XCTestCase {
    func testTheCatalogKnowsTheFolderLevelsAboveFiles() {
        XCTAssertEqual(FolderLevel(components: ["ABI-L1b-RadC"]), .product)
        XCTAssertEqual(FolderLevel(components: ["GLM-L2-LCFA", "2023"]), .year)
        XCTAssertEqual(FolderLevel(components: ["ABI-L2-CMIPF", "2024", "366"]), .dayOfYear)
        XCTAssertEqual(FolderLevel(components: ["ABI-L1b-RadM", "2023", "066", "23"]), .hour)
        for bad in [[], ["index.html"], ["ABI-L1b-RadC", "23"], ["ABI-L1b-RadC", "2023", "366"], ["ABI-L1b-RadC", "2023", "066", "24"],
                    ["ABI-L1b-RadC", "2023", "066", "14", "x.nc"], ["ABI-L1b-RadC", "+202"], ["ABI-L1b-RadC", "2023", "66"],
                    ["XYZ-L1b-RadC"], ["ABI-L1b-Rad/C"], ["ABI-L1b-"], ["ABI-L1b-RadC", "1999"]] {
            XCTAssertNil(FolderLevel(components: bad), "\(bad)")
        }
    }
}
