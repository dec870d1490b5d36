/// A name asked for in a friendly-view `at/` folder: `2023-03-07T14:23Z.nc`, `…T14:23:10Z.nc`,
/// optionally with a tolerance, `…Z~10m.nc`, `~90s`, `~2h` (one hour when not given).
///
/// Anyone on the machine can ask for any name, so parsing is total (never traps) and the search it
/// implies is bounded: at most `maxTolerance`, so at most `2·24+1` hour listings for one lookup.
public struct NearestRequest: Equatable, Sendable {
    public static let defaultTolerance = 3600.0
    public static let maxTolerance = 24 * 3600.0

    /// Seconds since the epoch.
    public let instant: Double
    public let tolerance: Double
    /// The scan time the name asks for.
    public let time: ScanTime

    public init?(name: String) {
        guard name.hasSuffix(".nc"), name.utf8.count <= 64 else { return nil }
        let stem = name.dropLast(3)
        let parts = stem.split(separator: "~", maxSplits: 1, omittingEmptySubsequences: false)
        // (A leap second at the calendar's very end is a name, but no instant ScanTime can hold.)
        guard let first = parts.first, let instant = NearestRequest.instant(first),
              let time = ScanTime(secondsSinceEpoch: instant) else { return nil }
        var tolerance = NearestRequest.defaultTolerance
        if parts.count == 2 {
            guard let t = NearestRequest.duration(parts[1]), t <= NearestRequest.maxTolerance else { return nil }
            tolerance = t
        }
        self.instant = instant
        self.tolerance = tolerance
        self.time = time
    }

    /// The hours whose scans can lie within the tolerance, in order.
    public var hours: [ScanTime] {
        let span = Int((tolerance / 3600).rounded(.up))
        return (-span...span).compactMap { ScanTime(secondsSinceEpoch: instant + Double($0 * 3600)) }
    }

    /// `YYYY-MM-DDTHH:MM[:SS]Z` → seconds since the epoch.
    static func instant(_ text: Substring) -> Double? {
        guard text.hasSuffix("Z"), let t = text.firstIndex(of: "T"), let day = CalendarDay(String(text[..<t])) else { return nil }
        let clock = text[text.index(after: t)..<text.index(before: text.endIndex)].split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(clock.count), clock.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let h = Int(clock[0]), let m = Int(clock[1]) else { return nil }
        let s = clock.count == 3 ? Int(clock[2]) : 0
        guard let s, let time = ScanTime(year: day.year, dayOfYear: day.dayOfYear, hour: h, minute: m, second: s) else { return nil }
        return time.secondsSinceEpoch
    }

    /// `10m`, `90s`, `2h`, `1.5h` → seconds; plain decimal numbers only (no `inf`, `nan`, exponents).
    static func duration(_ text: Substring) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        guard let unit = text.last.flatMap({ units[$0] }) else { return nil }
        let number = text.dropLast()
        guard !number.isEmpty, number.count <= 12, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              number.filter({ $0 == "." }).count <= 1, let value = Double(number), value.isFinite else { return nil }
        return value * unit
    }
}
