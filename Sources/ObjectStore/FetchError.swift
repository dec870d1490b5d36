/// Why a request to a source failed, in the categories users see in `.stats`.
public enum ErrorCategory: String, Sendable, CaseIterable, Codable {
    case auth, timeout, notFound = "not_found", network, server
    /// The object is no longer the one listed (its ETag changed): a retry would mix two versions.
    case changed

    /// Whether trying the same request again can help.
    public var isRetryable: Bool {
        switch self {
        case .auth, .notFound, .changed: return false
        case .timeout, .network, .server: return true
        }
    }
}

/// A failed request, with a message a person can act on.
public struct FetchError: Error, Sendable, CustomStringConvertible {
    public let category: ErrorCategory
    public let message: String
    /// The HTTP status, when the server answered.
    public let httpStatus: Int?

    public init(category: ErrorCategory, message: String, httpStatus: Int? = nil) {
        self.category = category
        self.message = message
        self.httpStatus = httpStatus
    }

    public var description: String { "\(category.rawValue): \(message)" }

    /// Whether the server asked us to slow down (S3's 503 SlowDown, or 429): back off for seconds.
    public var isThrottling: Bool { httpStatus == 503 || httpStatus == 429 }

    /// Classifies an HTTP answer; `s3Code` is the `<Code>` of an S3 error body, if any.
    public static func http(status: Int, s3Code: String?) -> FetchError {
        let code = s3Code.map { " (\($0))" } ?? ""
        switch status {
        case 401, 403:
            return FetchError(category: .auth, message: "access denied by the server: HTTP \(status)\(code); the bucket may not allow anonymous reads", httpStatus: status)
        case 412:
            return FetchError(category: .changed, message: "the object changed at the source (If-Match failed: HTTP 412\(code))", httpStatus: status)
        case 404:
            return FetchError(category: .notFound, message: "no such object or bucket: HTTP 404\(code)", httpStatus: status)
        case 429, 500...599:
            return FetchError(category: .server, message: "server busy or failing: HTTP \(status)\(code); retrying with backoff", httpStatus: status)
        default:
            return FetchError(category: .server, message: "unexpected HTTP \(status)\(code)", httpStatus: status)
        }
    }
}
