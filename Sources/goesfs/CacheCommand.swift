import ArgumentParser
import BlockCache
import Foundation

/// Where the cache lives unless `--cache-dir` says otherwise.
enum CacheLocation {
    static func resolve(_ explicit: String?) -> String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CACHE_HOME"].map { $0 + "/goesfs" } ?? NSHomeDirectory() + "/.cache/goesfs"
        return URL(fileURLWithPath: explicit ?? base).standardizedFileURL.path
    }
}

struct Cache: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect, check or empty a cache directory (not while a mount uses it).",
        subcommands: [Info.self, Verify.self, Clear.self]
    )

    struct Options: ParsableArguments {
        @Option(help: "The cache directory (default: $XDG_CACHE_HOME/goesfs or ~/.cache/goesfs).")
        var cacheDir: String?

        /// Runs `body` on the directory while it is locked against a mount.
        func withLockedDirectory(_ body: (CacheDirectory) throws -> Void) throws {
            let directory: CacheDirectory
            do {
                directory = try CacheDirectory(path: CacheLocation.resolve(cacheDir), create: false)
            } catch {
                throw CLIError(error.description)
            }
            let lock: CacheLock
            do {
                lock = try CacheLock(directory: directory)
            } catch {
                throw CLIError("\(error); unmount it first")
            }
            try withExtendedLifetime(lock) { try body(directory) }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Objects, blocks and bytes in the cache.")
        @OptionGroup var options: Options

        func run() throws {
            try options.withLockedDirectory { directory in
                let summary = try CacheMaintenance.summary(directory: directory)
                print("""
                    cache directory: \(directory.path)
                    objects: \(summary.objects)
                    blocks: \(summary.blocks) (\(CacheIndex.blockSize) bytes each at most)
                    cached bytes: \(summary.bytes)
                    on disk: \(summary.diskBytes) bytes
                    """)
                if let cap = summary.cap, cap > 0 {
                    print("cap (last mount): \(cap) bytes (\(ByteSize.human(cap))); cached bytes are "
                          + String(format: "%.1f%%", Double(summary.bytes) * 100 / Double(cap)) + " of it")
                } else {
                    print("cap (last mount): not recorded")
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every cached block against its checksum; damaged blocks are dropped and fetched again on the next read.")
        @OptionGroup var options: Options

        func run() throws {
            try options.withLockedDirectory { directory in
                let report = try CacheMaintenance.verify(directory: directory)
                for damaged in report.damagedBlocks { print("damaged: \(damaged) (dropped)") }
                print("checked \(report.blocksChecked) blocks: \(report.damagedBlocks.count) damaged, \(report.orphanFiles) stray data files removed")
                if !report.damagedBlocks.isEmpty { throw ExitCode(1) }
            }
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every cached byte and the index.")
        @OptionGroup var options: Options

        func run() throws {
            try options.withLockedDirectory { directory in
                CacheMaintenance.clear(directory: directory)
                print("cleared \(directory.path)")
            }
        }
    }
}
