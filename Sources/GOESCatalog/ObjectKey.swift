/// Where an object lives in a bucket: `<Product+sector>/<YYYY>/<DDD>/<HH>/<FileName>`.
public struct ObjectKey: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// The last path component, the file name.
    public var fileName: Substring {
        // By bytes: a "/" followed by a combining mark is one Character, and must still split.
        guard let slash = rawValue.utf8.lastIndex(of: UInt8(ascii: "/")) else { return Substring(rawValue) }
        return Substring(rawValue.utf8[rawValue.utf8.index(after: slash)...])
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

/// The folders above the files of a GOES bucket, `<product>/<YYYY>/<DDD>/<HH>/`, as the catalog
/// knows them: a path of this shape is a folder without asking the server (only hour folders need
/// listing), so a cold open costs one LIST and one GET instead of a LIST per level.
public enum FolderLevel: Equatable, Sendable {
    case product, year, dayOfYear, hour

    /// The level `components` (below the bucket) would be, if every component is well formed.
    public init?(components: [String]) {
        guard let product = components.first, FolderLevel.isProductFolder(product), components.count <= 4 else { return nil }
        let digits = components.dropFirst()
        guard digits.allSatisfy({ $0.utf8.allSatisfy { (48...57).contains($0) } }) else { return nil }
        let year = digits.first.flatMap { $0.count == 4 ? Int($0) : nil }
        switch components.count {
        case 1:
            self = .product
        case 2:
            guard let year, (2000...2099).contains(year) else { return nil }
            self = .year
        case 3:
            guard let year, (2000...2099).contains(year), components[2].count == 3, let day = Int(components[2]),
                  ScanTime(year: year, dayOfYear: day, hour: 0, minute: 0, second: 0) != nil else { return nil }
            self = .dayOfYear
        default:
            guard let year, (2000...2099).contains(year), components[2].count == 3, components[3].count == 2,
                  let day = Int(components[2]), let hour = Int(components[3]),
                  ScanTime(year: year, dayOfYear: day, hour: hour, minute: 0, second: 0) != nil else { return nil }
            self = .hour
        }
    }

    /// `ABI-L1b-RadC`, `ABI-L2-CMIPF`, `GLM-L2-LCFA`, `SUVI-L1b-Fe093`: instrument, level, product.
    static func isProductFolder(_ name: String) -> Bool {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, name.utf8.count <= 64,
              ["ABI", "GLM", "SUVI", "EXIS", "MAG", "SEIS"].contains(parts[0]),
              parts[1].hasPrefix("L"), (2...3).contains(parts[1].count),
              !parts[2].isEmpty, parts[2].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else { return false }
        return true
    }
}
