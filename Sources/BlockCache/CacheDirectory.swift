import CChecksum
import Foundation

/// The cache directory: the one place that knows its layout, and the checks that make it safe.
///
/// ```
/// <dir>/index.sqlite, -wal, -shm    the SQLite index (WAL mode)
/// <dir>/index.sqlite.corrupt-<time> an unreadable index, moved aside
/// <dir>/lock                        flock'd by the mount and by `goesfs cache …`
/// <dir>/objects/<h2>/<h>.data       one sparse file per object; h = SHA-256(bucket NUL key) in hex
/// <dir>/goesfs.log                  the background mount's log unless `--log-file` says otherwise
/// ```
///
/// The directory must be a real directory (not a symbolic link), owned by the user running goesfs
/// and writable by no one else: anyone who can add entries to it could plant a link that makes
/// goesfs write through it. It is opened once; every file below is opened relative to that verified
/// descriptor with `O_NOFOLLOW`, so a link found inside is never followed.
public final class CacheDirectory: Sendable {
    public let path: String
    private let descriptor: Int32

    /// A failure with the errno behind it, so callers can name causes such as a full disk.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public let code: Int32?
        init(_ description: String, code: Int32? = nil) {
            self.description = description
            self.code = code
        }
    }

    static let indexName = "index.sqlite"
    static let indexCompanions = ["-wal", "-shm"]
    static let lockName = "lock"
    static let objectsName = "objects"
    public static let defaultLogName = "goesfs.log"

    /// Opens and checks the directory; with `create`, makes it (mode 0700) if missing. Its parent must exist.
    public init(path: String, create: Bool) throws(Failure) {
        self.path = path
        var created = false
        if create {
            if mkdir(path, 0o700) == 0 { created = true } else if errno != EEXIST {
                throw Failure("cannot create the cache directory \(path): \(CacheDirectory.reason(errno))", code: errno)
            }
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            var st = stat()
            if lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFLNK {
                throw Failure("the cache directory \(path) is a symbolic link; goesfs refuses it (name the real directory)")
            }
            if code == ENOENT { throw Failure("no cache at \(path)", code: code) }
            throw Failure("cannot open the cache directory \(path): \(CacheDirectory.reason(code))", code: code)
        }
        if created { fchmod(fd, 0o700) } // exactly 0700, whatever the umask
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = errno
            close(fd)
            throw Failure("cannot inspect the cache directory \(path): \(CacheDirectory.reason(code))", code: code)
        }
        guard st.st_uid == geteuid() else {
            close(fd)
            throw Failure("the cache directory \(path) belongs to uid \(st.st_uid), not to the user running goesfs (uid \(geteuid())); use a directory of your own")
        }
        guard st.st_mode & 0o022 == 0 else {
            close(fd)
            throw Failure("the cache directory \(path) is writable by others (mode \(String(st.st_mode & 0o7777, radix: 8))); run chmod go-w on it or use another")
        }
        if let unsafe = CacheDirectory.unsafeAncestor(of: path) {
            close(fd)
            throw Failure("the cache directory \(path) lies under \(unsafe), which another user could rename it out of (it is theirs, or writable by others without the sticky bit); use a directory whose parents belong to you or root")
        }
        descriptor = fd
    }

    /// The first folder above `path` that someone else could swap `path` out of: the index is
    /// opened by name (SQLite), so every parent must belong to root or us, and be writable by
    /// others only with the sticky bit (as /tmp is, where only an entry's owner may rename it).
    static func unsafeAncestor(of path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        var folder = (String(cString: resolved) as NSString).deletingLastPathComponent
        while true {
            var st = stat()
            guard lstat(folder, &st) == 0 else { return folder }
            let owned = st.st_uid == 0 || st.st_uid == geteuid()
            let writableByOthers = st.st_mode & 0o022 != 0
            if !owned || (writableByOthers && st.st_mode & S_ISVTX == 0) { return folder }
            if folder == "/" || folder.isEmpty { return nil }
            folder = (folder as NSString).deletingLastPathComponent
        }
    }

    deinit { close(descriptor) }

    // MARK: Names

    /// The folder and file name of an object's data file under `objects/`: a hash of bucket and key,
    /// so no key can escape the cache folder and no two objects share a file.
    public static func dataFileName(bucket: String, key: String) -> (folder: String, file: String) {
        let message = Array(bucket.utf8) + [0] + Array(key.utf8)
        var digest = [UInt8](repeating: 0, count: 32)
        message.withUnsafeBytes { bytes in digest.withUnsafeMutableBufferPointer { goesfs_sha256(bytes.baseAddress, bytes.count, $0.baseAddress) } }
        let hex = digest.map { String(format: "%02x", $0) }.joined()
        return (String(hex.prefix(2)), hex + ".data")
    }

    /// `objects/<h2>/<h>.data`, for messages and tests.
    public static func relativePath(bucket: String, key: String) -> String {
        let name = dataFileName(bucket: bucket, key: key)
        return "\(objectsName)/\(name.folder)/\(name.file)"
    }

    /// The index database's path for SQLite, which opens by name: the path of the directory this
    /// descriptor verified, with no symbolic link in it (`SQLITE_OPEN_NOFOLLOW` refuses any).
    var indexPath: String {
        let resolved = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)"))
            ?? URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        return resolved + "/" + CacheDirectory.indexName
    }

    // MARK: Index files

    /// Refuses index files that are symbolic links (SQLite opens its WAL and shared-memory files by
    /// name, and `SQLITE_OPEN_NOFOLLOW` covers only the database itself), and creates the database
    /// file 0600 before SQLite does (it would use 0644; the WAL and shared memory copy its mode).
    func prepareIndexFiles() throws(Failure) {
        for name in [CacheDirectory.indexName] + CacheDirectory.indexCompanions.map({ CacheDirectory.indexName + $0 }) {
            let create = name == CacheDirectory.indexName ? O_CREAT : 0
            let fd = openat(descriptor, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | create, 0o600)
            if fd < 0 && errno == ENOENT { continue }
            guard fd >= 0 else {
                if errno == ELOOP { throw Failure("\(path)/\(name) is a symbolic link; goesfs refuses to open it (remove it)") }
                throw Failure("cannot open \(path)/\(name): \(CacheDirectory.reason(errno))", code: errno)
            }
            var st = stat()
            if fstat(fd, &st) == 0 && st.st_mode & 0o077 != 0 { fchmod(fd, 0o600) } // made by an older goesfs
            close(fd)
        }
    }

    /// Moves an unreadable index aside (and drops its WAL and shared memory); returns the new name.
    func moveIndexAside() -> String {
        let aside = CacheDirectory.indexName + ".corrupt-\(Int(Date().timeIntervalSince1970))"
        renameat(descriptor, CacheDirectory.indexName, descriptor, aside)
        for suffix in CacheDirectory.indexCompanions { unlinkat(descriptor, CacheDirectory.indexName + suffix, 0) }
        return path + "/" + aside
    }

    /// Removes the index and its companions (`goesfs cache clear`).
    func removeIndex() {
        for name in [CacheDirectory.indexName] + CacheDirectory.indexCompanions.map({ CacheDirectory.indexName + $0 }) {
            unlinkat(descriptor, name, 0)
        }
    }

    // MARK: Lock

    /// The lock file's descriptor, created 0600 if missing.
    func openLockFile() throws(Failure) -> Int32 {
        let fd = openat(descriptor, CacheDirectory.lockName, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Failure("\(path)/\(CacheDirectory.lockName): \(CacheDirectory.reason(errno))", code: errno)
        }
        return fd
    }

    // MARK: Data files

    /// The object's data file, created (0600) if missing. A link, a hard-linked file or anything
    /// else found in its place is removed, never followed or written through.
    public func openDataFile(bucket: String, key: String) throws(Failure) -> DataFile {
        let fd = try openDataFileDescriptor(bucket: bucket, key: key)
        var st = stat()
        fstat(fd, &st)
        let identity = (st.st_dev, st.st_ino)
        return DataFile(descriptor: fd, path: path + "/" + CacheDirectory.relativePath(bucket: bucket, key: key)) { [self] () throws(Failure) in
            try reopenDataFile(bucket: bucket, key: key, identity: identity)
        }
    }

    /// The same data file again (its descriptor was closed while idle): never a new one. If it was
    /// removed or replaced meanwhile, the blocks this file held are not in the file now at that name.
    private func reopenDataFile(bucket: String, key: String, identity: (dev_t, ino_t)) throws(Failure) -> Int32 {
        let name = CacheDirectory.dataFileName(bucket: bucket, key: key)
        guard let folder = objectsSubfolder(name.folder) else { throw Failure("the cache folder of \(key) is gone", code: ENOENT) }
        defer { close(folder) }
        let fd = openat(folder, name.file, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Failure("cannot reopen the cache file of \(key): \(CacheDirectory.reason(errno))", code: errno) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_dev == identity.0, st.st_ino == identity.1, CacheDirectory.isPlainFile(fd) else {
            close(fd)
            throw Failure("the cache file of \(key) was replaced while it was open", code: ESTALE)
        }
        return fd
    }

    private func openDataFileDescriptor(bucket: String, key: String) throws(Failure) -> Int32 {
        let name = CacheDirectory.dataFileName(bucket: bucket, key: key)
        let objects = try subfolder(descriptor, CacheDirectory.objectsName)
        defer { close(objects) }
        let folder = try subfolder(objects, name.folder)
        defer { close(folder) }
        let relative = "\(CacheDirectory.objectsName)/\(name.folder)/\(name.file)"
        var fd = openat(folder, name.file, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd >= 0 && !CacheDirectory.isPlainFile(fd) { close(fd); fd = -1; errno = ELOOP }
        if fd < 0 && (errno == ELOOP || errno == EISDIR || errno == ENXIO) {
            // Not a file of ours: take it away and start an empty one (its blocks fail verification).
            unlinkat(folder, name.file, 0)
            fd = openat(folder, name.file, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else {
            throw Failure("cannot open the cache file \(path)/\(relative): \(CacheDirectory.reason(errno))", code: errno)
        }
        return fd
    }

    /// The object's data file if it exists as a plain file (for `cache verify`); never creates one.
    func existingDataFile(bucket: String, key: String) -> DataFile? {
        let name = CacheDirectory.dataFileName(bucket: bucket, key: key)
        guard let folder = objectsSubfolder(name.folder) else { return nil }
        defer { close(folder) }
        let fd = openat(folder, name.file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        guard CacheDirectory.isPlainFile(fd) else { close(fd); return nil }
        // Offline and read-only: one descriptor, never closed early (so no reopening needed).
        return DataFile(descriptor: fd, path: path + "/" + CacheDirectory.relativePath(bucket: bucket, key: key),
                        pool: DataFileDescriptors(limit: Int.max)) { throw Failure("unexpected reopen") }
    }

    /// Deletes an object's data file (eviction).
    public func removeDataFile(bucket: String, key: String) {
        let name = CacheDirectory.dataFileName(bucket: bucket, key: key)
        removeEntry(folder: name.folder, name: name.file)
    }

    /// One entry below `objects/<folder>/`.
    struct Entry: Hashable { let folder: String, name: String }

    /// Every entry in the `objects/` subfolders, and whether it is a plain file (links are not).
    func dataFileEntries() -> [(entry: Entry, isPlainFile: Bool, diskBytes: Int)] {
        var found: [(Entry, Bool, Int)] = []
        for folder in CacheDirectory.names(in: descriptor, CacheDirectory.objectsName) {
            guard let parent = objectsSubfolder(folder) else { continue }
            defer { close(parent) }
            for name in CacheDirectory.names(in: parent, ".") {
                var st = stat()
                guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                let plain = st.st_mode & S_IFMT == S_IFREG
                found.append((Entry(folder: folder, name: name), plain, plain ? Int(st.st_blocks) * 512 : 0))
            }
        }
        return found
    }

    static func entry(bucket: String, key: String) -> Entry {
        let name = dataFileName(bucket: bucket, key: key)
        return Entry(folder: name.folder, name: name.file)
    }

    func removeEntry(folder: String, name: String) {
        guard let parent = objectsSubfolder(folder) else { return }
        unlinkat(parent, name, 0)
        close(parent)
    }

    /// Deletes `objects/` and everything below it, without following any link.
    func removeAllDataFiles() {
        CacheDirectory.removeTree(in: descriptor, CacheDirectory.objectsName)
    }

    // MARK: Helpers

    /// `objects/<folder>` opened one component at a time, neither followed if it is a link.
    private func objectsSubfolder(_ folder: String) -> Int32? {
        let objects = openat(descriptor, CacheDirectory.objectsName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard objects >= 0 else { return nil }
        defer { close(objects) }
        let fd = openat(objects, folder, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        return fd >= 0 ? fd : nil
    }

    /// Opens (creating 0700 if missing) a subfolder; something else in its place is removed first.
    private func subfolder(_ parent: Int32, _ name: String) throws(Failure) -> Int32 {
        for attempt in 0..<2 {
            if mkdirat(parent, name, 0o700) != 0 && errno != EEXIST { break }
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 { return fd }
            guard attempt == 0, errno == ELOOP || errno == ENOTDIR else { break }
            unlinkat(parent, name, 0) // a link or a file where a folder belongs
        }
        throw Failure("cannot open the cache folder \(path)/…/\(name): \(CacheDirectory.reason(errno))", code: errno)
    }

    /// A regular file with one name (a hard link to someone else's file has two), owned by us.
    private static func isPlainFile(_ fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFREG && st.st_nlink == 1 && st.st_uid == geteuid()
    }

    /// Names in a folder (relative to `parent`), without `.` and `..`; none if it cannot be opened.
    private static func names(in parent: Int32, _ name: String) -> [String] {
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        guard let dir = fdopendir(fd) else { close(fd); return [] }
        defer { closedir(dir) }
        var result: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { result.append(name) }
        }
        return result
    }

    private static func removeTree(in parent: Int32, _ name: String) {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 {
                for child in names(in: fd, ".") { removeTree(in: fd, child) }
                close(fd)
            }
            unlinkat(parent, name, AT_REMOVEDIR)
        } else {
            unlinkat(parent, name, 0)
        }
    }

    static func reason(_ code: Int32) -> String {
        code == ENOSPC ? "the cache disk is full (ENOSPC)" : String(cString: strerror(code))
    }
}
