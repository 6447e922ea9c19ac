#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataSystem

/// A counting, fault-injecting HTTP proxy in front of a `TestRegistry` (Python, in
/// `RegistryHelperScript`): clients use `host` instead of the registry's. It counts requests
/// and body bytes served (`statistics()`), and on demand misbehaves (`inject`): ignores Range,
/// lies about lengths or ranges, truncates, corrupts, trickles (slow loris), answers 503, 429
/// or 403,
/// redirects blob GETs to a second host (127.0.0.2) that records whether Authorization came
/// along, or goes down. Faults apply to requests whose path contains `match` ("/blobs/" by
/// default), for the next `count` of them (-1: until changed).
///
///     let proxy = try RegistryProxy(registry)
///     try proxy.inject(.ignoreRange)
///     ... client on proxy.reference("app:v1") ...
///     #expect(try proxy.statistics().blobBytes < 100_000)
public final class RegistryProxy {
    public enum Fault: String, Sendable {
        case pass
        case ignoreRange = "ignore-range"
        case wrongLength = "wrong-length"
        case shortLength = "short-length"
        case truncate
        case wrongRange = "wrong-range"
        case corrupt
        case slow
        case error
        case rateLimit = "rate-limit"
        case forbidden
        case redirect
        case down
        /// No answer at all for `delay` seconds (then the connection closes).
        case stall
        /// Forwarded unchanged once a request whose log line contains `until` has been answered
        /// (or after `delay` seconds): a log where that request comes first shows the client
        /// did not wait for this one before asking it.
        case hold
    }

    public let registry: TestRegistry
    /// "127.0.0.1:PORT": where clients connect.
    public let host: String
    /// "127.0.0.2:PORT": where `.redirect` sends blob GETs.
    public let redirectHost: String
    private let controlPath: String
    private let statisticsPath: String
    private var process: ChildProcess?
    private var faultID = 0

    public init(_ registry: TestRegistry) throws {
        self.registry = registry
        let dir = registry.directory
        // Both servers bind free ports themselves (port 0) and log which.
        let name = dir.child("proxy-\(UInt32.random(in: 0..<UInt32.max))")
        let control = name + "-control.json", statistics = name + "-stats.json", log = name + ".log"
        try FileIO.writeAtomically(control, Array(#"{"mode": "pass"}"#.utf8), durable: false)
        let started = try TestRegistry.start(RegistryHelperScript.python,
                                             [registry.helper, "proxy", "--parent", "\(getpid())", "--port", "0",
                                              "--upstream", registry.host, "--control", control, "--stats", statistics,
                                              "--storage", registry.storage, "--redirect-host", "127.0.0.2",
                                              "--redirect-port", "0"], log: log)
        do {
            let redirectPort = try TestRegistry.listeningPort(log: log, host: "127.0.0.2", what: "registry proxy's redirect server",
                                                              process: started)
            let port = try TestRegistry.listeningPort(log: log, host: "127.0.0.1", what: "registry proxy", process: started)
            try TestRegistry.wait(helper: registry.helper, url: "http://127.0.0.1:\(port)/v2/", what: "registry proxy",
                                  log: log, process: started)
            (host, redirectHost, controlPath, statisticsPath) = ("127.0.0.1:\(port)", "127.0.0.2:\(redirectPort)", control, statistics)
        } catch {
            TestRegistry.end(started)
            throw error
        }
        process = started
    }

    deinit { stop() }

    public func stop() {
        if let process { TestRegistry.end(process) }
        process = nil
    }

    /// "docker://PROXYHOST/REPO:TAG".
    public func reference(_ repository: String) -> String { "docker://\(host)/\(repository)" }

    /// Misbehave as `fault` for the next `count` requests whose "PATH RANGE" (RANGE: the Range
    /// header, "-" without one) contains `match` (-1: all until the next `inject`). `delay`:
    /// seconds per byte for `.slow`, seconds of silence for `.stall`, the longest hold for `.hold`.
    /// `until`: for `.hold`, what the log line of the request that releases it contains.
    public func inject(_ fault: Fault, match: String = "/blobs/", count: Int = -1, delay: Double = 0.2,
                       until: String = "") throws {
        faultID += 1
        let json = #"{"id": \#(faultID), "mode": "\#(fault.rawValue)", "match": "\#(match)", "count": \#(count), "delay": \#(delay), "until": "\#(until)"}"#
        try FileIO.writeAtomically(controlPath, Array(json.utf8), durable: false)
    }

    /// Back to forwarding everything unchanged (also "up" after `.down`).
    public func reset() throws { try inject(.pass) }

    /// What the proxy has served so far. A request's counts are written once its answer is
    /// sent, which a client may see first: this waits (up to 5 s) until none is being answered.
    public func statistics() throws -> ProxyStatistics {
        var stats = try JSONCoding.decode(ProxyStatistics.self, from: FileIO.readAll(statisticsPath), what: statisticsPath)
        for _ in 0..<100 where stats.inFlight > 0 {
            usleep(50_000)
            stats = try JSONCoding.decode(ProxyStatistics.self, from: FileIO.readAll(statisticsPath), what: statisticsPath)
        }
        return stats
    }
}

/// The proxy's counters (cumulative since it started).
public struct ProxyStatistics: Codable, Sendable {
    /// Requests answered (including faults and the redirect target's).
    public var requests: Int
    /// Response body bytes sent.
    public var bytes: Int
    /// GET/HEAD requests of blobs, and their body bytes.
    public var blobRequests: Int
    public var blobBytes: Int
    /// Requests that carried a Range header.
    public var rangeRequests: Int
    public var manifestRequests: Int
    /// Requests that reached the redirect target, and how many of them carried Authorization.
    public var redirectRequests: Int
    public var redirectAuthorization: Int
    /// Requests a fault was applied to.
    public var faults: Int
    /// Requests being answered when the counts were written.
    public var inFlight: Int
    /// "METHOD PATH RANGE -> STATUS BYTES", one per request (the first 20000).
    public var log: [String]
}
