@testable import FileSystem
import GOESCatalog
import XCTest

final class ReadPathPolicyTests: XCTestCase {
    func testSequentialReadsStartReadaheadAtTheThresholdAndGrowItToTheCap() {
        let policies = Policies()
        let pattern = ReadPattern(policies: policies)
        let read = 128 << 10
        var readaheads: [ReadPattern.Readahead?] = []
        for i in 0..<400 { readaheads.append(pattern.record(offset: i * read, end: (i + 1) * read)) }
        XCTAssertNil(readaheads[2], "384 KiB in order is not yet a sequential reader")
        XCTAssertEqual(readaheads[3], .init(window: 2 << 20, requestBytes: 1 << 20), "at 512 KiB: 2 MiB ahead in 1 MiB requests")
        XCTAssertEqual(readaheads[399], .init(window: policies.maxReadahead, requestBytes: policies.maxRequestBytes), "50 MiB in: the caps (64 MiB ahead, 8 MiB requests)")
        let windows = readaheads.compactMap { $0?.window }
        XCTAssertEqual(windows, windows.sorted(), "the window only grows along a run")
        // A jump far away starts a new run.
        XCTAssertNil(pattern.record(offset: 500 << 20, end: (500 << 20) + read))
    }

    func testSmallHeaderReadsNeverPrefetch() {
        // h5netcdf: ~100 reads of 512 B scattered in the first 100 KB, then the last KB.
        let pattern = ReadPattern(policies: Policies())
        for i in 0..<100 { XCTAssertNil(pattern.record(offset: (i * 7919) % 100_000, end: (i * 7919) % 100_000 + 512)) }
        XCTAssertNil(pattern.record(offset: 60_000_000, end: 60_001_024))
    }

    func testRandomReadsNeverPrefetch() {
        let pattern = ReadPattern(policies: Policies())
        let mib = 1 << 20
        for offset in [90, 10, 300, 42, 7, 250].map({ $0 * mib }) {
            XCTAssertNil(pattern.record(offset: offset, end: offset + (256 << 10)))
        }
    }

    func testNeededBlocksGoAsRunsOfAtMostOneRequest() {
        XCTAssertEqual(FetchPlanner.runs([5, 1, 2, 3, 9, 10], maxBlocks: 2), [1...2, 3...3, 5...5, 9...10])
        XCTAssertEqual(FetchPlanner.runs([], maxBlocks: 4), [])
    }

    func testReadaheadWaitsForAWholeRequestExceptNextToTheReaderOrAtTheEnd() {
        let present: Set<Int> = [20, 21]
        let missing = { (block: Int) in !present.contains(block) }
        // A window of 10..40 in requests of 8: full pieces, the sliver before the present blocks
        // goes too (it cannot grow), the tail sliver waits for the window to slide on.
        XCTAssertEqual(FetchPlanner.readahead(10...40, requestBlocks: 8, lastBlock: 100, urgentBlock: 10, isMissing: missing),
                       [10...17, 18...19, 22...29, 30...37])
        // At the object's end the tail goes as it is.
        XCTAssertEqual(FetchPlanner.readahead(30...40, requestBlocks: 8, lastBlock: 40, urgentBlock: 30, isMissing: missing),
                       [30...37, 38...40])
        // Next to the reader even a sliver goes: it is needed now.
        XCTAssertEqual(FetchPlanner.readahead(22...24, requestBlocks: 8, lastBlock: 100, urgentBlock: 22, isMissing: missing), [22...24])
        // The window is covered up to the sliver left to grow; all of it when nothing is left.
        XCTAssertEqual(FetchPlanner.readaheadPlan(10...40, requestBlocks: 8, lastBlock: 100, urgentBlock: 10, isMissing: missing).coveredThrough, 37)
        XCTAssertEqual(FetchPlanner.readaheadPlan(20...21, requestBlocks: 8, lastBlock: 100, urgentBlock: 20, isMissing: missing).coveredThrough, 21)
    }

    func testScanPrefetchPlacesTheRangesReadOntoTheNextScanScaledAndWithSlack() {
        let profile = ScanPrefetcher.Profile(size: 10_000_000, ranges: [0..<100_000, 5_000_000..<5_200_000, 9_990_000..<10_000_000])
        // 2 % larger: offsets scale by 1.02, and 0.25 % of the new size (25,500 B) is added on both sides.
        XCTAssertEqual(ScanPrefetcher.replay(profile, onto: 10_200_000),
                       [0..<127_500, 5_074_500..<5_329_500, 10_164_300..<10_200_000])
        // Ranges that meet after slack merge into one.
        XCTAssertEqual(ScanPrefetcher.replay(.init(size: 1 << 20, ranges: [0..<1000, 30_000..<31_000]), onto: 1 << 20), [0..<(31_000 + 16_384)])
        XCTAssertEqual(ScanPrefetcher.replay(.init(size: 0, ranges: [0..<10]), onto: 100), [])
    }

    func testOrbitSlotHandovers() {
        XCTAssertEqual(OrbitSlot.east.satellite(on: CalendarDay("2025-04-06")!).number, 16)
        XCTAssertEqual(OrbitSlot.east.satellite(on: CalendarDay("2025-04-07")!).number, 19)
        XCTAssertEqual(OrbitSlot.west.satellite(on: CalendarDay("2023-01-03")!).number, 17)
        XCTAssertEqual(OrbitSlot.west.satellite(on: CalendarDay("2023-01-04")!).number, 18)
        XCTAssertEqual(CalendarDay("2024-12-31")?.keyPath, "2024/366")
        XCTAssertEqual(CalendarDay(year: 2023, dayOfYear: 66)?.name, "2023-03-07")
    }
}
