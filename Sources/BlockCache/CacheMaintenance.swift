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
    }

    public struct VerifyReport: Sendable {
        public var blocksChecked = 0
        public var damagedBlocks: [String] = []
        public var orphanFiles = 0
    }

    public static func summary(directory: String) throws -> Summary {
        let index = try CacheIndex(path: directory + "/index.sqlite")
        var summary = Summary()
        let rows = try index.blockSummary()
        summary.objects = rows.objects
        summary.blocks = rows.blocks
        summary.bytes = rows.bytes
        summary.diskBytes = diskUsage(directory + "/objects")
        return summary
    }

    /// Checks every recorded block against its checksum; damaged blocks are dropped from the index
    /// (the next read fetches them again) and data files the index does not know are deleted.
    public static func verify(directory: String) throws -> VerifyReport {
        let index = try CacheIndex(path: directory + "/index.sqlite")
        var report = VerifyReport()
        var known = Set<String>()
        for object in try index.allObjects() {
            let path = directory + "/" + DataFile.relativePath(bucket: object.bucket, key: object.key)
            known.insert(path)
            let file = FileManager.default.fileExists(atPath: path) ? try? DataFile(path: path) : nil
            for (block, crc, length) in try index.blocks(objectID: object.id) {
                report.blocksChecked += 1
                var buffer = [UInt8](repeating: 0, count: length)
                let got = (try? buffer.withUnsafeMutableBytes { try file?.read(into: $0, at: block * object.blockSize) ?? 0 }) ?? 0
                if got != length || buffer.withUnsafeBytes(blockChecksum) != crc {
                    report.damagedBlocks.append("\(object.bucket)/\(object.key) block \(block)")
                    try index.dropBlock(objectID: object.id, block: block)
                }
            }
        }
        if let files = FileManager.default.enumerator(atPath: directory + "/objects") {
            for case let relative as String in files where relative.hasSuffix(".data") {
                let path = directory + "/objects/" + relative
                if !known.contains(path) { unlink(path); report.orphanFiles += 1 }
            }
        }
        return report
    }

    /// Removes every cached byte and the index.
    public static func clear(directory: String) throws {
        for name in ["objects", "index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
            let path = directory + "/" + name
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        }
    }

    static func diskUsage(_ directory: String) -> Int {
        var total = 0
        guard let files = FileManager.default.enumerator(atPath: directory) else { return 0 }
        for case let relative as String in files {
            var st = stat()
            if lstat(directory + "/" + relative, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { total += Int(st.st_blocks) * 512 }
        }
        return total
    }
}
