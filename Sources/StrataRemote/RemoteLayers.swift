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
        // A layer's own TOC, vouched for by its annotation: one or two small range requests,
        // every layer's at once (each is a round trip or two the mount waits for).
        try eachAtOnce(missing.filter { LayerCache.hasTOC($0.blob) }) { layer in
            if try self.indexFromTOC(layer) { layer.set(index: .toc) }
        }
        missing = missing.filter { $0.indexSource != .toc }
        if !missing.isEmpty {
            // Another process of this cache may be pulling the artifact (the `strata bundle`
            // that started this mount: `pullIndexesAhead`); what it installed is used.
            let lock = IndexArtifacts.pullLock(cache, image: image)
            defer { lock?.close() }
            for layer in missing where hasCachedIndex(layer) { layer.set(index: .artifact) }
            missing = missing.filter { $0.indexSource != .artifact }
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
        }
        try streamAll(missing)
        for layer in layers {
            if let index = cache.load(digestHex: layer.digest.hex, verify: false) { layer.lazy.setSpans(index) }
            attachWindowSource(layer)
        }
    }

    /// An untrusted index installed without its windows (now, or by an earlier mount of this
    /// cache) fetches them from the index blob the artifact named, in this image's repository.
    private func attachWindowSource(_ layer: RemoteLayer) {
        let hex = layer.digest.hex
        guard IndexArtifactTrust.isUntrusted(cache, hex), let windows = IndexArtifactTrust.lazyWindows(cache, hex) else { return }
        let source = RegistryIndexWindowSource(client: client, digest: windows.indexBlob, size: UInt64(windows.size))
        layer.windowSource = source
        IndexWindows.register(source, indexPath: cache.indexPath(digestHex: hex))
    }

    /// Streams the layers all at once, a thread each (not one per core: they wait on the
    /// network more than they inflate); the first error in layer order is thrown.
    private func streamAll(_ streamed: [RemoteLayer]) throws {
        try eachAtOnce(streamed) { try self.stream($0) }
    }

    /// Runs `body` for every layer at once, a thread each; the first error in layer order is thrown.
    private func eachAtOnce(_ layers: [RemoteLayer], _ body: @escaping @Sendable (RemoteLayer) throws -> Void) throws {
        _ = try ParallelFetch.all(layers, limit: layers.count, body)
    }

    /// An index the cache holds for the layer (with the diff_id verified when it was made, or
    /// one built from the layer's TOC, whose chunks are verified as they are read).
    private func hasCachedIndex(_ layer: RemoteLayer) -> Bool { Self.hasCachedIndex(layer.digest.hex, cache: cache) }

    private static func hasCachedIndex(_ hex: String, cache: LayerCache) -> Bool {
        guard let index = cache.load(digestHex: hex, verify: false) else { return false }
        return cache.verifiedDiffID(digestHex: hex) != nil || index.contentSpans
    }

    /// Installs the image's published index artifact for the layers with no index in the cache
    /// and no TOC, holding the image's pull lock (`IndexArtifacts.pullLock`): the first thing a
    /// mount of the image does.
    /// `strata bundle` runs it while the mount's daemon starts (two process starts), and the
    /// mount, waiting on the lock, finds the indexes installed. Errors are left to the mount,
    /// which asks again and logs them.
    public static func pullIndexesAhead(image: ResolvedImage, client: RegistryClient, cache: LayerCache) {
        let lock = IndexArtifacts.pullLock(cache, image: image)
        defer { lock?.close() }
        let wanted = image.layers.contains { l in
            !hasCachedIndex(l.descriptor.digest.hex, cache: cache) && !LayerCache.hasTOC(annotations: l.descriptor.annotations)
        }
        if wanted { _ = try? IndexArtifacts.pull(image: image, client: client, cache: cache) }
    }

    /// Indexes the layer from its TOC, fetched with range requests (footer, then TOC). A TOC
    /// that lies is an error naming the layer (the mount is refused); one that cannot be
    /// fetched leaves the layer to be streamed (false).
    private func indexFromTOC(_ layer: RemoteLayer) throws -> Bool {
        struct Fetch: Error { var error: any Error }
        guard let digest = Self.rawDigest(layer.digest.hex) else { throw IndexError("layer \(layer.digest): not a sha256 digest") }
        let indexed: LayerCache.TOCIndexed
        let tail = TailReader(size: layer.size, fetch: layer.fetcher.fetch)
        do {
            indexed = try cache.indexFromTOC(layer.blob, digest: digest) { range in
                do { return try tail.read(range) } catch { throw Fetch(error: error) }
            }
        } catch let unsupported as TOCUnsupported {
            log.warn("\(unsupported); streaming the layer instead")
            return false
        } catch let failure as Fetch {
            log.warn("layer \(layer.digest): its TOC cannot be fetched, streaming the layer instead: \(failure.error)")
            return false
        }
        layer.tocPrefetch = indexed.prefetch
        log.info("layer \(layer.digest): indexed from its \(indexed.format) TOC (\(indexed.entryCount) entries)")
        return true
    }

    static func rawDigest(_ hex: String) -> [UInt8]? {
        let b = Array(hex.utf8)
        guard b.count == 64 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < 64 {
            guard let v = UInt8(String(decoding: b[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            out.append(v)
            i += 2
        }
        return out
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
