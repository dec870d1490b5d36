import CCurl
import Foundation

/// Answers "can this machine reach the sources, and where does the time go?" in plain words.
///
/// For each source: resolve its host (timed), then a one-key listing with libcurl's phase timings
/// (DNS, connect, TLS, first byte). Bounded: every probe has short timeouts.
public enum NetworkDiagnostics {
    public struct Probe: Sendable {
        public let source: String
        public let host: String
        public let resolved: [String]
        public let resolveSeconds: Double
        public let phases: PhaseTimings?
        public let status: Int?
        public let error: String?
        public var reachable: Bool { status.map { (200..<300).contains($0) } ?? false }
    }

    public static func libcurlVersion() -> String { String(cString: curl_version()) }

    public static func dnsServers() -> [String] {
        guard let text = try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            return parts.count >= 2 && parts[0] == "nameserver" ? String(parts[1]) : nil
        }
    }

    /// Probes `bucket` on each source (a listing of at most one key).
    public static func probe(sources: [Source], bucket: String, timeoutSeconds: Double = 5) -> [Probe] {
        sources.map { source in
            let url = source.bucketURL(bucket)
            let host = URLComponents(string: url)?.host ?? url
            let (addresses, resolveSeconds) = resolve(host)
            let handle = CurlHandle(bandwidth: nil)
            let outcome = handle.get(HTTPRequest(url: url + "?list-type=2&max-keys=1"),
                                     timeouts: RequestTimeouts(connectSeconds: timeoutSeconds, stallSeconds: Int(timeoutSeconds),
                                                               totalSeconds: timeoutSeconds))
            let failed = outcome.curlCode != CURLE_OK
            return Probe(source: source.description, host: host, resolved: addresses, resolveSeconds: resolveSeconds,
                         phases: failed ? nil : outcome.phases, status: failed ? nil : outcome.status,
                         error: failed ? S3Client.classify(curlCode: outcome.curlCode, message: outcome.curlMessage).description : nil)
        }
    }

    /// One sentence a person can act on.
    public static func verdict(_ probes: [Probe]) -> String {
        let reachable = probes.filter(\.reachable)
        if reachable.count == probes.count { return "all sources reachable" }
        if reachable.isEmpty {
            if probes.allSatisfy({ $0.resolved.isEmpty }) {
                return "no source host resolves: DNS is not working (check /etc/resolv.conf or the network)"
            }
            return "no source is reachable: the network or the servers are down (cached files still read)"
        }
        let down = probes.filter { !$0.reachable }.map(\.source).joined(separator: ", ")
        return "partly reachable: \(down) failing; reads use the other sources"
    }

    public static func report(_ probes: [Probe], extra: [String]) -> String {
        var out = "goesfs network diagnostics\n--------------------------\n"
        out += "Platform: \(ProcessInfo.processInfo.operatingSystemVersionString)\n"
        out += "Hostname: \(ProcessInfo.processInfo.hostName)\n"
        out += "libcurl: \(libcurlVersion())\n"
        for line in extra { out += line + "\n" }
        out += "DNS servers: \(dnsServers().joined(separator: ", "))\n\n"
        for (i, p) in probes.enumerated() {
            out += "\(i + 1). \(p.source)\n"
            out += "   resolve \(p.host): " + (p.resolved.isEmpty ? "failed" : p.resolved.prefix(3).joined(separator: ", "))
            out += String(format: " (%.1f ms)\n", p.resolveSeconds * 1000)
            if let phases = p.phases, let status = p.status {
                out += String(format: "   HTTP %d: dns %.1f ms, connect %.1f ms, tls %.1f ms, first byte %.1f ms, total %.1f ms\n",
                              status, phases.dns * 1000, phases.connect * 1000, phases.tls * 1000,
                              phases.firstByte * 1000, phases.total * 1000)
            }
            out += "   " + (p.reachable ? "reachable" : "NOT reachable: \(p.error ?? "HTTP \(p.status ?? 0)")") + "\n"
        }
        out += "\nVerdict: \(verdict(probes))\n"
        return out
    }

    private static func resolve(_ host: String) -> ([String], Double) {
        let started = DispatchTime.now().uptimeNanoseconds
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        defer { if let result { freeaddrinfo(result) } }
        let rc = getaddrinfo(host, nil, &hints, &result)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        guard rc == 0 else { return ([], seconds) }
        var addresses: [String] = []
        var cursor = result
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let address = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !addresses.contains(address) { addresses.append(address) }
            }
            cursor = info.pointee.ai_next
        }
        return (addresses, seconds)
    }
}
