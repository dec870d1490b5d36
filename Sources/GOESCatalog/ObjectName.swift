import Foundation
/// The parts of a GOES-R file name such as
/// `OR_ABI-L1b-RadC-M6C13_G16_s20230661431174_e20230661433547_c20230661434018.nc`.
///
/// Names that do not follow the pattern are not errors: they are plain files with no GOES meaning,
/// so `init?(fileName:)` simply returns nil for them.
public struct ObjectName: Hashable, Sendable {
    public let fileName: String
    /// Sensor, level and product, e.g. `ABI-L1b-Rad`, `ABI-L2-CMIP`, `GLM-L2-LCFA`.
    public let product: String
    /// `F`, `C`, `M1`, `M2`, or nil for products without a sector (GLM).
    public let sector: String?
    /// Scan mode, e.g. 6 for `M6`; nil when absent.
    public let scanMode: Int?
    /// ABI channel 1–16; nil for products without a band (MCMIP, GLM, most L2).
    public let band: Int?
    public let platformID: String
    public let start: ScanTime
    public let end: ScanTime
    public let created: ScanTime

    public init?(fileName: String) {
        guard fileName.hasSuffix(".nc") else { return nil }
        let stem = fileName.dropLast(3)
        let fields = stem.split(separator: "_", omittingEmptySubsequences: false)
        guard fields.count == 6, fields[0].count == 2,
              fields[3].first == "s", fields[4].first == "e", fields[5].first == "c",
              let start = ScanTime(stamp: fields[3].dropFirst()),
              let end = ScanTime(stamp: fields[4].dropFirst()),
              let created = ScanTime(stamp: fields[5].dropFirst()),
              let platform = fields[2].first, platform == "G", fields[2].count == 3
        else { return nil }
        guard let parsed = ObjectName.parseProductField(fields[1]) else { return nil }
        self.fileName = fileName
        self.product = parsed.product
        self.sector = parsed.sector
        self.scanMode = parsed.mode
        self.band = parsed.band
        self.platformID = String(fields[2])
        self.start = start
        self.end = end
        self.created = created
    }

    /// The satellite named by the platform field (`G16` → GOES-16).
    public var satellite: Satellite? { Satellite(parsing: platformID) }

    /// Splits `ABI-L1b-RadC-M6C13` into product `ABI-L1b-Rad`, sector `C`, mode 6, band 13.
    /// GLM names carry neither sector nor mode: `GLM-L2-LCFA`.
    static func parseProductField(_ field: Substring) -> (product: String, sector: String?, mode: Int?, band: Int?)? {
        var parts = field.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        var mode: Int?
        var band: Int?
        if let last = parts.last, last.count >= 2, last.first == "M", last.dropFirst().first?.isNumber == true {
            // `M6`, `M6C13`, `M3C02`
            let body = last.dropFirst()
            let modeDigits = body.prefix { $0.isNumber }
            mode = Int(modeDigits)
            let rest = body.dropFirst(modeDigits.count)
            if !rest.isEmpty {
                guard rest.first == "C", let b = Int(rest.dropFirst()), (1...16).contains(b), rest.count == 3 else { return nil }
                band = b
            }
            parts.removeLast()
        }
        guard parts.count >= 3 else { return nil }
        var productName = parts.joined(separator: "-")
        var sector: String?
        if mode != nil {
            // The sector is glued to the product name's end: RadF, RadC, RadM1, CMIPM2, MCMIPF.
            for candidate in ["M1", "M2", "F", "C", "M"] where productName.hasSuffix(candidate) && productName.count > candidate.count + 4 {
                sector = candidate
                productName.removeLast(candidate.count)
                break
            }
            guard sector != nil else { return nil }
        }
        return (productName, sector, mode, band)
    }
}

extension ObjectName {
    /// The scan's slot in its series: `HHMM.nc`, or `HHMMSS.nc` where scans come several a minute
    /// (Meso sectors, GLM). Two objects in one slot are one scan reprocessed: the latest creation
    /// is the one shown (friendly view) and the only one worth fetching (scan prefetch).
    public var slotName: String {
        let seconds = sector?.hasPrefix("M") == true || product.hasPrefix("GLM")
        return seconds ? String(format: "%02d%02d%02d.nc", start.hour, start.minute, start.second)
                       : String(format: "%02d%02d.nc", start.hour, start.minute)
    }
}
