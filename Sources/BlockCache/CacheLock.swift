import Foundation

/// An exclusive lock on a cache directory, held by the mount for its whole life.
///
/// Two daemons writing one index and one set of data files would corrupt both; `flock` is released
/// by the kernel when the holder dies, so a crash never leaves a stale lock behind.
public final class CacheLock: Sendable {
    private let descriptor: Int32

    public enum Failure: Error, CustomStringConvertible {
        case held(String)
        case cannotOpen(String)
        public var description: String {
            switch self {
            case .held(let dir): return "the cache directory \(dir) is in use by another goesfs (a mount, or a cache command)"
            case .cannotOpen(let why): return "cannot lock the cache directory: \(why)"
            }
        }
    }

    /// Takes the lock, waiting up to `waitSeconds` for a holder to let go (a daemon that was just
    /// unmounted may still be closing its index).
    public init(directory: CacheDirectory, waitSeconds: Double = 0) throws(Failure) {
        let fd: Int32
        do { fd = try directory.openLockFile() } catch { throw .cannotOpen(error.description) }
        let deadline = Date().addingTimeInterval(waitSeconds)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard Date() < deadline else {
                close(fd)
                throw .held(directory.path)
            }
            usleep(50_000)
        }
        descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
