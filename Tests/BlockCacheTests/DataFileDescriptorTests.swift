@testable import BlockCache
import Foundation
import XCTest

/// 3,000 open files used to take 3,000 descriptors, and past the limit every read of every open
/// file failed. Data-file descriptors are a bounded set now; idle ones are reopened on use.
final class DataFileDescriptorTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "goesfs-fds-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    private func openDescriptors() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0 }

    func testManyOpenFilesStayWithinTheDescriptorBound() throws {
        let cache = try CacheDirectory(path: directory, create: false)
        let pool = DataFileDescriptors(limit: 16)
        let before = openDescriptors()
        var files: [DataFile] = []
        for n in 0..<300 {
            let opened = try cache.openDataFile(bucket: "b", key: "k\(n)")
            // Re-made on the small pool under test, reopening through the cache directory as the real one does.
            let file = DataFile(descriptor: try opened.withDescriptor { dup($0) }, path: opened.path, pool: pool) {
                try cache.openDataFile(bucket: "b", key: "k\(n)").withDescriptor { dup($0) }
            }
            try Array("object \(n)".utf8).withUnsafeBytes { try file.write($0, at: 4096) }
            files.append(file)
        }
        XCTAssertLessThanOrEqual(pool.openCount, 16)
        XCTAssertLessThan(openDescriptors() - before, 16 + 8, "descriptors must not grow with the number of open files")
        for (n, file) in files.enumerated().reversed() {
            var buffer = [UInt8](repeating: 0, count: 32)
            let got = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: 4096) }
            XCTAssertEqual(String(decoding: buffer[..<got], as: UTF8.self), "object \(n)")
        }
        XCTAssertLessThanOrEqual(pool.openCount, 16)
    }

    func testALeasedDescriptorIsNeverClosedUnderItsReader() throws {
        let cache = try CacheDirectory(path: directory, create: false)
        let pool = DataFileDescriptors(limit: 1)
        func make(_ key: String) throws -> DataFile {
            DataFile(descriptor: try cache.openDataFile(bucket: "b", key: key).withDescriptor { dup($0) }, path: key, pool: pool) {
                try cache.openDataFile(bucket: "b", key: key).withDescriptor { dup($0) }
            }
        }
        let first = try make("first"), second = try make("second")
        try Array("one".utf8).withUnsafeBytes { try first.write($0, at: 0) }
        let lease = try first.lease()
        try Array("two".utf8).withUnsafeBytes { try second.write($0, at: 0) }   // over the limit: first is leased
        var buffer = [UInt8](repeating: 0, count: 3)
        XCTAssertEqual(pread(lease.descriptor, &buffer, 3, 0), 3)
        XCTAssertEqual(String(decoding: buffer, as: UTF8.self), "one")
        withExtendedLifetime(lease) {}
    }
}

/// The index is opened by name, so a cache directory someone else can rename away (and replace
/// with one holding an index of theirs) is refused: every parent must be ours or root's, and
/// writable by others only with the sticky bit.
final class CacheDirectoryParentTests: XCTestCase {
    func testAParentOthersCanWriteWithoutTheStickyBitIsRefused() throws {
        let parent = NSTemporaryDirectory() + "goesfs-parent-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: parent + "/cache", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        chmod(parent + "/cache", 0o700)
        chmod(parent, 0o777)
        XCTAssertThrowsError(try CacheDirectory(path: parent + "/cache", create: false)) { error in
            XCTAssertTrue("\(error)".contains("rename it out of"), "\(error)")
        }
        chmod(parent, 0o1777)   // like /tmp: others may add entries, not rename ours
        XCTAssertNoThrow(try CacheDirectory(path: parent + "/cache", create: false))
        chmod(parent, 0o755)
        XCTAssertNoThrow(try CacheDirectory(path: parent + "/cache", create: false))
    }
}
