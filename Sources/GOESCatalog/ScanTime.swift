/// A UTC instant as GOES file names write it: year, day of year, hour, minute, second and tenths.
///
/// Kept as integers (no Foundation calendar) so parsing and comparing cost nothing and never
/// depend on the machine's time zone.
public struct ScanTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let year: Int
    public let dayOfYear: Int
    public let hour: Int
    public let minute: Int
    public let second: Int
    public let tenths: Int

    public init?(year: Int, dayOfYear: Int, hour: Int, minute: Int, second: Int, tenths: Int = 0) {
        guard (1970...9999).contains(year),
              (1...ScanTime.daysInYear(year)).contains(dayOfYear),
              (0...23).contains(hour), (0...59).contains(minute),
              (0...60).contains(second), (0...9).contains(tenths) else { return nil }
        self.year = year; self.dayOfYear = dayOfYear; self.hour = hour
        self.minute = minute; self.second = second; self.tenths = tenths
    }

    /// Parses the 14-digit stamp of a file name (`YYYYDDDHHMMSSt`, as in `s20230661431174`).
    public init?(stamp: Substring) {
        guard stamp.count == 14, stamp.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        let d = stamp.map { Int($0.asciiValue! - 48) }
        func n(_ from: Int, _ count: Int) -> Int { d[from..<(from + count)].reduce(0) { $0 * 10 + $1 } }
        self.init(year: n(0, 4), dayOfYear: n(4, 3), hour: n(7, 2), minute: n(9, 2), second: n(11, 2), tenths: n(13, 1))
    }

    public static func isLeap(_ year: Int) -> Bool { (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }
    public static func daysInYear(_ year: Int) -> Int { isLeap(year) ? 366 : 365 }

    /// Seconds since the Unix epoch, with the tenths as a fraction.
    public var secondsSinceEpoch: Double {
        var days = 0
        for y in 1970..<year { days += ScanTime.daysInYear(y) }
        days += dayOfYear - 1
        let whole = ((days * 24 + hour) * 60 + minute) * 60 + second
        return Double(whole) + Double(tenths) / 10
    }

    /// Calendar month and day for the day of year.
    public var monthAndDay: (month: Int, day: Int) {
        var remaining = dayOfYear
        let lengths = [31, ScanTime.isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        for (index, length) in lengths.enumerated() {
            if remaining <= length { return (index + 1, remaining) }
            remaining -= length
        }
        return (12, 31)
    }

    public static func < (a: ScanTime, b: ScanTime) -> Bool {
        (a.year, a.dayOfYear, a.hour, a.minute, a.second * 10 + a.tenths)
            < (b.year, b.dayOfYear, b.hour, b.minute, b.second * 10 + b.tenths)
    }

    /// ISO 8601 with tenths, e.g. `2023-03-07T14:31:17.4Z`.
    public var description: String {
        let (m, d) = monthAndDay
        func p(_ v: Int, _ w: Int) -> String { String(repeating: "0", count: max(0, w - String(v).count)) + String(v) }
        return "\(p(year, 4))-\(p(m, 2))-\(p(d, 2))T\(p(hour, 2)):\(p(minute, 2)):\(p(second, 2)).\(tenths)Z"
    }
}
