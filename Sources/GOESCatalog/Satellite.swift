/// One GOES-R series satellite and the public bucket that holds its data.
public struct Satellite: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The satellite number: 16, 17, 18 or 19.
    public let number: Int

    public static let all: [Satellite] = [16, 17, 18, 19].map(Satellite.init(uncheckedNumber:))

    public init?(number: Int) {
        guard (16...19).contains(number) else { return nil }
        self.number = number
    }

    private init(uncheckedNumber: Int) { number = uncheckedNumber }

    /// Accepts `16`, `G16`, `goes16`, `GOES-16` or the bucket name `noaa-goes16`.
    public init?(parsing text: String) {
        var t = Substring(text.lowercased())
        for prefix in ["noaa-goes", "goes-", "goes", "g"] where t.hasPrefix(prefix) {
            t = t.dropFirst(prefix.count)
            break
        }
        guard let n = Int(t) else { return nil }
        self.init(number: n)
    }

    /// The AWS bucket name, also used by the mirrors.
    public var bucket: String { "noaa-goes\(number)" }
    /// The platform tag in file names, e.g. `G16`.
    public var platformID: String { "G\(number)" }
    public var description: String { "GOES-\(number)" }

    public static func < (a: Satellite, b: Satellite) -> Bool { a.number < b.number }
}
