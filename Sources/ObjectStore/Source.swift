/// A server that holds the GOES buckets, and how to address a bucket and key on it.
public struct Source: Sendable, Hashable, CustomStringConvertible {
    public enum Addressing: Sendable, Hashable {
        /// `https://<bucket>.s3.amazonaws.com/<key>`: the public AWS buckets.
        case virtualHosted
        /// `<base>/<bucket>/<key>`: local S3-compatible servers and custom endpoints.
        case pathStyle(base: String)
    }

    public let addressing: Addressing
    /// How this source names the bucket that AWS calls `noaa-goesNN` (mirrors rename them).
    public let bucketPrefix: String?

    public init(addressing: Addressing, bucketPrefix: String? = nil) {
        self.addressing = addressing
        self.bucketPrefix = bucketPrefix
    }

    /// The public NOAA buckets on AWS, read anonymously.
    public static let aws = Source(addressing: .virtualHosted)

    /// Google Cloud's public mirror: same keys, buckets `gcp-public-data-goes-NN`, S3-style XML listings.
    public static let googleCloud = Source(addressing: .pathStyle(base: "https://storage.googleapis.com"),
                                           bucketPrefix: "gcp-public-data-goes-")

    /// What a user gets without `--source`/`--endpoint`: AWS first, Google Cloud as the fallback.
    public static let publicDefaults: [Source] = [.aws, .googleCloud]

    /// A path-style S3-compatible endpoint such as `http://127.0.0.1:9000`.
    public static func endpoint(_ base: String) -> Source {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return Source(addressing: .pathStyle(base: base))
    }

    public func bucketURL(_ bucket: String) -> String {
        var name = bucket
        if let bucketPrefix, bucket.hasPrefix("noaa-goes") { name = bucketPrefix + bucket.dropFirst("noaa-goes".count) }
        switch addressing {
        case .virtualHosted: return "https://\(name).s3.amazonaws.com"
        case .pathStyle(let base): return "\(base)/\(name)"
        }
    }

    public func objectURL(bucket: String, key: String) -> String {
        bucketURL(bucket) + "/" + URLEncoding.path(key)
    }

    /// For logs and reports: credentials in the URL are never shown (see `redacted`).
    public var description: String {
        switch addressing {
        case .virtualHosted: return "https://<bucket>.s3.amazonaws.com"
        case .pathStyle(let base): return bucketPrefix.map { "\(Source.redacted(base))/\($0)NN" } ?? Source.redacted(base)
        }
    }

    /// A URL with its `user:password@` (or `user@`) part shown as `***@`: `http://***@host:9000/x`.
    public static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard let at = authority.lastIndex(of: "@") else { return url }
        return url[..<scheme.upperBound] + "***" + url[at...]
    }
}

/// Percent-encoding as S3 expects it (RFC 3986 unreserved characters pass through).
enum URLEncoding {
    static func path(_ text: String) -> String { encode(text, keep: "/") }
    static func query(_ text: String) -> String { encode(text, keep: "") }

    private static func encode(_ text: String, keep: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if byte < 128 && (c.isLetter || c.isNumber || "-._~".contains(c) || keep.contains(c)) {
                out.append(c)
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
