import ArgumentParser
import Foundation
import ObjectStore

struct Diagnose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check DNS and connectivity to each source, with timings, without mounting.")

    @Option(help: "An S3-compatible base URL (default: the public AWS buckets and Google Cloud's mirror).")
    var endpoint: String?

    @Option(name: .customLong("source"), help: "A source URL; repeat for several.")
    var sources: [String] = []

    @Option(help: "The bucket to probe.")
    var bucket: String = "noaa-goes16"

    func run() throws {
        let urls = sources.isEmpty ? (endpoint.map { [$0] } ?? []) : sources
        let probes = NetworkDiagnostics.probe(sources: urls.isEmpty ? Source.publicDefaults : urls.map(Source.endpoint), bucket: bucket)
        print(NetworkDiagnostics.report(probes, extra: GoesFS.versionLines), terminator: "")
        if !probes.contains(where: \.reachable) { throw ExitCode(2) }
    }
}
