import GOESCatalog

/// Bytes served to readers and fetched from the network per satellite and product folder, with
/// bounded cardinality.
///
/// Keys come from servers, so the product is only ever a name shaped like a GOES product folder
/// (`ABI-L1b-RadC`), at most `productLimit` distinct ones; anything else counts under `other`.
public struct ProductTraffic: Sendable {
    public struct Key: Hashable, Sendable, Comparable {
        /// `goes16`, or `other` for a bucket that is not a GOES bucket.
        public let satellite: String
        public let product: String
        public static func < (a: Key, b: Key) -> Bool { (a.satellite, a.product) < (b.satellite, b.product) }
    }
    public struct Bytes: Sendable, Equatable {
        public var fromCache = 0
        public var afterDownload = 0
        /// Received from the network (all attempts, also readahead and prefetch).
        public var fetched = 0
        /// What the cache spared the network: bytes served beyond those fetched (never negative).
        public var saved: Int { max(0, fromCache + afterDownload - fetched) }
    }

    public static let productLimit = 32
    public static let other = "other"
    public private(set) var bytes: [Key: Bytes] = [:]

    public init() {}

    public mutating func record(bucket: String, key: String, bytes count: Int, fromCache: Bool) {
        let slot = self.slot(bucket: bucket, key: key)
        if fromCache { bytes[slot, default: Bytes()].fromCache += count } else { bytes[slot, default: Bytes()].afterDownload += count }
    }

    public mutating func recordFetched(bucket: String, key: String, bytes count: Int) {
        bytes[slot(bucket: bucket, key: key), default: Bytes()].fetched += count
    }

    private func slot(bucket: String, key: String) -> Key {
        let satellite = Satellite(parsing: bucket).map { "goes\($0.number)" } ?? ProductTraffic.other
        let product = ProductTraffic.productName(key)
        let known = bytes[Key(satellite: satellite, product: product)] != nil
            || Set(bytes.keys.map(\.product)).count < ProductTraffic.productLimit
        return Key(satellite: satellite, product: known ? product : ProductTraffic.other)
    }

    public var total: Bytes {
        bytes.values.reduce(into: Bytes()) { t, b in t.fromCache += b.fromCache; t.afterDownload += b.afterDownload; t.fetched += b.fetched }
    }

    /// The key's first folder when it looks like a product (letters, digits and dashes, up to 32), else `other`.
    static func productName(_ key: String) -> String {
        guard let slash = key.firstIndex(of: "/") else { return other }
        let folder = key[..<slash]
        let shaped = !folder.isEmpty && folder.count <= 32
            && folder.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil)) || $0 == "-" }
        return shaped ? String(folder) : other
    }
}
