import Foundation

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

extension ScanTime {
    /// Day of year for a calendar date, or nil if the date does not exist.
    public static func dayOfYear(year: Int, month: Int, day: Int) -> Int? {
        let lengths = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), (1...lengths[month - 1]).contains(day) else { return nil }
        return lengths[0..<(month - 1)].reduce(0, +) + day
    }

    /// The UTC instant `seconds` after the epoch (tenths kept, finer parts dropped).
    public init?(secondsSinceEpoch seconds: Double) {
        // Before the year 10000 (so within ScanTime's range, and Int(seconds) cannot trap).
        guard seconds.isFinite, seconds >= 0, seconds < 253_402_300_800 else { return nil }
        var remaining = Int(seconds)
        let tenths = Int((seconds - Double(remaining)) * 10)
        var year = 1970
        while remaining >= ScanTime.daysInYear(year) * 86400 {
            remaining -= ScanTime.daysInYear(year) * 86400
            year += 1
        }
        self.init(year: year, dayOfYear: remaining / 86400 + 1, hour: remaining % 86400 / 3600,
                  minute: remaining % 3600 / 60, second: remaining % 60, tenths: tenths)
    }

    /// `YYYY-MM-DD`, the friendly view's day folder.
    public var calendarDate: String {
        let (m, d) = monthAndDay
        return String(format: "%04d-%02d-%02d", year, m, d)
    }
}

/// A calendar day as the friendly view names it, `2023-03-07`.
public struct CalendarDay: Hashable, Comparable, Sendable {
    public let year: Int
    public let dayOfYear: Int

    public init?(year: Int, dayOfYear: Int) {
        guard ScanTime(year: year, dayOfYear: dayOfYear, hour: 0, minute: 0, second: 0) != nil else { return nil }
        self.year = year
        self.dayOfYear = dayOfYear
    }

    public init?(_ text: String) {
        // Exactly YYYY-MM-DD: `-2023-03-07` or `2023--03-07` are not days.
        guard text.utf8.count == 10, text.utf8.enumerated().allSatisfy({ i, c in
            i == 4 || i == 7 ? c == UInt8(ascii: "-") : (48...57).contains(c)
        }) else { return nil }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
              let doy = ScanTime.dayOfYear(year: y, month: m, day: d) else { return nil }
        self.init(year: y, dayOfYear: doy)
    }

    public var name: String { ScanTime(year: year, dayOfYear: dayOfYear, hour: 0, minute: 0, second: 0)!.calendarDate }
    /// The bucket's folders for this day: `2023/066`.
    public var keyPath: String { String(format: "%04d/%03d", year, dayOfYear) }

    public static func < (a: CalendarDay, b: CalendarDay) -> Bool { (a.year, a.dayOfYear) < (b.year, b.dayOfYear) }
}
