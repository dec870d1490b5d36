import Foundation

/// Sizes as people type them: `500M`, `20G`, `1.5T`, `4096` (binary units: 1K = 1024).
///
/// Plain decimal digits only (no exponents, `inf` or `nan`), positive, and small enough for an
/// `Int` after the unit: anything else is nil, so the caller reports it instead of trapping.
enum ByteSize {
    static let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50]

    static func parse(_ text: String) -> Int? {
        var number = Substring(text.trimmingCharacters(in: .whitespaces).uppercased())
        if number.hasSuffix("IB") { number = number.dropLast(2) } else if number.hasSuffix("B") { number = number.dropLast() }
        var multiplier = 1
        if let last = number.last, let unit = units[last] {
            multiplier = unit
            number = number.dropLast()
        }
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy(\.isASCIIDigit) else { return nil }
        let fraction = parts.count == 2 ? parts[1] : ""
        guard fraction.allSatisfy(\.isASCIIDigit), parts.count == 1 || !fraction.isEmpty else { return nil }
        guard let integer = Int(whole) else { return nil } // more digits than an Int holds
        let scaled = integer.multipliedReportingOverflow(by: multiplier)
        // The fraction adds less than one unit, so only the whole part can overflow.
        let part = fraction.isEmpty ? 0 : Int((Double("0." + fraction) ?? 0) * Double(multiplier))
        let total = scaled.partialValue.addingReportingOverflow(part)
        guard !scaled.overflow, !total.overflow, total.partialValue > 0 else { return nil }
        return total.partialValue
    }
}

extension ByteSize {
    /// `1.5 GiB`, for log lines (binary units, as `--cache-size` reads them).
    static func human(_ bytes: Int) -> String {
        let names = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < names.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, names[unit])
    }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
