import Foundation
import ObjectStore

/// Every way a filesystem operation can fail, and the one table that maps each to an errno.
public enum FSError: Error, Sendable, Equatable {
    case notFound
    case readOnly
    case notDirectory
    case isDirectory
    case accessDenied(String)
    case timedOut(String)
    case io(String)
    /// The object changed at the source while being read: its cached blocks were dropped.
    case stale(String)
    case invalidArgument(String)

    public var errno: Int32 {
        switch self {
        case .notFound: return ENOENT
        case .readOnly: return EROFS
        case .notDirectory: return ENOTDIR
        case .isDirectory: return EISDIR
        case .accessDenied: return EACCES
        case .timedOut: return ETIMEDOUT
        case .io: return EIO
        case .stale: return ESTALE
        case .invalidArgument: return EINVAL
        }
    }

    /// What went wrong, for the log; nil for answers that are no failure of ours (ENOENT, EROFS…).
    public var failureReason: String? {
        switch self {
        case .notFound, .readOnly, .notDirectory, .isDirectory: return nil
        case .accessDenied(let m), .timedOut(let m), .io(let m), .stale(let m), .invalidArgument(let m): return m
        }
    }

    /// How a failed request surfaces to a reader: never EAGAIN, always a final answer.
    public init(_ error: FetchError) {
        switch error.category {
        case .notFound: self = .notFound
        case .auth: self = .accessDenied(error.message)
        case .timeout: self = .timedOut(error.message)
        case .network, .server: self = .io(error.message)
        case .changed: self = .stale(error.message)
        }
    }
}
