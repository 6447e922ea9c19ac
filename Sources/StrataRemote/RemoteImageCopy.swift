import StrataIndex
import StrataOCI
import StrataRegistry
import StrataSystem

/// A registry image written whole into a local OCI layout (for `strata snapshot import`,
/// whose store keeps layer blobs itself): every layer blob is completed in the cache's lazy
/// blobs (shared with mounts), copied into the layout and checked against its digest there.
public enum RemoteImageCopy {
    /// Writes manifest, config and layers of `image` into the layout at `layout` (created),
    /// tagged `tag`; returns the layout reference `layout:tag`.
    public static func copy(_ image: ResolvedImage, client: RegistryClient, cache: LayerCache,
                            to layout: String, tag: String) throws -> String {
        let writer = try ImageLayoutWriter(path: layout)
        for (i, layer) in image.layers.enumerated() {
            let d = layer.descriptor
            try d.digest.requireVerifiable("layer \(d.digest)")
            let fetcher = RegistryBlobFetcher(client: client, digest: d.digest)
            let lazy = try LazyBlob(cache: cache, digestHex: d.digest.hex, size: UInt64(max(d.size, 0)), fetcher: fetcher)
            var blob = LayerBlob(path: lazy.path, descriptor: d, format: layer.format,
                                 diffID: DiffIDClaim(number: i, digest: layer.diffID))
            blob.lazy = lazy
            // Indexing streams a layer with no index (verifying it whole); one already indexed
            // gives the span digests its remaining bytes are fetched and checked against.
            // (The cache records only verified bytes: a failure leaves nothing wrong behind.)
            _ = try cache.index(blob)
            if !lazy.isComplete { try lazy.fillRemaining(bytesPerSecond: nil, shouldStop: { false }) }
            let written = try writer.writeBlob(fromFile: lazy.path, mediaType: d.mediaType)
            guard written.digest == d.digest, written.size == d.size else {
                // Nothing wrong stays cached.
                lazy.discard()
                throw RemoteError("layer \(d.digest) from \(image.layoutPath): digest mismatch: the blob hashes to \(written.digest) (\(written.size) bytes)")
            }
        }
        _ = try writer.writeBlob(image.configBytes, mediaType: image.configDescriptor.mediaType)
        let manifest = try writer.writeBlob(image.manifestBytes, mediaType: image.manifestDescriptor.mediaType)
        try writer.tag(manifest, as: tag)
        return "\(layout):\(tag)"
    }
}
