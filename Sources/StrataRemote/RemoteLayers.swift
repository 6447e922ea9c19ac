import Foundation
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataSystem

/// Opens the layers of a registry image for a mount: a lazy blob per layer (shared with every
/// mount through the cache), and an index for each, looked up in this order: the local cache;
/// an index artifact published in the registry (`IndexArtifacts.pull`); else the layer is
/// streamed once, its index built while it downloads (layers in parallel). Returns once every
/// layer has an index, so the mount can answer.
public final class RemoteLayers: Sendable {
    public let image: ResolvedImage
    public let client: RegistryClient
    public let cache: LayerCache
    public let layers: [RemoteLayer]
    let log: RemoteLog

    /// The blobs to open the image view with (each one's `lazy` set).
    public var blobs: [LayerBlob] { layers.map(\.blob) }

    public init(image: ResolvedImage, client: RegistryClient, cache: LayerCache,
                log: RemoteLog) throws {
        self.image = image
        self.client = client
        self.cache = cache
        self.log = log
        layers = try image.layers.enumerated().map { i, layer in
            try layer.descriptor.digest.requireVerifiable("layer \(layer.descriptor.digest)")
            let fetcher = RegistryBlobFetcher(client: client, digest: layer.descriptor.digest)
            let lazy = try LazyBlob(cache: cache, digestHex: layer.descriptor.digest.hex,
                                    size: UInt64(max(layer.descriptor.size, 0)), fetcher: fetcher)
            return RemoteLayer(number: i, layer: layer, lazy: lazy, fetcher: fetcher)
        }
    }

    /// Finds or builds every layer's index (see the type's comment).
    public func index() throws {
        var missing = layers.filter { !hasCachedIndex($0) }
        for layer in layers where !missing.contains(where: { $0 === layer }) { layer.set(index: .cache) }
        if !missing.isEmpty {
            do {
                if try IndexArtifacts.pull(image: image, client: client, cache: cache) != nil {
                    for layer in missing where hasCachedIndex(layer) { layer.set(index: .artifact) }
                    missing = missing.filter { !hasCachedIndex($0) }
                }
            } catch {
                // No usable artifact: the layers stream as if none was published.
                log.warn("\(image.layoutPath): index artifact not used: \(error)")
            }
        }
        try streamAll(missing)
        for layer in layers {
            if let index = cache.load(digestHex: layer.digest.hex, verify: false) { layer.lazy.setSpans(index) }
        }
    }

    /// Streams the layers all at once, a thread each (not one per core: they wait on the
    /// network more than they inflate); the first error in layer order is thrown.
    private func streamAll(_ streamed: [RemoteLayer]) throws {
        guard !streamed.isEmpty else { return }
        let errors = Locked<[Int: any Error]>([:])
        let done = DispatchSemaphore(value: 0)
        for (i, layer) in streamed.enumerated() {
            Thread.detachNewThread {
                do { try self.stream(layer) } catch { errors.withLock { $0[i] = error } }
                done.signal()
            }
        }
        for _ in streamed { done.wait() }
        if let first = errors.withLock({ $0.min { $0.key < $1.key }?.value }) { throw first }
    }

    /// An index the cache holds for the layer (with the diff_id verified when it was made).
    private func hasCachedIndex(_ layer: RemoteLayer) -> Bool {
        cache.verifiedDiffID(digestHex: layer.digest.hex) != nil && cache.load(digestHex: layer.digest.hex, verify: false) != nil
    }

    /// Streams the whole blob into the cache, building its index as the bytes arrive; the
    /// builder checks the blob's digest and diff_id, so the layer is verified when this returns.
    private func stream(_ layer: RemoteLayer) throws {
        layer.set(index: .streamed)
        do {
            _ = try cache.build(layer.blob)
        } catch {
            // Nothing wrong stays cached.
            layer.fail("\(error)", cache: cache)
            throw error
        }
        layer.set(verification: .verified)
        layer.set(background: .notNeeded)
    }

    /// The mount's status (socket answers).
    public func status(mountpoint: String, reference: String, background: BackgroundFetch?) -> MountStatus {
        let stats = client.statistics
        return MountStatus(mountpoint: mountpoint, reference: reference, manifestDigest: image.manifestDigest.description,
                           source: "registry", backgroundFetch: background == nil ? "off" : "on",
                           backgroundBytesPerSecond: background?.bytesPerSecond,
                           requests: stats.requests, bytesReceived: stats.bytesReceived,
                           layers: layers.map(\.status))
    }
}
