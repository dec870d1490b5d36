// Stand-in for `CLIError` (Sources/goesfs/GoesFS.swift), which cannot be compiled without ArgumentParser.
// Delete this file and list the real one in fuzz/config/sources once CLIError lives in a standalone file.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
