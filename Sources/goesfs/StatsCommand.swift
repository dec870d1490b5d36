import ArgumentParser
import Foundation

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a mount's download report; --watch shows downloads live.")

    @Argument(help: "The mountpoint.")
    var mountpoint: String

    @Flag(help: "Print .stats.json instead of the text report.")
    var json = false

    @Flag(help: "Redraw a live view with a progress bar per file being fetched until interrupted.")
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
            guard let text = read(json ? ".stats.json" : ".stats") else { throw notAMount }
            print(text, terminator: "")
            return
        }
        guard read(".stats.json") != nil else { throw notAMount }
        let terminal = isatty(STDOUT_FILENO) == 1
        var drawn = 0
        while count.map({ drawn < $0 }) ?? true {
            let width = terminal ? terminalWidth() : 80
            let lines: [String]
            switch fetchReport() {
            case .report(let report): lines = WatchView.lines(report, width: width)
            case .unreadable(let why): lines = ["goesfs: the report could not be read (\(why)); trying again"]
            case .gone:
                Console.output((terminal ? "\u{1B}[H\u{1B}[J" : "") + "goesfs: \(mountpoint) is not mounted any more; stopped watching\n")
                throw ExitCode.failure
            }
            let trimmed = lines.map { $0.replacingOccurrences(of: " +$", with: "", options: .regularExpression) }
            // On a terminal: home, then each line cleared to its end, then the rest of the screen (no flicker).
            let frame = terminal ? "\u{1B}[H" + trimmed.map { $0 + "\u{1B}[K" }.joined(separator: "\n") + "\n\u{1B}[J"
                                 : trimmed.joined(separator: "\n") + "\n\n"
            Console.output(frame)
            drawn += 1
            if count.map({ drawn >= $0 }) ?? false { break }
            Thread.sleep(forTimeInterval: interval)
        }
    }

    private enum Fetched { case report(WatchReport), unreadable(String), gone }

    /// The report now. A read can be cut or torn (the mount going away mid-read, a signal), so a
    /// document that does not decode is read again a few times before the frame says so.
    private func fetchReport() -> Fetched {
        var why = ""
        for attempt in 0..<4 {
            if attempt > 0 { Thread.sleep(forTimeInterval: 0.05 * Double(attempt)) }
            guard let text = read(".stats.json") else {
                if !isMounted() { return .gone }
                why = "cannot read \(mountpoint)/.stats.json: \(String(cString: strerror(errno)))"
                continue
            }
            do { return .report(try JSONDecoder.snakeCase.decode(WatchReport.self, from: Data(text.utf8))) } catch {
                why = text.isEmpty ? "empty read" : "not a complete report (\(text.utf8.count) bytes)"
            }
        }
        return .unreadable(why)
    }

    private var notAMount: CLIError {
        CLIError("cannot read \(URL(fileURLWithPath: mountpoint).appendingPathComponent(".stats").path): is \(mountpoint) a goesfs mount?")
    }

    private func read(_ name: String) -> String? {
        try? String(contentsOfFile: URL(fileURLWithPath: mountpoint).appendingPathComponent(name).path, encoding: .utf8)
    }

    /// Whether a goesfs mount still answers at the mountpoint (a dead one says ENOTCONN; an
    /// unmounted folder has no `.stats.json`).
    private func isMounted() -> Bool {
        var info = stat()
        return stat(URL(fileURLWithPath: mountpoint).appendingPathComponent(".stats.json").path, &info) == 0
    }

    private func terminalWidth() -> Int {
        var size = winsize()
        return ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 20 ? Int(size.ws_col) : 80
    }
}

extension JSONDecoder {
    static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}
