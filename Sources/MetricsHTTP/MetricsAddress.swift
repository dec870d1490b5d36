#if canImport(Glibc)
import Glibc
#endif

/// Where `/metrics` listens: `PORT` or `127.0.0.1:PORT` (loopback), or an explicit numeric IPv4
/// address the operator chose to expose it on (`0.0.0.0:PORT` is every interface). Host names
/// other than `localhost` are refused: what a name resolves to can change under the operator.
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: UInt16

    public init(parsing text: String) throws(MetricsError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let hostPart = parts.count == 2 ? String(parts[0]) : "", portPart = String(parts.last ?? "")
        guard parts.count <= 2, let port = UInt16(portPart), port > 0 else {
            throw MetricsError("--metrics must be PORT or ADDRESS:PORT with a port from 1 to 65535 (e.g. 127.0.0.1:9464), not '\(text)'")
        }
        let host = hostPart.isEmpty || hostPart == "localhost" ? "127.0.0.1" : hostPart
        var probe = in_addr()
        guard inet_pton(AF_INET, host, &probe) == 1 else {
            throw MetricsError("--metrics needs a numeric IPv4 address (or localhost), not '\(hostPart)'")
        }
        self.host = host
        self.port = port
    }

    /// For tests: port 0 lets the kernel choose (see `MetricsServer.port`).
    init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// 127.0.0.0/8: reachable from this machine only.
    public var isLoopback: Bool { host.hasPrefix("127.") }

    public var description: String { "\(host):\(port)" }
}

public struct MetricsError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
