import CFuse
import FileSystem
import Foundation
import Locking
import Logging

/// The thin layer between libfuse's low-level API and the filesystem core.
///
/// libfuse calls the C callbacks below on its own worker threads; each finds this object through the
/// session's userdata, maps inode numbers to paths, and replies. Reads reply from whichever thread
/// finishes the download, so no FUSE worker waits on the network.
public final class FUSEBridge: Sendable {
    let fileSystem: GOESFileSystem
    let inodes = InodeTable()
    /// Open directories: their path and the entries as listed at opendir.
    let directories = Locked<[UInt64: (path: [String], entries: [DirectoryEntry])]>([:])
    let nextDirectoryHandle = Locked<UInt64>(1)
    let logger: Logger
    let failures: RateLimitedWarnings
    let ownership: Ownership
    /// Largest read and readahead the kernel is told to send (1 MiB: a block per request).
    static let maxTransfer: UInt32 = 1 << 20

    public init(fileSystem: GOESFileSystem, ownership: Ownership = Ownership(), logger: Logger) {
        self.fileSystem = fileSystem
        self.ownership = ownership
        self.logger = logger
        failures = RateLimitedWarnings(logger: logger, intervalSeconds: 10)
    }

    static func from(_ req: fuse_req_t?) -> FUSEBridge {
        Unmanaged<FUSEBridge>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    // MARK: Attributes

    func stat(for attributes: NodeAttributes, inode: UInt64) -> stat {
        var st = Glibc.stat()
        st.st_ino = UInt(inode)
        st.st_uid = ownership.uid
        st.st_gid = ownership.gid
        switch attributes.kind {
        case .directory:
            st.st_mode = S_IFDIR | ownership.directoryMode
            // 1 means "not counted": 2 would tell find/File::Find a folder has no subfolders.
            st.st_nlink = 1
        case .file, .virtualFile:
            st.st_mode = S_IFREG | ownership.fileMode
            st.st_nlink = 1
        case .symlink:
            st.st_mode = S_IFLNK | 0o777
            st.st_nlink = 1
        }
        st.st_size = off_t(attributes.size)
        st.st_blocks = blkcnt_t((attributes.size + 511) / 512)
        st.st_blksize = blksize_t(FUSEBridge.maxTransfer)
        let seconds = attributes.modified.rounded(.down)
        let time = timespec(tv_sec: Int(seconds), tv_nsec: Int((attributes.modified - seconds) * 1e9))
        st.st_mtim = time
        st.st_ctim = time
        st.st_atim = time
        return st
    }

    func replyEntry(_ req: fuse_req_t?, path: [String], attributes: NodeAttributes) {
        let inode = inodes.reference(path)
        var entry = fuse_entry_param()
        entry.ino = inode
        entry.attr = stat(for: attributes, inode: inode)
        entry.attr_timeout = attributes.validSeconds
        entry.entry_timeout = attributes.validSeconds
        if fuse_reply_entry(req, &entry) != 0 {
            // The request was interrupted: the kernel never got this reference.
            inodes.forget(inode, count: 1)
        }
    }

    /// Runs `body` with the path of `inode`; an unknown inode, or whatever `body` throws, becomes
    /// the error reply. Every path-based operation goes through here.
    func withPath(_ req: fuse_req_t?, _ inode: UInt64, _ body: ([String]) throws -> Void) {
        guard let path = inodes.path(of: inode) else { return replyError(req, FSError.notFound) }
        do {
            try body(path)
        } catch {
            replyError(req, error)
        }
    }

    func replyError(_ req: fuse_req_t?, _ error: any Error) {
        // Everything the core throws is an FSError; anything else is a bug, reported as EIO.
        guard let known = error as? FSError else {
            logger.error("unexpected error, answered EIO: \(error)")
            fuse_reply_err(req, EIO)
            return
        }
        logFailure(known, operation: "request")
        fuse_reply_err(req, known.errno)
    }

    /// Every EIO (and ETIMEDOUT, ESTALE, EACCES) a reader gets is in the log with its reason; a
    /// reader retrying in a loop does not flood it.
    func logFailure(_ error: FSError, operation: String) {
        guard let reason = error.failureReason else { return }
        failures.warning("\(operation) answered \(String(cString: strerror(error.errno))): \(reason)", key: reason)
    }
}

/// Who owns everything in the mount and with which permission bits (the `uid`, `gid`, `umask`,
/// `file_mode`, `dir_mode` mount options). Write bits are never shown: the mount is read-only.
public struct Ownership: Sendable {
    public var uid: uid_t
    public var gid: gid_t
    public var fileMode: mode_t
    public var directoryMode: mode_t

    public init(uid: uid_t = getuid(), gid: gid_t = getgid(), fileMode: mode_t = 0o444, directoryMode: mode_t = 0o555) {
        self.uid = uid
        self.gid = gid
        self.fileMode = fileMode & 0o555
        self.directoryMode = directoryMode & 0o555
    }
}

/// A request handle that may be answered from any thread, exactly once (libfuse allows this).
struct PendingRequest: @unchecked Sendable {
    let raw: fuse_req_t?
}
