import StrataCodec
import StrataIndex
import StrataOCI
import StrataRegistry

/// What the store knows of one layer of an image, from its manifest and config alone.
public struct StoreLayer: Sendable, Equatable {
    public var digest: Digest
    public var size: UInt64
    /// The config's `rootfs.diff_ids[i]`.
    public var diffID: Digest
    public var compression: LayerCompression

    public init(digest: Digest, size: UInt64, diffID: Digest, compression: LayerCompression) {
        self.digest = digest; self.size = size; self.diffID = diffID; self.compression = compression
    }
}

/// A layer's raw blob, read verified (a lazy blob checks each fetched span against its index).
public protocol StoreBlob: Sendable {
    func read(offset: UInt64, count: Int) throws -> [UInt8]
}

/// A layer opened for serving: its own tree, the reader of its uncompressed stream, its blob.
public final class OpenedLayer: Sendable {
    public let layer: StoreLayer
    public let tree: LayerTree
    public let data: LayerData
    public let blob: any StoreBlob
    public let info: LayerInfo
    public let infoBytes: [UInt8]

    public init(layer: StoreLayer, tree: LayerTree, data: LayerData, blob: any StoreBlob) {
        self.layer = layer
        self.tree = tree
        self.data = data
        self.blob = blob
        info = LayerInfo(compressedDigest: layer.digest, compressedSize: layer.size, diffDigest: layer.diffID,
                         diffSize: tree.index.uncompressedSize, compression: layer.compression)
        infoBytes = info.json
    }
}

/// Where the store's layers come from (the registry, in `RegistryLayerSource`; tests may give
/// others). Both calls may be made concurrently.
public protocol LayerSource: Sendable {
    /// The layer `digest` of the image `reference` names; nil when that image has no such
    /// layer. Throws when it cannot tell (registry unreachable, nothing recorded).
    func layer(reference: RegistryReference, digest: Digest) throws -> StoreLayer?
    /// Finds or builds the layer's index and opens it (`spans`: the decoded-span cache).
    func open(reference: RegistryReference, layer: StoreLayer, spans: SpanCache) throws -> OpenedLayer
}
