import ArgumentParser
import Foundation

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a mount's download report; --watch shows downloads live.")

    @Argument(help: "The mountpoint.")
    var mountpoint: String

    @Flag(help: "Print .stats.json instead of the text report.")
    var json = false

    @Flag(help: "Redraw a live view with a progress bar per download until interrupted.")
    var watch = false

    @Option(help: "Seconds between redraws with --watch.")
    var interval: Double = 1

    @Option(help: "Stop after this many redraws (default: until interrupted).")
    var count: Int?

    func validate() throws {
        guard interval.isFinite, interval > 0, interval <= 3600 else { throw CLIError("--interval must be more than 0 and at most 3600 seconds, not \(interval)") }
    }

    func run() throws {
        guard watch else {
            print(try read(json ? ".stats.json" : ".stats"), terminator: "")
            return
        }
        let terminal = isatty(STDOUT_FILENO) == 1
        var drawn = 0
        while count.map({ drawn < $0 }) ?? true {
            let data = Data(try read(".stats.json").utf8)
            let report = try JSONDecoder.snakeCase.decode(WatchReport.self, from: data)
            let width = terminal ? terminalWidth() : 80
            let lines = WatchView.lines(report, width: width).map {
                $0.replacingOccurrences(of: " +$", with: "", options: .regularExpression)
            }
            // On a terminal: home, then each line cleared to its end, then the rest of the screen (no flicker).
            let frame = terminal ? "\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\n") + "\n\u{1B}[J"
                                 : lines.joined(separator: "\n") + "\n\n"
            Console.output(frame)
            drawn += 1
            if count.map({ drawn >= $0 }) ?? false { break }
            Thread.sleep(forTimeInterval: interval)
        }
    }

    private func read(_ name: String) throws -> String {
        let path = URL(fileURLWithPath: mountpoint).appendingPathComponent(name).path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CLIError("cannot read \(path): is \(mountpoint) a goesfs mount?")
        }
        return text
    }

    private func terminalWidth() -> Int {
        var size = winsize()
        return ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 20 ? Int(size.ws_col) : 80
    }
}

/// The parts of `.stats.json` the live view shows.
struct WatchReport: Decodable {
    struct Transfer: Decodable { let key: String; let bytesDone: Int; let bytesTotal: Int; let speed: Double?; let etaSeconds: Double? }
    struct Performance: Decodable { let totalAttempts: Int; let successful: Int; let failed: Int; let retries: Int }
    struct Download: Decodable { let totalBytes: Int; let averageNetworkSpeed: Double? }
    let performance: Performance
    let download: Download
    let inProgress: [Transfer]
}

extension JSONDecoder {
    static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

/// Renders the live view: a bar per download in flight and a total bar.
enum WatchView {
    static func lines(_ r: WatchReport, width: Int) -> [String] {
        var lines = ["goesfs: \(r.performance.totalAttempts) attempts, \(r.performance.successful) ok, "
                     + "\(r.performance.failed) failed, \(r.performance.retries) retries, \(r.download.totalBytes) bytes"]
        if r.inProgress.isEmpty {
            lines.append("no downloads in progress")
            return lines
        }
        let done = r.inProgress.reduce(0) { $0 + $1.bytesDone }, total = r.inProgress.reduce(0) { $0 + $1.bytesTotal }
        let speeds = r.inProgress.compactMap(\.speed)
        let speed: Double? = speeds.isEmpty ? nil : speeds.reduce(0, +)
        for t in r.inProgress {
            let name = String(t.key.split(separator: "/").last ?? Substring(t.key))
            lines.append(bar(label: name, done: t.bytesDone, total: t.bytesTotal, speed: t.speed, eta: t.etaSeconds, width: width))
        }
        let eta = speed.flatMap { $0 > 0 ? Double(total - done) / $0 : nil }
        let count = r.inProgress.count == 1 ? "1 download" : "\(r.inProgress.count) downloads"
        lines.append(bar(label: "total (\(count))", done: done, total: total, speed: speed, eta: eta, width: width))
        return lines
    }

    static func bar(label: String, done: Int, total: Int, speed: Double?, eta: Double?, width: Int) -> String {
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 0
        let tail = String(format: " %3.0f%% ", fraction * 100)
            + (speed.map { String(format: "%.2f MB/s", $0 / 1e6) } ?? "estimating…")
            + (eta.map { String(format: " ETA %.0fs", $0) } ?? "")
        let labelWidth = min(40, max(10, width / 3))
        let shortLabel = label.count > labelWidth ? "…" + label.suffix(labelWidth - 1) : label.padding(toLength: labelWidth, withPad: " ", startingAt: 0)
        let tailWidth = 34 // fixed, so every bar has the same length
        let barWidth = max(10, width - labelWidth - tailWidth - 4)
        let filled = Int(fraction * Double(barWidth))
        return shortLabel + " [" + String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled) + "]" + tail.padding(toLength: max(tail.count, tailWidth), withPad: " ", startingAt: 0)
    }
}
