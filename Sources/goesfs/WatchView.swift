import Foundation

/// The parts of `.stats.json` the live view shows.
struct WatchReport: Decodable {
    struct File: Decodable {
        let key: String, bytesDone: Int, bytesTotal: Int, speed: Double?, etaSeconds: Double?, etaOf: String, etaBytes: Int, driver: String
    }
    struct Total: Decodable { let files: Int, bytesDone: Int, bytesTotal: Int, speed: Double?, etaSeconds: Double?, requests: Int }
    struct Performance: Decodable { let totalAttempts: Int, successful: Int, failed: Int, retries: Int }
    struct Listings: Decodable { let requests: Int, failed: Int }
    struct Cache: Decodable { let bytesFetched: Int, bytesSaved: Int }
    let performance: Performance
    let listings: Listings
    let cache: Cache
    let inProgress: [File]
    let inProgressTotal: Total
}

/// Renders the live view: a bar per file being fetched and a total bar.
enum WatchView {
    static func lines(_ r: WatchReport, width: Int) -> [String] {
        let p = r.performance
        var lines = ["goesfs: \(p.totalAttempts) data requests (\(p.successful) ok, \(p.failed) failed, \(p.retries) retries), "
                     + "\(r.listings.requests) listings, \(human(r.cache.bytesFetched)) fetched, \(human(r.cache.bytesSaved)) saved by the cache"]
        if r.inProgress.isEmpty {
            lines.append("no downloads in progress")
            return lines
        }
        for f in r.inProgress {
            let name = String(f.key.split(separator: "/").last ?? Substring(f.key))
            let of = f.etaOf == "rest_of_file" ? "rest of file" : "\(human(f.etaBytes)) asked"
            lines.append(bar(label: name, done: f.bytesDone, total: f.bytesTotal, speed: f.speed, eta: f.etaSeconds,
                             note: "\(of), \(f.driver)", width: width))
        }
        let t = r.inProgressTotal
        let label = "total (\(t.files == 1 ? "1 file" : "\(t.files) files"), \(t.requests) req)"
        lines.append(bar(label: label, done: t.bytesDone, total: t.bytesTotal, speed: t.speed, eta: t.etaSeconds, note: "", width: width))
        return lines
    }

    /// `name [####----]  42%  2.95 MB/s ETA 5s  rest of file, reader`: the note says what the ETA is of.
    static func bar(label: String, done: Int, total: Int, speed: Double?, eta: Double?, note: String, width: Int) -> String {
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 0
        let tail = String(format: " %3.0f%% ", fraction * 100)
            + (speed.map { String(format: "%6.2f MB/s", $0 / 1e6) } ?? "estimating…")
            + (eta.map { String(format: " ETA %.0fs", $0) } ?? " ETA …")
        let labelWidth = min(36, max(10, width / 4))
        let shortLabel = label.count > labelWidth ? "…" + label.suffix(labelWidth - 1) : label.padding(toLength: labelWidth, withPad: " ", startingAt: 0)
        let tailWidth = 27 // fixed, so every bar has the same length
        let noteWidth = 30
        let barWidth = max(10, width - labelWidth - tailWidth - noteWidth - 4)
        let filled = Int(fraction * Double(barWidth))
        let shortNote = note.count > noteWidth ? String(note.prefix(noteWidth)) : note
        return shortLabel + " [" + String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled) + "]"
            + tail.padding(toLength: max(tail.count, tailWidth), withPad: " ", startingAt: 0) + " " + shortNote
    }

    static func human(_ bytes: Int) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var value = Double(bytes), unit = 0
        while value >= 1000 && unit < units.count - 1 { value /= 1000; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f ", value) + units[unit]
    }
}
