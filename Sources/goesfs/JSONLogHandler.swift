import FileSystem
import Foundation
import Logging
import LogOutput

/// `--log-format json`: one JSON object per line on stderr (the log), for journald and log
/// shippers: `time`, `level`, `message`, and the event's metadata as strings (`category` uses the
/// names of `.stats`: auth, not_found, timeout, network, server, changed).
struct JSONLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    let label: String

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event logged: LogEvent) {
        var event: [String: String] = [:]
        for (key, value) in metadata.merging(logged.metadata ?? [:], uniquingKeysWith: { $1 }) { event[key] = "\(value)" }
        event["time"] = Timestamp.iso(Date().timeIntervalSince1970)
        event["level"] = logged.level.rawValue
        event["message"] = logged.message.description
        event["logger"] = label
        guard let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        LogWriter.standardError.write(String(decoding: data, as: UTF8.self) + "\n")
    }
}

