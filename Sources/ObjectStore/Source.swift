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

    /// `--source` words for the public buckets: `aws`, `gcp`, and `public` (both, AWS first).
    public static func named(_ word: String) -> [Source]? {
        switch word.lowercased() {
        case "aws": return [.aws]
        case "gcp", "google": return [.googleCloud]
        case "public": return publicDefaults
        default: return nil
        }
    }

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

    /// Undoes `encoding-type=url` (form encoding: `+` is a space); nil for a bad escape or bytes
    /// that are not UTF-8.
    static func decode(_ text: String) -> String? {
        guard text.contains("%") || text.contains("+") else { return text }
        var bytes: [UInt8] = []
        var utf8 = text.utf8[...]
        while let byte = utf8.popFirst() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = utf8.popFirst().flatMap(hexValue), let low = utf8.popFirst().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

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
