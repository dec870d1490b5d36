/// Where an object lives in a bucket: `<Product+sector>/<YYYY>/<DDD>/<HH>/<FileName>`.
public struct ObjectKey: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// The last path component, the file name.
    public var fileName: Substring {
        rawValue.split(separator: "/", omittingEmptySubsequences: false).last ?? Substring(rawValue)
    }

    /// The parsed GOES name, when the file name is one.
    public var objectName: ObjectName? { ObjectName(fileName: String(fileName)) }

    public var description: String { rawValue }
}

/// The hour a listing prefix such as `ABI-L1b-RadC/2023/066/14/` covers, if it is an hour folder.
///
/// Hour folders are what the cache keeps forever once the hour is over; levels above them change.
public struct HourPrefix: Hashable, Sendable {
    public let product: String
    public let year: Int
    public let dayOfYear: Int
    public let hour: Int

    public init?(prefix: String) {
        let parts = prefix.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count == 4, parts[1].count == 4, parts[2].count == 3, parts[3].count == 2,
              let y = Int(parts[1]), let d = Int(parts[2]), let h = Int(parts[3]),
              ScanTime(year: y, dayOfYear: d, hour: h, minute: 0, second: 0) != nil else { return nil }
        product = String(parts[0]); year = y; dayOfYear = d; hour = h
    }

    /// Seconds since the epoch at which the hour ends.
    public var endSecondsSinceEpoch: Double {
        ScanTime(year: year, dayOfYear: dayOfYear, hour: hour, minute: 0, second: 0)!.secondsSinceEpoch + 3600
    }
}
