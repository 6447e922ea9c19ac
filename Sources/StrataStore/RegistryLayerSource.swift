#if canImport(Glibc)
import Glibc
#endif
import StrataCodec
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataRemote
import StrataSystem

/// The store's layers from their registries, through the same client, lazy blobs, index lookup
/// (cache, published index artifact, else streamed once) and verification as `strata mount`
/// of a `docker://` image. Credentials come from `options` (the authfile and `--creds`, else
/// the default files), as for every other command.
///
/// A reference is resolved (manifest and config) the first time one of its layers is looked
/// up, and recorded (`StoreRecords`); later lookups, after a restart too, use the record
/// first, so a layer answered once stays answered even if the registry is down or the tag has
/// moved. A layer not in any recorded image of the reference makes it resolve again (a tag
/// that moved brings new layers); the new image is recorded beside the old ones.
public final class RegistryLayerSource: LayerSource {
    public let cache: LayerCache
    public let options: RegistryOptions
    public let records: StoreRecords
    public let backgroundRate: UInt64?
    public let backgroundFetch: Bool
    let log: RemoteLog

    struct State {
        var images: [RegistryReference: [ResolvedImage]] = [:]
        var clients: [String: RegistryClient] = [:]
        /// Opened images, by manifest digest: their lazy blobs and indexes.
        var remote: [Digest: RemoteLayers] = [:]
        var fetches: [BackgroundFetch] = []
        var prefetches: [PrefetchSession] = []
    }
    private let state = Locked(State())
    /// Indexing an image (maybe streaming its layers) happens once: one at a time.
    private let indexing = Lock()

    /// `backgroundFetch`: once an image's layers are indexed, fetch the rest of their blobs and
    /// verify them whole (at most `backgroundRate` bytes per second), as `strata mount` does.
    public init(cache: LayerCache, options: RegistryOptions, backgroundFetch: Bool, backgroundRate: UInt64?, log: RemoteLog) {
        self.cache = cache
        self.options = options
        self.records = StoreRecords(cacheDirectory: cache.directory)
        self.backgroundFetch = backgroundFetch
        self.backgroundRate = backgroundRate
        self.log = log
    }

    /// The reference as recorded and as c/image names it (no tag added when only a digest is given).
    static func key(_ reference: RegistryReference) -> String { reference.description }

    private func client(_ reference: RegistryReference) throws -> RegistryClient {
        let key = "\(reference.host)/\(reference.repository)"
        if let c = state.withLock({ $0.clients[key] }) { return c }
        let c = try RegistryClient(reference, options: options)
        return state.withLock { s in
            if let existing = s.clients[key] { return existing }
            s.clients[key] = c
            return c
        }
    }

    /// The images known for `reference`: in memory, else recorded on disk.
    private func known(_ reference: RegistryReference) -> [ResolvedImage] {
        if let images = state.withLock({ $0.images[reference] }) { return images }
        let recorded = records.manifests(of: Self.key(reference)).compactMap { records.image($0) }
        return state.withLock { s in
            if let images = s.images[reference] { return images }
            s.images[reference] = recorded
            return recorded
        }
    }

    private static func find(_ digest: Digest, in images: [ResolvedImage]) -> (ResolvedImage, StoreLayer)? {
        for image in images.reversed() {
            if let l = image.layers.first(where: { $0.descriptor.digest == digest }) {
                let compression: LayerCompression = switch l.format {
                case .tar: .none
                case .gzip: .gzip
                case .zstd: .zstd
                }
                return (image, StoreLayer(digest: digest, size: UInt64(max(l.descriptor.size, 0)), diffID: l.diffID,
                                          compression: compression))
            }
        }
        return nil
    }

    public func layer(reference: RegistryReference, digest: Digest) throws -> StoreLayer? {
        if let (_, layer) = Self.find(digest, in: known(reference)) { return layer }
        guard digest.isVerifiable else { return nil }
        let image: ResolvedImage
        do {
            image = try RemoteImage.resolve(reference, client: try client(reference), platform: nil)
        } catch let error as RegistryError where error.kind == .notFound {
            return nil   // no such image (or no manifest for this platform): the layer is unknown
        }
        state.withLock { s in
            var images = s.images[reference] ?? []
            if !images.contains(where: { $0.manifestDigest == image.manifestDigest }) { images.append(image) }
            s.images[reference] = images
        }
        do { try records.record(image, reference: Self.key(reference)) } catch {
            log.error("\(reference): not recorded in \(records.directory) (a restart will resolve it again): \(error)")
        }
        return Self.find(digest, in: [image])?.1
    }

    public func open(reference: RegistryReference, layer: StoreLayer, spans: SpanCache) throws -> OpenedLayer {
        guard let (image, _) = Self.find(layer.digest, in: known(reference)) else {
            throw RemoteError("\(reference): no image holds layer \(layer.digest)")
        }
        let remote = try indexed(image, reference: reference)
        guard let remoteLayer = remote.layers.first(where: { $0.digest == layer.digest }) else {
            throw RemoteError("\(reference): no image holds layer \(layer.digest)")
        }
        // The entries are read to build the layer's tree: the index is checked in full.
        guard let index = cache.load(digestHex: layer.digest.hex, verify: true) else {
            throw RemoteError("layer \(layer.digest): its index is not in \(cache.directory)")
        }
        let data = try LayerData(index: index, blob: remoteLayer.blob, number: remoteLayer.number, cache: spans,
                                 copyPath: cache.dataPath(digestHex: layer.digest.hex), indexCache: cache)
        let blob = try LazyBlobReader(remoteLayer.lazy)
        return OpenedLayer(layer: layer, tree: LayerTree(index: index), data: data, blob: blob)
    }

    /// The image's layers with their indexes found or built, opened once per image.
    private func indexed(_ image: ResolvedImage, reference: RegistryReference) throws -> RemoteLayers {
        if let r = state.withLock({ $0.remote[image.manifestDigest] }) { return r }
        return try indexing.withLock {
            if let r = state.withLock({ $0.remote[image.manifestDigest] }) { return r }
            let layers = try RemoteLayers(image: image, client: try client(reference), cache: cache, log: log)
            try layers.index()
            let fetch = backgroundFetch ? BackgroundFetch(layers: layers, bytesPerSecond: backgroundRate) : nil
            if fetch == nil {
                for layer in layers.layers where layer.background == .pending { layer.markBackgroundOff() }
            }
            // As a mount does: the image's prefetch list (recorded here, or published with its
            // index) is replayed right away, and what podman's reads fetch is recorded.
            let prefetch = PrefetchSession(layers)
            state.withLock { s in
                s.remote[image.manifestDigest] = layers
                if let fetch { s.fetches.append(fetch) }
                s.prefetches.append(prefetch)
            }
            prefetch.start(afterExtra: { fetch?.start() })
            return layers
        }
    }

    /// The prefetch lists' ranges replayed so far, and those given up on, over every image opened.
    public var replays: (done: Int, failed: Int) {
        state.withLock { $0.prefetches }.reduce(into: (0, 0)) { sum, p in
            let r = p.replayed
            sum.0 += r.done
            sum.1 += r.failed
        }
    }

    /// Stops the prefetches (storing what they recorded) and the background fetches (at unmount).
    public func stop() {
        for prefetch in state.withLock({ $0.prefetches }) { prefetch.stop() }
        for fetch in state.withLock({ $0.fetches }) { fetch.stop() }
    }
}

/// A lazy blob read as a file: what is missing is fetched (verified span by span) first.
final class LazyBlobReader: StoreBlob {
    let lazy: LazyBlob
    let file: FileDescriptor

    init(_ lazy: LazyBlob) throws {
        self.lazy = lazy
        file = try FileDescriptor.open(lazy.path, O_RDONLY | O_CLOEXEC)
    }

    deinit { file.close() }

    func read(offset: UInt64, count: Int) throws -> [UInt8] {
        let end = min(lazy.size, offset + UInt64(count))
        guard offset < end else { return [] }
        try lazy.ensure(offset..<end, purpose: .demand)
        var bytes = [UInt8](repeating: 0, count: Int(end - offset))
        let n = try bytes.withUnsafeMutableBytes { try file.readFully(into: $0, at: offset) }
        return Array(bytes.prefix(n))
    }
}
