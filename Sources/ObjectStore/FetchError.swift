/// Why a request to a source failed, in the categories users see in `.stats`.
public enum ErrorCategory: String, Sendable, CaseIterable, Codable {
    case auth, timeout, notFound = "not_found", network, server

    /// Whether trying the same request again can help.
    public var isRetryable: Bool {
        switch self {
        case .auth, .notFound: return false
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

    /// Classifies an HTTP answer; `s3Code` is the `<Code>` of an S3 error body, if any.
    public static func http(status: Int, s3Code: String?) -> FetchError {
        let code = s3Code.map { " (\($0))" } ?? ""
        switch status {
        case 401, 403:
            return FetchError(category: .auth, message: "access denied by the server: HTTP \(status)\(code); the bucket may not allow anonymous reads", httpStatus: status)
        case 404:
            return FetchError(category: .notFound, message: "no such object or bucket: HTTP 404\(code)", httpStatus: status)
        case 429, 500...599:
            return FetchError(category: .server, message: "server busy or failing: HTTP \(status)\(code); retrying with backoff", httpStatus: status)
        default:
            return FetchError(category: .server, message: "unexpected HTTP \(status)\(code)", httpStatus: status)
        }
    }
}
