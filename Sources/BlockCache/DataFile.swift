import CChecksum
import CFileSpace
import Foundation
import Locking

/// The sparse file that holds one object's cached blocks at their own offsets.
///
/// Block `i` covers bytes `[i·blockSize, (i+1)·blockSize)` of the object. Which blocks are valid is
/// the index's business; this type only moves bytes. `CacheDirectory.openDataFile` opens one.
///
/// Its descriptor is one of a bounded set (`DataFileDescriptors`): thousands of open files must not
/// take thousands of descriptors (SQLite and curl need some too). An idle descriptor may be closed
/// and is reopened, through the cache directory, on next use; one in use (`withDescriptor`, or a
/// `Lease` held by a reply being spliced) is never closed under its user.
public final class DataFile: Sendable {
    /// For messages: the file was opened through the cache directory's descriptor, not by this name.
    public let path: String
    private let reopen: @Sendable () throws -> Int32
    private let state: Locked<State>
    private let pool: DataFileDescriptors

    private struct State {
        var descriptor: Int32
        var pins = 0
        /// The file's change time after our own last write: another value means someone else wrote.
        var knownChange: timespec?
        /// Our own writes under way: while any is, a change time that moved may be ours.
        var writesInFlight = 0
    }

    init(descriptor: Int32, path: String, pool: DataFileDescriptors = .shared, reopen: @escaping @Sendable () throws -> Int32) {
        self.path = path
        self.reopen = reopen
        self.pool = pool
        var st = stat()
        state = Locked(State(descriptor: descriptor, knownChange: fstat(descriptor, &st) == 0 ? st.st_ctim : nil))
        pool.opened(self)
    }

    deinit {
        pool.gone(self)
        let fd = state.withLock { $0.descriptor }
        if fd >= 0 { close(fd) }
    }

    /// Keeps the descriptor open while `body` runs with it.
    public func withDescriptor<T>(_ body: (Int32) throws -> T) throws -> T {
        let fd = try pin()
        defer { unpin() }
        return try body(fd)
    }

    /// The descriptor, held open until the lease is released: for a reply the kernel reads later.
    public final class Lease: Sendable {
        public let descriptor: Int32
        let file: DataFile
        init(file: DataFile, descriptor: Int32) { self.file = file; self.descriptor = descriptor }
        deinit { file.unpin() }
    }

    public func lease() throws -> Lease { Lease(file: self, descriptor: try pin()) }

    private func pin() throws -> Int32 {
        var reopened = false
        let fd = try state.withLock { s throws -> Int32 in
            if s.descriptor < 0 {
                // Reopening under this file's own lock: only users of this one file wait for it.
                s.descriptor = try reopen()
                reopened = true
            }
            s.pins += 1
            return s.descriptor
        }
        pool.used(self, reopened: reopened)
        return fd
    }

    fileprivate func unpin() { state.withLock { $0.pins -= 1 } }

    /// Closes the descriptor if nobody uses it; true if it did.
    fileprivate func closeIfIdle() -> Bool {
        let fd = state.withLock { s -> Int32 in
            guard s.pins == 0, s.descriptor >= 0 else { return -1 }
            defer { s.descriptor = -1 }
            return s.descriptor
        }
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        // Several download threads write one file at once: each write is "ours" until its own
        // fstat has recorded the change time it caused, so a reader never takes it for someone else's.
        state.withLock { $0.writesInFlight += 1 }
        defer { state.withLock { $0.writesInFlight -= 1 } }
        try withDescriptor { descriptor in
            var done = 0
            while done < bytes.count {
                let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
                if n < 0 { if errno == EINTR { continue }; throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                done += n
            }
            noteOwnChange(descriptor)
        }
    }

    private func noteOwnChange(_ descriptor: Int32) {
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { return }
        state.withLock { s in
            // Kept monotonic: two writers' fstats may return in either order.
            if let known = s.knownChange, (known.tv_sec, known.tv_nsec) > (st.st_ctim.tv_sec, st.st_ctim.tv_nsec) { return }
            s.knownChange = st.st_ctim
        }
    }

    /// The file's change time now (nanoseconds since the epoch), to tell later whether it moved.
    public var changeTime: Int? {
        try? withDescriptor { descriptor -> Int? in
            var st = stat()
            guard fstat(descriptor, &st) == 0 else { return nil }
            return st.st_ctim.tv_sec * 1_000_000_000 + st.st_ctim.tv_nsec
        }
    }

    /// Whether someone else changed the file since we last wrote it or asked (its change time
    /// moved): the blocks checked earlier in this mount must be checked again before they are
    /// served. Each change is reported once.
    public func changedByOthers() -> Bool {
        (try? withDescriptor { descriptor -> Bool in
            var st = stat()
            guard fstat(descriptor, &st) == 0 else { return true }
            return state.withLock { s in
                guard s.writesInFlight == 0 else { return false }   // asked again on the next read
                guard let known = s.knownChange else { s.knownChange = st.st_ctim; return false }
                // Only a newer change time is someone else's: an older one is this fstat racing
                // one of our own writes that finished meanwhile.
                guard (st.st_ctim.tv_sec, st.st_ctim.tv_nsec) > (known.tv_sec, known.tv_nsec) else { return false }
                s.knownChange = st.st_ctim
                return true
            }
        }) ?? false
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns how many were there (fewer at end of file).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        try withDescriptor { descriptor in
            var done = 0
            while done < buffer.count {
                let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
                if n < 0 { if errno == EINTR { continue }; throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                if n == 0 { break }
                done += n
            }
            return done
        }
    }

    /// The file's length now (a block verified earlier could have been cut since by someone else).
    public var length: Int {
        (try? withDescriptor { descriptor -> Int in
            var st = stat()
            return fstat(descriptor, &st) == 0 ? Int(st.st_size) : 0
        }) ?? 0
    }

    /// Frees the disk space of `range` (evicted blocks): the file keeps its length and reads
    /// zeros there, which no block checksum matches.
    public func punchHole(_ range: Range<Int>) throws {
        guard !range.isEmpty else { return }
        state.withLock { $0.writesInFlight += 1 }
        defer { state.withLock { $0.writesInFlight -= 1 } }
        try withDescriptor { descriptor in
            if goesfs_punch_hole(descriptor, Int64(range.lowerBound), Int64(range.count)) != 0 {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            noteOwnChange(descriptor)
        }
    }

    /// Drops every byte (the object changed at the source).
    public func truncate() throws {
        try withDescriptor { descriptor in
            if ftruncate(descriptor, 0) != 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            noteOwnChange(descriptor)
        }
    }
}

/// The data files with an open descriptor, least recently used first; over `limit`, idle ones are
/// closed. Decides under its lock, closes outside it.
final class DataFileDescriptors: Sendable {
    /// A quarter of the soft descriptor limit (raised to the hard limit at start), within 64…4096.
    static let shared = DataFileDescriptors(limit: {
        var limit = rlimit()
        let soft = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int(clamping: limit.rlim_cur) : 1024
        return min(4096, max(64, soft / 4))
    }())

    let limit: Int
    private struct Entry { weak var file: DataFile?; var lastUse: UInt64 }
    private struct State { var entries: [ObjectIdentifier: Entry] = [:]; var clock: UInt64 = 0 }
    private let state = Locked(State())

    init(limit: Int) { self.limit = max(1, limit) }

    var openCount: Int { state.withLock { $0.entries.count } }

    func opened(_ file: DataFile) { used(file, reopened: true) }

    func gone(_ file: DataFile) {
        _ = state.withLock { $0.entries.removeValue(forKey: ObjectIdentifier(file)) }
    }

    func used(_ file: DataFile, reopened: Bool) {
        let (candidates, excess) = state.withLock { s -> ([DataFile], Int) in
            s.clock += 1
            s.entries[ObjectIdentifier(file), default: Entry(file: file, lastUse: 0)].lastUse = s.clock
            guard reopened, s.entries.count > limit else { return ([], 0) }
            // Oldest first, a few more than needed: some may be in use right now.
            let excess = s.entries.count - limit
            let oldest = s.entries.values.sorted { $0.lastUse < $1.lastUse }.prefix(excess + 8)
            return (oldest.compactMap { entry in entry.file.flatMap { $0 === file ? nil : $0 } }, excess)
        }
        var closed = 0
        for candidate in candidates where closed < excess && candidate.closeIfIdle() {
            gone(candidate)
            closed += 1
        }
    }
}

/// CRC-32C of a block, recorded in the index and checked when the block is read back.
public func blockChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    goesfs_crc32c(0, bytes.baseAddress, bytes.count)
}
