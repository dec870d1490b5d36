import Foundation

/// Offline operations on a cache directory: `goesfs cache info|verify|clear`.
/// Each runs under the cache lock, so never while a mount uses the directory.
public enum CacheMaintenance {
    public struct Summary: Sendable {
        public var objects = 0
        public var blocks = 0
        public var bytes = 0
        /// Bytes the data files really take on disk (they are sparse).
        public var diskBytes = 0
        /// The cap of the last mount, if one recorded it.
        public var cap: Int?
    }

    public struct VerifyReport: Sendable {
        public var blocksChecked = 0
        public var damagedBlocks: [String] = []
        public var orphanFiles = 0
    }

    public static func summary(directory: CacheDirectory) throws -> Summary {
        let index = try CacheIndex(directory: directory)
        var summary = Summary()
        let rows = try index.blockSummary()
        summary.objects = rows.objects
        summary.blocks = rows.blocks
        summary.bytes = rows.bytes
        summary.cap = index.recordedCap()
        summary.diskBytes = directory.dataFileEntries().reduce(0) { $0 + $1.diskBytes }
        return summary
    }

    /// Checks every recorded block against its checksum; damaged blocks (and rows no block could
    /// have written, such as a negative length) are dropped from the index, so the next read
    /// fetches them again. Entries under `objects/` the index does not know, or that are not plain
    /// files, are deleted.
    public static func verify(directory: CacheDirectory) throws -> VerifyReport {
        let index = try CacheIndex(directory: directory)
        var report = VerifyReport()
        var known = Set<CacheDirectory.Entry>()
        for object in try index.allObjects() {
            known.insert(CacheDirectory.entry(bucket: object.bucket, key: object.key))
            let file = directory.existingDataFile(bucket: object.bucket, key: object.key)
            for row in try index.blocks(objectID: object.id) {
                report.blocksChecked += 1
                if let extent = row.extent, let crc = row.crc, let file,
                   intact(file, offset: extent.offset, length: extent.length, crc: crc) { continue }
                report.damagedBlocks.append("\(object.bucket)/\(object.key) block \(row.name)")
                try index.dropBlock(objectID: object.id, row: row)
            }
        }
        for (entry, isPlainFile, _) in directory.dataFileEntries() where !isPlainFile || !known.contains(entry) {
            directory.removeEntry(folder: entry.folder, name: entry.name)
            report.orphanFiles += 1
        }
        return report
    }

    private static func intact(_ file: DataFile, offset: Int, length: Int, crc: UInt32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: length)
        let got = (try? buffer.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }) ?? 0
        return got == length && buffer.withUnsafeBytes(blockChecksum) == crc
    }

    /// Removes every cached byte and the index (the lock and the log stay).
    public static func clear(directory: CacheDirectory) {
        directory.removeAllDataFiles()
        directory.removeIndex()
    }
}
