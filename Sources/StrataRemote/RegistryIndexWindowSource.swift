import StrataIndex
import StrataOCI
import StrataRegistry
import StrataSystem

/// The windows of a layer index installed from an artifact without its windows section: ranged
/// GETs of the published index blob, from the image's repository (the mount's client). Counts
/// what it fetched, for the mount's status.
public final class RegistryIndexWindowSource: IndexWindowSource, Sendable {
    public let client: RegistryClient
    public let digest: Digest
    public let size: UInt64
    private let counters = Locked<(bytes: UInt64, requests: Int)>((0, 0))

    public init(client: RegistryClient, digest: Digest, size: UInt64) {
        self.client = client
        self.digest = digest
        self.size = size
    }

    public var indexBlob: String { digest.description }

    public func indexBytes(_ range: Range<UInt64>) throws -> [UInt8] {
        guard range.upperBound <= size else {
            throw RemoteError("index blob \(digest): range \(range.lowerBound)..<\(range.upperBound) past its size \(size)")
        }
        let bytes = try client.blob(digest, range: range, priority: RegistryBlobFetcher.priority)
        counters.withLock {
            $0.bytes += UInt64(bytes.count)
            $0.requests += 1
        }
        return bytes
    }

    /// Index-window bytes fetched and the requests that fetched them.
    public var statistics: (bytes: UInt64, requests: Int) { counters.withLock { $0 } }
}
