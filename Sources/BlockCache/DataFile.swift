import CChecksum
import Foundation

/// The sparse file that holds one object's cached blocks at their own offsets.
///
/// Block `i` covers bytes `[i·blockSize, (i+1)·blockSize)` of the object. Which blocks are valid is
/// the index's business; this type only moves bytes. `CacheDirectory.openDataFile` opens one.
public final class DataFile: Sendable {
    /// For messages: the file was opened through the cache directory's descriptor, not by this name.
    public let path: String
    /// The open descriptor, for zero-copy replies; valid while this object lives.
    public let descriptor: Int32

    init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { close(descriptor) }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 { if errno == EINTR { continue }; throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            done += n
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns how many were there (fewer at end of file).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 { if errno == EINTR { continue }; throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// The file's length now (a block verified earlier could have been cut since by someone else).
    public var length: Int {
        var st = stat()
        return fstat(descriptor, &st) == 0 ? Int(st.st_size) : 0
    }

    /// Drops every byte (the object changed at the source).
    public func truncate() throws {
        if ftruncate(descriptor, 0) != 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }
}

/// CRC-32C of a block, recorded in the index and checked when the block is read back.
public func blockChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    goesfs_crc32c(0, bytes.baseAddress, bytes.count)
}
