// Compiled into every fuzz target (see fuzz/run). Not part of Package.swift.

/// The fuzzer's input as text, decoded the way the daemon decodes bytes it receives (invalid UTF-8 → U+FFFD).
func fuzzText(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// Traps, with the message on stderr ("Fatal error: invariant violated: …"), when an invariant of a
/// parser's result does not hold; libFuzzer then saves the input as crash-<sha1>.
func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
               file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        fatalError("invariant violated: \(message())", file: file, line: line)
    }
}

/// Keeps a result alive so the optimizer cannot drop the work that produced it.
@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}
