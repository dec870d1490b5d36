import Foundation

/// Checks a mountpoint before mounting: dead mounts are cleared, live ones and non-empty
/// directories refused, each with one clear line.
enum Mountpoint {
    static func prepare(_ path: String, allowNonEmpty: Bool) throws {
        var st = stat()
        // statvfs always reaches the daemon (stat may be answered from the kernel's cache), so a
        // dead daemon shows as ENOTCONN here.
        var fs = statvfs()
        let dead = mountType(path) != nil && statvfs(path, &fs) != 0 && errno == ENOTCONN
        if dead || stat(path, &st) != 0 {
            guard dead || errno == ENOTCONN else {
                throw CLIError("mountpoint \(path) does not exist (\(String(cString: strerror(errno)))); create it first")
            }
            // "Transport endpoint is not connected": a FUSE daemon died and left its mount behind.
            guard Subprocess.run("fusermount3", ["-uz", path]) == 0 else {
                throw CLIError("\(path) is a dead mount and `fusermount3 -uz \(path)` failed; unmount it by hand")
            }
            Console.error("goesfs: \(path) was a dead mount (its daemon had died); detached it\n")
            guard stat(path, &st) == 0 else { throw CLIError("mountpoint \(path) is not usable: \(String(cString: strerror(errno)))") }
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw CLIError("mountpoint \(path) is not a directory") }
        if let type = mountType(path) {
            throw CLIError("\(path) is already mounted (\(type)); unmount it first (goesfs unmount \(path))")
        }
        if !allowNonEmpty, let contents = try? FileManager.default.contentsOfDirectory(atPath: path), !contents.isEmpty {
            throw CLIError("mountpoint \(path) is not empty; choose an empty directory or pass -o nonempty")
        }
    }

    /// The filesystem type mounted exactly at `path`, from /proc/mounts.
    static func mountType(_ path: String) -> String? {
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard let table = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return nil }
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            if fields[1].replacingOccurrences(of: "\\040", with: " ") == target { return String(fields[2]) }
        }
        return nil
    }
}
