import GOESCatalog
import XCTest

final class ObjectNameTests: XCTestCase {
    func testParsesL1bRadianceName() throws {
        let name = try XCTUnwrap(ObjectName(fileName: "OR_ABI-L1b-RadC-M6C13_G16_s20230661431174_e20230661433547_c20230661434018.nc"))
        XCTAssertEqual(name.product, "ABI-L1b-Rad")
        XCTAssertEqual(name.sector, "C")
        XCTAssertEqual(name.scanMode, 6)
        XCTAssertEqual(name.band, 13)
        XCTAssertEqual(name.platformID, "G16")
        XCTAssertEqual(name.satellite, Satellite(number: 16))
        XCTAssertEqual(name.start.description, "2023-03-07T14:31:17.4Z")
        XCTAssertEqual(name.end.description, "2023-03-07T14:33:54.7Z")
        XCTAssertEqual(name.created.description, "2023-03-07T14:34:01.8Z")
    }

    func testMesoSectorsComeFromTheFileName() throws {
        let m1 = try XCTUnwrap(ObjectName(fileName: "OR_ABI-L2-CMIPM1-M6C13_G16_s20230661431174_e20230661431231_c20230661431300.nc"))
        let m2 = try XCTUnwrap(ObjectName(fileName: "OR_ABI-L1b-RadM2-M6C02_G18_s20230661431174_e20230661431231_c20230661431300.nc"))
        XCTAssertEqual(m1.sector, "M1")
        XCTAssertEqual(m1.product, "ABI-L2-CMIP")
        XCTAssertEqual(m2.sector, "M2")
        XCTAssertEqual(m2.band, 2)
        XCTAssertEqual(m2.satellite, Satellite(number: 18))
    }

    func testProductsWithoutBandOrSector() throws {
        let mcmip = try XCTUnwrap(ObjectName(fileName: "OR_ABI-L2-MCMIPF-M6_G16_s20230661430205_e20230661439513_c20230661440012.nc"))
        XCTAssertEqual(mcmip.product, "ABI-L2-MCMIP")
        XCTAssertEqual(mcmip.sector, "F")
        XCTAssertNil(mcmip.band)
        let glm = try XCTUnwrap(ObjectName(fileName: "OR_GLM-L2-LCFA_G16_s20230661431000_e20230661431200_c20230661431217.nc"))
        XCTAssertEqual(glm.product, "GLM-L2-LCFA")
        XCTAssertNil(glm.sector)
        XCTAssertNil(glm.scanMode)
        XCTAssertNil(glm.band)
    }

    func testMalformedNamesAreNotGOESNames() {
        for bad in ["index.html", "not_a_goes_name.txt", "OR_ABI-L1b-RadC-M6C13_G16_s2023066143117_e20230661433547_c20230661434018.nc",
                    "OR_ABI-L1b-RadC-M6C17_G16_s20230661431174_e20230661433547_c20230661434018.nc",
                    "OR_ABI-L1b-RadC-M6C13_G16_s20233671431174_e20230661433547_c20230661434018.nc",
                    "OR_ABI-L1b-RadC-M6C13_G16_s20230662531174_e20230661433547_c20230661434018.nc",
                    "OR_ABI-L1b-RadC-M6C13_X16_s20230661431174_e20230661433547_c20230661434018.nc",
                    "OR__G16_s20230661431174_e20230661433547_c20230661434018.nc", ".nc", "", "OR_ABI-L1b-RadC-M6C13_G16_s20230661431174.nc"] {
            XCTAssertNil(ObjectName(fileName: bad), bad)
        }
    }

    func testScanTimeEpochAndLeapYears() throws {
        let t = try XCTUnwrap(ScanTime(stamp: "20240601200000"))
        XCTAssertEqual(t.description, "2024-02-29T12:00:00.0Z")
        XCTAssertEqual(t.secondsSinceEpoch, 1_709_208_000)
        XCTAssertNil(ScanTime(stamp: "20233660000000")) // day 366 of a common year
        XCTAssertEqual(try XCTUnwrap(ScanTime(stamp: "20243660000000")).monthAndDay.day, 31)
        XCTAssertLessThan(try XCTUnwrap(ScanTime(stamp: "20230661431174")), try XCTUnwrap(ScanTime(stamp: "20230661431175")))
    }

    func testSatelliteSpellings() {
        for text in ["16", "G16", "goes16", "GOES-16", "noaa-goes16"] { XCTAssertEqual(Satellite(parsing: text)?.bucket, "noaa-goes16") }
        XCTAssertNil(Satellite(parsing: "15"))
        XCTAssertNil(Satellite(parsing: "goes"))
    }

    func testHourPrefix() throws {
        let hour = try XCTUnwrap(HourPrefix(prefix: "ABI-L1b-RadC/2023/066/14/"))
        XCTAssertEqual(hour.endSecondsSinceEpoch, try XCTUnwrap(ScanTime(stamp: "20230661500000")).secondsSinceEpoch)
        XCTAssertNil(HourPrefix(prefix: "ABI-L1b-RadC/2023/066/"))
        XCTAssertNil(HourPrefix(prefix: "ABI-L1b-RadC/2023/066/24/"))
    }
}
