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

/// The two operational positions, and which satellite held each on a given day.
public enum OrbitSlot: String, CaseIterable, Sendable {
    case east = "goes-east"
    case west = "goes-west"

    /// Oldest first.
    public var satellites: [Satellite] {
        switch self {
        case .east: return [Satellite(number: 16)!, Satellite(number: 19)!]
        case .west: return [Satellite(number: 17)!, Satellite(number: 18)!]
        }
    }

    /// GOES-19 took over East on 2025-04-07 and GOES-18 took over West on 2023-01-04.
    public func satellite(on day: CalendarDay) -> Satellite {
        let handover = self == .east ? CalendarDay("2025-04-07")! : CalendarDay("2023-01-04")!
        return day < handover ? satellites[0] : satellites[1]
    }
}
