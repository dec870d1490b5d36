@testable import FileSystem
import GOESCatalog
import XCTest

final class ReadPathPolicyTests: XCTestCase {
    func testSequentialReadsGrowTheWindowOneBlockPerMiB() {
        let pattern = ReadPattern()
        let mib = 1 << 20
        var windows: [Int] = []
        for i in 0..<18 { windows.append(pattern.record(offset: i * mib, end: (i + 1) * mib)) }
        XCTAssertEqual(windows, [0] + Array(2...16) + [16, 16])
        // A jump far away starts a new run.
        XCTAssertEqual(pattern.record(offset: 500 * mib, end: 501 * mib), 0)
    }

    func testSmallHeaderReadsNeverPrefetch() {
        // h5netcdf: ~100 reads of 512 B scattered in the first 100 KB, then the last KB.
        let pattern = ReadPattern()
        for i in 0..<100 { XCTAssertEqual(pattern.record(offset: (i * 7919) % 100_000, end: (i * 7919) % 100_000 + 512), 0) }
        XCTAssertEqual(pattern.record(offset: 60_000_000, end: 60_001_024), 0)
    }

    func testRandomReadsNeverPrefetch() {
        let pattern = ReadPattern()
        let mib = 1 << 20
        for offset in [90, 10, 300, 42, 7, 250].map({ $0 * mib }) {
            XCTAssertEqual(pattern.record(offset: offset, end: offset + 4096), 0)
        }
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
