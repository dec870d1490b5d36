import Foundation

/// Sizes as people type them: `500M`, `20G`, `1.5T`, `4096` (binary units: 1K = 1024).
enum ByteSize {
    static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024, "T": 1024 * 1024 * 1024 * 1024]
        var number = Substring(trimmed)
        if number.hasSuffix("IB") { number = number.dropLast(2) } else if number.hasSuffix("B") { number = number.dropLast() }
        var multiplier = 1.0
        if let last = number.last, let unit = units[last] {
            multiplier = unit
            number = number.dropLast()
        }
        guard let value = Double(number), value > 0, value.isFinite else { return nil }
        return Int(value * multiplier)
    }
}
