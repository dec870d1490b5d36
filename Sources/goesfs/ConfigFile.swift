import Foundation

/// `--config FILE`: a flat TOML file whose keys mirror the mount flags (`cache_size = "20G"`,
/// `source = ["http://a", "http://b"]`, `foreground = true`). Flags given on the command line win:
/// a key whose flag is already there is skipped.
enum ConfigFile {
    static func expand(_ arguments: [String]) throws -> [String] {
        guard let at = arguments.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }),
              let mount = arguments.firstIndex(of: "mount"), mount < at else { return arguments }
        let path: String
        if arguments[at] == "--config" {
            guard at + 1 < arguments.count else { return arguments }
            path = arguments[at + 1]
        } else {
            path = String(arguments[at].dropFirst("--config=".count))
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CLIError("cannot read the config file \(path)")
        }
        var extra: [String] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                .trimmingCharacters(in: .whitespaces) ?? ""
            if line.isEmpty { continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty else { throw CLIError("\(path):\(number + 1): expected key = value") }
            let flag = parts[0] == "o" || parts[0] == "options" ? "-o" : "--" + parts[0].replacingOccurrences(of: "_", with: "-")
            if arguments.contains(where: { $0 == flag || $0.hasPrefix(flag + "=") }) { continue }
            for value in try values(parts[1], at: "\(path):\(number + 1)") {
                switch value {
                case "true": extra.append(flag)
                case "false": continue
                // `--flag=value`, so a value such as -5 is read as a value, not as an option.
                default: extra += flag == "-o" ? [flag, value] : [flag + "=" + value]
                }
            }
        }
        var result = arguments
        result.insert(contentsOf: extra, at: mount + 1)
        return result
    }

    /// A TOML string, number, boolean, or array of those, as command-line words.
    private static func values(_ text: String, at place: String) throws -> [String] {
        if text.hasPrefix("[") && text.hasSuffix("]") {
            return try text.dropFirst().dropLast().split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .flatMap { try values($0, at: place) }
        }
        if (text.hasPrefix("\"") && text.hasSuffix("\"") || text.hasPrefix("'") && text.hasSuffix("'")) && text.count >= 2 {
            return [String(text.dropFirst().dropLast())]
        }
        guard text == "true" || text == "false" || Double(text) != nil else {
            throw CLIError("\(place): cannot read the value \(text) (quote strings)")
        }
        return [text]
    }
}
