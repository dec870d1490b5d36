import ArgumentParser
import BlockCache
import FUSEBridge
import Foundation

@main
struct GoesFS: ParsableCommand {
    /// Reads `--config` into flags before the usual parsing.
    static func main() {
        do {
            let arguments = try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            // Every refusal is one line (scripts and the journal read it); --help shows the usage.
            let code = exitCode(for: error)
            if error is ExitCode || code == .success { exit(withError: error) }
            let line = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            Console.error("Error: \(line)\n")
            Foundation.exit(code.rawValue)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "goesfs",
        abstract: "A read-only filesystem for NOAA's GOES-R satellite archive on S3.",
        discussion: "Nothing is downloaded until it is read; what is read is cached on disk.",
        version: "0.1.0",
        subcommands: [Mount.self, Unmount.self, Stats.self, Prefetch.self, Diagnose.self, Cache.self]
    )
}

struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unmount a goesfs mount.")

    @Argument(help: "The mountpoint.")
    var mountpoint: String

    func run() throws {
        let status = Subprocess.run("fusermount3", ["-u", mountpoint])
        if status != 0 { throw CLIError("fusermount3 -u \(mountpoint) failed (exit \(status)); is it mounted, and is a process using it?") }
    }
}

extension GoesFS {
    /// goesfs and the C libraries it runs on, for diagnostics reports.
    static var versionLines: [String] {
        ["goesfs: \(configuration.version)", "SQLite: \(CacheIndex.sqliteVersion)", "libfuse: \(MountSession.libfuseVersion)"]
    }
}

/// A failure to report in one line, without the usage text that `ValidationError` adds.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
