/// What a client has done so far (for `strata status` and tests).
public struct RegistryStatistics: Sendable, Hashable {
    /// HTTP requests sent, including token requests, retries and redirects followed.
    public var requests = 0
    /// Body bytes received (blobs, manifests, tokens).
    public var bytesReceived: UInt64 = 0
    /// Body bytes sent (pushes).
    public var bytesSent: UInt64 = 0
    /// Requests tried again after a failure.
    public var retries = 0
    /// Blob GETs with a Range header.
    public var rangeRequests = 0

    public init() {}
}
