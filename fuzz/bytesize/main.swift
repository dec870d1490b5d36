// libFuzzer target: `ByteSize.parse` in Sources/goesfs/ByteSize.swift — the sizes typed on the command
// line and in the config file (`--cache-size 20G`, `--max-bandwidth 1.5M`, `cache_size = "500M"`).
// Invariant: an accepted size is not negative and not larger than the number written times its unit.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = fuzzText(data, size)
    if let bytes = ByteSize.parse(text) {
        invariant(bytes >= 0, "\(text.debugDescription) parsed to \(bytes)")
    }
    return 0
}
