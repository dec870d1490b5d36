// libFuzzer target: `ContentRange(headerValue:)` in Sources/ObjectStore/ContentRange.swift. The header
// comes from the server; a wrong parse would cache bytes under the wrong range.
//
// Each input is parsed as the whole header value and, so that mutations reach the numbers, after
// "bytes " (the prefix the fuzzer would otherwise have to find first). Invariants of an accepted value:
// the range is non-empty and starts at >= 0, it ends at or before the total when there is one, and
// printing it back gives a header that parses to the same value.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = fuzzText(data, size)
    check(ContentRange(headerValue: text), text)
    check(ContentRange(headerValue: "bytes " + text), "bytes " + text)
    check(ContentRange(headerValue: Substring(text)), text)
    blackHole(text.trimmingWhitespace())
    return 0
}

func check(_ parsed: ContentRange?, _ input: String) {
    guard let parsed else { return }
    let r = parsed.range
    invariant(!r.isEmpty, "empty range \(r) from \(input.debugDescription)")
    invariant(r.lowerBound >= 0, "negative start \(r) from \(input.debugDescription)")
    if let total = parsed.total {
        invariant(total > 0, "total \(total) with a non-empty range from \(input.debugDescription)")
        invariant(r.upperBound <= total, "range \(r) beyond total \(total) from \(input.debugDescription)")
    }
    let printed = "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(parsed.total.map(String.init) ?? "*")"
    invariant(ContentRange(headerValue: printed) == parsed, "\(printed) does not parse back to \(parsed)")
}
