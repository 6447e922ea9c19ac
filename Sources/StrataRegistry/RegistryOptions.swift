/// How to reach a registry, skopeo's options by name.
public struct RegistryOptions: Sendable {
    /// false: plain HTTP (`--tls-verify=false`). Untrusted certificates cannot be accepted by
    /// URLSession on Linux, so an https registry with a self-signed certificate still fails.
    public var tlsVerify = true
    /// `--authfile FILE`: the only credentials file read when set.
    public var authfile: String? = nil
    /// `--creds USER[:PASS]`: wins over any file.
    public var creds: String? = nil
    /// Seconds without any progress on a request before it fails as a timeout.
    public var timeout: Double = 30
    /// Attempts after the first on 5xx, 429, connection errors, timeouts and lying answers.
    public var retries = 3
    /// A body slower than this (bytes per second, averaged over the request) fails as a
    /// timeout too: a slow-loris server that trickles bytes never holds a reader forever.
    public var minimumBytesPerSecond: Double = 32 * 1024
    /// Connections per host (URLSession's httpMaximumConnectionsPerHost).
    public var connections = 6
    /// First retry delay in seconds; doubled each retry, capped at 5 s.
    public var retryDelay: Double = 0.2
    /// Size of each ranged request `streamBlob` makes.
    public var streamChunkSize: UInt64 = 1 << 20
    /// The environment credentials are looked up in (HOME, XDG_RUNTIME_DIR); nil: the process's.
    public var environment: [String: String]? = nil

    public init() {}
}
