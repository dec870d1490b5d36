/// A `Content-Range: bytes first-last/total` header, as a server states what it is sending.
///
/// Parsed strictly: a reply is only stored if it says exactly which bytes it carries, and those are
/// the bytes asked for (a 206 that starts elsewhere would otherwise be cached as the wrong range).
public struct ContentRange: Equatable, Sendable {
    /// The bytes sent, `first..<last+1`.
    public let range: Range<Int>
    /// The object's size; nil when the server sent `*`.
    public let total: Int?

    /// Parses the header's value (`bytes 0-1023/4096`); nil for anything malformed or inconsistent.
    public init?(headerValue: some StringProtocol) {
        let text = headerValue.trimmingWhitespace()
        guard text.hasPrefix("bytes ") else { return nil }
        let spec = text.dropFirst("bytes ".count)
        guard let slash = spec.firstIndex(of: "/"), let dash = spec[..<slash].firstIndex(of: "-") else { return nil }
        guard let first = ContentRange.number(spec[..<dash]),
              let last = ContentRange.number(spec[spec.index(after: dash)..<slash]),
              first <= last, last < Int.max else { return nil }
        let totalText = spec[spec.index(after: slash)...]
        if totalText == "*" {
            total = nil
        } else {
            guard let total = ContentRange.number(totalText), last < total else { return nil }
            self.total = total
        }
        range = first..<(last + 1)
    }

    /// Decimal digits only (no sign, no spaces), at most 18 of them: no overflow possible.
    static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 18, text.utf8.allSatisfy({ (48...57).contains($0) }) else { return nil }
        return Int(text)
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> Substring {
        let s = Substring(self)
        guard let start = s.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let end = s.lastIndex(where: { !$0.isWhitespace })!
        return s[start...end]
    }
}
