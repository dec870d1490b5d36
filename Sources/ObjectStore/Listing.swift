import Foundation

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
///
/// What the server says is checked against `ListingRules`: entries that break them are left out
/// (and named in `rejected`), so one bad entry never makes the folder fail.
struct ListingPage {
    var listing = Listing()
    var isTruncated = false
    var continuationToken: String?
    /// Whether the document was whole (ended with its closing tag).
    var isComplete = false
    /// Why entries were left out, one line each.
    var rejected: [String] = []

    init(xml: String, prefix: String = "") {
        // Asked for with `encoding-type=url`: keys and prefixes are percent-encoded, so names that
        // are not UTF-8 arrive intact (and are refused) instead of collapsing into U+FFFD.
        let encoded = XMLScan.first("EncodingType", in: xml) == "url"
        func name(_ raw: String) -> String? { encoded ? URLEncoding.decode(raw) : raw }
        for block in XMLScan.elements("Contents", in: xml) {
            guard let raw = XMLScan.first("Key", in: block) else { rejected.append("an entry without a key"); continue }
            guard let key = name(raw) else { rejected.append("a key that is not UTF-8 (\(ListingRules.printable(raw)))"); continue }
            let sizeText = XMLScan.first("Size", in: block) ?? "0"
            guard let size = ListingRules.size(sizeText) else {
                rejected.append("\(ListingRules.printable(key)): size \(ListingRules.printable(sizeText)) is not 0…5 TiB"); continue
            }
            let etag = XMLScan.first("ETag", in: block) ?? ""
            var modified = 0.0
            if let text = XMLScan.first("LastModified", in: block) {
                guard let seconds = ISO8601.seconds(text) else {
                    rejected.append("\(ListingRules.printable(key)): LastModified \(ListingRules.printable(text)) is not a date"); continue
                }
                modified = seconds
            }
            if let problem = ListingRules.problem(key: key, under: prefix) {
                rejected.append("\(ListingRules.printable(key)): \(problem)"); continue
            }
            listing.objects.append(ListedObject(key: key, size: size, etag: etag, lastModified: modified))
        }
        for block in XMLScan.elements("CommonPrefixes", in: xml) {
            guard let raw = XMLScan.first("Prefix", in: block) else { continue }
            guard let folder = name(raw) else { rejected.append("a prefix that is not UTF-8 (\(ListingRules.printable(raw)))"); continue }
            if let problem = ListingRules.problem(commonPrefix: folder, under: prefix) {
                rejected.append("\(ListingRules.printable(folder)): \(problem)"); continue
            }
            listing.commonPrefixes.append(folder)
        }
        // IsTruncated and the token also occur only at the top level of the document.
        isTruncated = XMLScan.first("IsTruncated", in: xml) == "true"
        continuationToken = XMLScan.first("NextContinuationToken", in: xml).flatMap { $0.isEmpty ? nil : $0 }
        isComplete = xml.contains("</ListBucketResult>")
    }
}

/// What a listing entry must be to become a file or folder: checked on every page from a server and
/// on every listing read back from the cache (a listing persisted before a rule existed, or damaged).
public enum ListingRules {
    /// S3's largest object.
    public static let maxObjectSize = 5 << 40
    /// Linux's NAME_MAX.
    public static let maxNameBytes = 255

    /// The size a listing states, if it is a plain number within S3's limits.
    static func size(_ text: String) -> Int? {
        guard !text.isEmpty, text.count <= 16, text.utf8.allSatisfy({ (48...57).contains($0) }),
              let value = Int(text), value <= maxObjectSize else { return nil }
        return value
    }

    /// Why `key` cannot be a file directly under `prefix`, or nil when it can.
    public static func problem(key: String, under prefix: String) -> String? {
        guard key.utf8.starts(with: prefix.utf8) else { return "outside the folder listed" }
        // Bytes, not Characters: a "/" followed by a combining mark is one Character.
        if key.utf8.dropFirst(prefix.utf8.count).contains(UInt8(ascii: "/")) { return "not directly in the folder listed" }
        return problem(path: key)
    }

    /// Why `folder` (ending in `/`) cannot be a subfolder of `prefix`, or nil when it can.
    public static func problem(commonPrefix folder: String, under prefix: String) -> String? {
        let bytes = Array(folder.utf8), slash = UInt8(ascii: "/")
        guard bytes.starts(with: prefix.utf8), bytes.last == slash, bytes.count > prefix.utf8.count + 1 else {
            return "not a subfolder of the folder listed"
        }
        if bytes[prefix.utf8.count..<(bytes.count - 1)].contains(slash) { return "not directly in the folder listed" }
        return problem(path: String(decoding: bytes.dropLast(), as: UTF8.self))
    }

    /// Every component of a path must be a name Linux can show and that cannot climb out of its folder.
    static func problem(path: String) -> String? {
        if path.unicodeScalars.contains("\u{FFFD}") { return "is not valid UTF-8" }
        for component in path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if component.isEmpty { return "has an empty path component" }
            if component.elementsEqual(".".utf8) || component.elementsEqual("..".utf8) { return "has a '.' or '..' path component" }
            if component.count > maxNameBytes { return "has a component over \(maxNameBytes) bytes" }
            if component.contains(0) { return "contains a NUL byte" }
        }
        return nil
    }

    /// Whether an entry read back from the cache still meets the rules (listings persist for a year).
    public static func validated(_ listing: Listing, prefix: String) -> (listing: Listing, rejected: Int) {
        let objects = listing.objects.filter { o in
            (0...maxObjectSize).contains(o.size) && o.lastModified.isFinite && abs(o.lastModified) <= ISO8601.latest
                && problem(key: o.key, under: prefix) == nil
        }
        let prefixes = listing.commonPrefixes.filter { problem(commonPrefix: $0, under: prefix) == nil }
        let rejected = listing.objects.count - objects.count + listing.commonPrefixes.count - prefixes.count
        return (Listing(commonPrefixes: prefixes, objects: objects), rejected)
    }

    /// A server's text made safe to log: control characters escaped, length bounded.
    public static func printable(_ text: some StringProtocol) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(300) {
            if scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) {
                out += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return text.unicodeScalars.count > 300 ? out + "…" : out
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
    /// 9999-12-31T23:59:60Z, the latest instant `seconds` returns.
    static let latest = 253_402_300_800.0

    static func daysIn(month: Int, year: Int) -> Int {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    }

    /// Seconds since the epoch; nil unless every field is in range (years 1…9999, so no arithmetic overflows).
    static func seconds(_ text: String) -> Double? {
        let digits = text.split(whereSeparator: { "-T:.Z".contains($0) })
        guard digits.count >= 6, digits[0].count <= 4, digits.prefix(6).allSatisfy({ $0.count <= 4 }),
              let y = Int(digits[0]), let mo = Int(digits[1]), let d = Int(digits[2]),
              let h = Int(digits[3]), let mi = Int(digits[4]), let s = Int(digits[5]),
              (1...9999).contains(y), (1...12).contains(mo), (1...ISO8601.daysIn(month: mo, year: y)).contains(d),
              (0...23).contains(h), (0...59).contains(mi), (0...60).contains(s) else { return nil }
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
