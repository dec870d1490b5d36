/// One object as a listing describes it.
public struct ListedObject: Hashable, Sendable, Codable {
    public let key: String
    public let size: Int
    public let etag: String
    /// Seconds since the epoch.
    public let lastModified: Double

    public init(key: String, size: Int, etag: String, lastModified: Double) {
        self.key = key; self.size = size; self.etag = etag; self.lastModified = lastModified
    }
}

/// One directory level of a bucket: the sub-prefixes and the objects directly under a prefix.
public struct Listing: Sendable, Codable, Equatable {
    public var commonPrefixes: [String]
    public var objects: [ListedObject]

    public init(commonPrefixes: [String] = [], objects: [ListedObject] = []) {
        self.commonPrefixes = commonPrefixes
        self.objects = objects
    }
}

/// Reads a ListObjectsV2 XML page. Elements are found by name, never by position: servers order them differently.
struct ListingPage {
    var listing = Listing()
    var isTruncated = false
    var continuationToken: String?

    init(xml: String) {
        for block in XMLScan.elements("Contents", in: xml) {
            guard let key = XMLScan.first("Key", in: block) else { continue }
            let size = XMLScan.first("Size", in: block).flatMap { Int($0) } ?? 0
            let etag = XMLScan.first("ETag", in: block) ?? ""
            let modified = XMLScan.first("LastModified", in: block).flatMap(ISO8601.seconds) ?? 0
            listing.objects.append(ListedObject(key: key, size: size, etag: etag, lastModified: modified))
        }
        for block in XMLScan.elements("CommonPrefixes", in: xml) {
            if let prefix = XMLScan.first("Prefix", in: block) { listing.commonPrefixes.append(prefix) }
        }
        // IsTruncated and the token also occur only at the top level of the document.
        isTruncated = XMLScan.first("IsTruncated", in: xml) == "true"
        continuationToken = XMLScan.first("NextContinuationToken", in: xml)
    }
}

/// A minimal scanner for the flat XML that S3 returns: enough for listings and error bodies.
enum XMLScan {
    /// The raw inner text of every `<name>…</name>` element, in document order.
    static func elements(_ name: String, in xml: String) -> [Substring] {
        var result: [Substring] = []
        let open = "<\(name)>", close = "</\(name)>"
        var rest = xml[...]
        while let start = rest.range(of: open) {
            guard let end = rest[start.upperBound...].range(of: close) else { break }
            result.append(rest[start.upperBound..<end.lowerBound])
            rest = rest[end.upperBound...]
        }
        return result
    }

    /// The decoded text of the first `<name>` element.
    static func first(_ name: String, in xml: some StringProtocol) -> String? {
        let open = "<\(name)>", close = "</\(name)>"
        guard let start = xml.range(of: open), let end = xml[start.upperBound...].range(of: close) else { return nil }
        return decodeEntities(xml[start.upperBound..<end.lowerBound])
    }

    static func decodeEntities(_ text: some StringProtocol) -> String {
        guard text.contains("&") else { return String(text) }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else { out += rest[amp...]; return out }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let scalar: UInt32? = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16)
                    : entity.hasPrefix("#") ? UInt32(entity.dropFirst()) : nil
                if let scalar, let u = Unicode.Scalar(scalar) { out.unicodeScalars.append(u) } else { out += rest[amp...semi] }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }
}

/// Parses the timestamps S3 uses in listings: `2023-03-07T14:31:17.000Z`.
enum ISO8601 {
    static func seconds(_ text: String) -> Double? {
        let digits = text.split(whereSeparator: { "-T:.Z".contains($0) })
        guard digits.count >= 6, let y = Int(digits[0]), let mo = Int(digits[1]), let d = Int(digits[2]),
              let h = Int(digits[3]), let mi = Int(digits[4]), let s = Int(digits[5]), (1...12).contains(mo) else { return nil }
        // Days from civil date (Howard Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Double(days * 86400 + h * 3600 + mi * 60 + s)
    }
}
