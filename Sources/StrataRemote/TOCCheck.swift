import StrataIndex

/// The background check of a registry layer indexed from its table of contents, once its blob
/// is complete: `TOCStreamCheck` (shared with local layers) on the local copy of the blob.
enum TOCCheck {
    /// Whether the layer's cached index came from a TOC and its stream is not checked yet.
    static func pending(_ layer: RemoteLayer, cache: LayerCache) -> Bool {
        TOCStreamCheck.pending(digestHex: layer.digest.hex, cache: cache)
    }

    static func verify(_ layer: RemoteLayer, cache: LayerCache) throws {
        try TOCStreamCheck.verify(layer.localBlob, cache: cache)
    }
}
