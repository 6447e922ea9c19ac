#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What `strata status MNT` shows: the mount's image and, per layer, how much of its blob is
/// here, where its index came from, and how far the background fetch and verification are.
/// Sent as JSON over the mount's status socket; `--json` prints it as received.
public struct MountStatus: Codable, Sendable, Equatable {
    public var mountpoint: String
    public var reference: String
    public var manifestDigest: String
    /// "registry" (a docker:// image, fetched lazily) or "local" (a layout or archive: every blob here).
    public var source: String
    /// "on" or "off" (`--background-fetch`); "none" for a local image.
    public var backgroundFetch: String
    /// The background fetch's cap in bytes per second (nil: none).
    public var backgroundBytesPerSecond: UInt64?
    /// HTTP requests the mount made to the registry, and the bytes they brought.
    public var requests: Int
    public var bytesReceived: UInt64
    public var layers: [Layer]

    public struct Layer: Codable, Sendable, Equatable {
        public var digest: String
        /// The blob's size, and how many of its bytes are in the local cache.
        public var size: UInt64
        public var present: UInt64
        public var complete: Bool
        /// Where the index came from: "cache", "artifact" (published in the registry),
        /// "streamed" (built while the whole blob downloaded) or "local" (a local blob).
        public var index: String
        /// Whether the layer is served lazily (reads fetch only the spans they need).
        public var lazy: Bool
        /// Why it is not lazy, when it is not ("no index published; streamed whole").
        public var notLazyReason: String?
        /// "pending", "running", "done", "off", "not needed" (complete already) or "failed".
        public var background: String
        /// "pending" (blob incomplete), "verifying", "verified" (digest and diff_id of the whole
        /// blob checked) or "failed" (reads get EIO).
        public var verification: String
        /// Bytes fetched for reads, by the prefetch list, by the background fetch; requests.
        public var onDemandBytes: UInt64
        public var prefetchBytes: UInt64
        public var backgroundBytes: UInt64
        public var requests: Int
        /// Bytes of the layer's index windows fetched from the registry (an index published
        /// with a large windows section is installed without it and fetches each window when
        /// a decode or the prefetch needs it), and the requests that fetched them; not counted
        /// in the blob's byte counts above. Absent in older status answers (0).
        public var indexWindowBytes: UInt64?
        public var indexWindowRequests: Int?
        /// The failure, when there was one.
        public var error: String?

        public init(digest: String, size: UInt64, present: UInt64, complete: Bool, index: String, lazy: Bool,
                    notLazyReason: String? = nil, background: String, verification: String, onDemandBytes: UInt64 = 0,
                    prefetchBytes: UInt64 = 0, backgroundBytes: UInt64 = 0, requests: Int = 0, indexWindowBytes: UInt64? = nil,
                    indexWindowRequests: Int? = nil, error: String? = nil) {
            self.digest = digest; self.size = size; self.present = present; self.complete = complete
            self.index = index; self.lazy = lazy; self.notLazyReason = notLazyReason; self.background = background
            self.verification = verification; self.onDemandBytes = onDemandBytes; self.prefetchBytes = prefetchBytes
            self.backgroundBytes = backgroundBytes; self.requests = requests
            self.indexWindowBytes = indexWindowBytes; self.indexWindowRequests = indexWindowRequests; self.error = error
        }
    }

    public init(mountpoint: String, reference: String, manifestDigest: String, source: String, backgroundFetch: String,
                backgroundBytesPerSecond: UInt64? = nil, requests: Int = 0, bytesReceived: UInt64 = 0, layers: [Layer]) {
        self.mountpoint = mountpoint; self.reference = reference; self.manifestDigest = manifestDigest
        self.source = source; self.backgroundFetch = backgroundFetch; self.backgroundBytesPerSecond = backgroundBytesPerSecond
        self.requests = requests; self.bytesReceived = bytesReceived; self.layers = layers
    }

    /// A local image's status: every blob is here and was verified when it was indexed.
    public static func local(mountpoint: String, reference: String, manifestDigest: String,
                             layers: [(digestHex: String, size: UInt64)]) -> MountStatus {
        MountStatus(mountpoint: mountpoint, reference: reference, manifestDigest: manifestDigest, source: "local",
                    backgroundFetch: "none",
                    layers: layers.map {
                        Layer(digest: "sha256:\($0.digestHex)", size: $0.size, present: $0.size, complete: true, index: "local",
                              lazy: true, background: "not needed", verification: "verified")
                    })
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    public static func decode(_ bytes: [UInt8]) throws -> MountStatus {
        try JSONDecoder().decode(MountStatus.self, from: Data(bytes))
    }
}
