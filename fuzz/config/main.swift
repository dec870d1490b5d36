// libFuzzer target: `ConfigFile.expand` in Sources/goesfs/ConfigFile.swift — the `--config FILE` TOML
// reader that turns `key = value` lines into mount flags. The input is written to a scratch file (expand
// reads its argument's path) and expanded twice: with no flags, and with flags that the file's keys must
// not override.
//
// Invariants of a successful expansion: the original arguments are all still there, in order, and every
// inserted word comes after `mount`.

#if canImport(Glibc)
import Glibc
#endif

/// The scratch file, in memory when /dev/shm is there (ten times the executions per second of /tmp here);
/// removed at exit.
let scratch: String = {
    let path = (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + "/goesfs-fuzz-config-\(getpid()).toml"
    atexit { unlink(scratch) }
    return path
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let file = fopen(scratch, "wb") else { return 0 }
    if size > 0 { fwrite(data, 1, size, file) }
    fclose(file)

    for arguments in [["goesfs", "mount", "/mnt/goes", "--config", scratch],
                      ["goesfs", "mount", "/mnt/goes", "--config", scratch, "--satellites", "18", "-o", "uid=1"]] {
        guard let expanded = try? ConfigFile.expand(arguments) else { continue }
        invariant(expanded.count >= arguments.count, "arguments lost")
        invariant(Array(expanded.prefix(2)) == Array(arguments.prefix(2)), "words before mount changed")
        var rest = expanded[...]
        for word in arguments {
            guard let at = rest.firstIndex(of: word) else {
                invariant(false, "argument \(word) lost from \(expanded)")
                return 0
            }
            rest = rest[(at + 1)...]
        }
        invariant(expanded.suffix(arguments.count - 2) == arguments.suffix(arguments.count - 2),
                  "original arguments after the inserted ones changed")
    }
    return 0
}
