import Foundation
import FUSEBridge

/// Splits `-o` options into the ones goesfs handles itself and the ones for libfuse.
///
/// Ours: `uid=`, `gid=`, `umask=`, `file_mode=`, `dir_mode=` (ownership and modes shown),
/// `nonempty` (allow a non-empty mountpoint), and `ro` (implied). The rest (`allow_other`,
/// `allow_root`, `default_permissions`, …) go to libfuse, which rejects what it does not know.
struct MountOptions {
    var ownership = Ownership()
    var allowNonEmpty = false
    var forLibfuse: [String] = []

    init(_ options: [String]) throws {
        var umask: mode_t?
        var fileMode: mode_t?
        var directoryMode: mode_t?
        for option in options.flatMap({ $0.split(separator: ",").map(String.init) }) {
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            let value = parts.count == 2 ? parts[1] : nil
            switch parts[0] {
            case "ro": continue
            case "nonempty": allowNonEmpty = true
            case "uid": ownership.uid = try MountOptions.number(option, value, radix: 10)
            case "gid": ownership.gid = try MountOptions.number(option, value, radix: 10)
            case "umask": umask = try MountOptions.number(option, value, radix: 8)
            case "file_mode": fileMode = try MountOptions.number(option, value, radix: 8)
            case "dir_mode": directoryMode = try MountOptions.number(option, value, radix: 8)
            case "rw": throw CLIError("goesfs is read-only: the option rw is not supported")
            default: forLibfuse.append(option)
            }
        }
        if let umask {
            ownership.fileMode = 0o444 & ~umask
            ownership.directoryMode = 0o555 & ~umask
        }
        if let fileMode { ownership.fileMode = fileMode & 0o555 }
        if let directoryMode { ownership.directoryMode = directoryMode & 0o555 }
    }

    private static func number<T: FixedWidthInteger>(_ option: String, _ value: String?, radix: Int) throws -> T {
        guard let value, let n = T(value, radix: radix) else { throw CLIError("bad mount option '\(option)'") }
        return n
    }
}
