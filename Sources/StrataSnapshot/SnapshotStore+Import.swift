#if canImport(Glibc)
import Glibc
#endif
import StrataHash
import StrataIndex
import StrataOCI
import StrataSystem

extension SnapshotStore {
    /// Brings an image into the store as a chain of committed snapshots, without extracting
    /// it: its layer blobs are hard-linked (copied across file systems) into ROOT/layout and
    /// indexed into ROOT/cache, which also verifies them against their digests and diff_ids.
    ///
    /// Naming, as containerd's unpacker does for the layers below the top: layer i < n-1
    /// becomes the snapshot keyed by its chain ID ("sha256:..." of the layers 0...i, per the
    /// image spec), shared with every other image built on the same layers (an existing one is
    /// reused). The top layer becomes `name`, whose chain image is the image's own manifest
    /// and config, so its command and environment stay with it. Returns the keys, root first.
    @discardableResult
    public func importImage(_ reference: String, as name: String, platform: Platform? = nil) throws -> [String] {
        try Self.checkKey(name, what: "name")
        let image: ResolvedImage
        do { image = try ImageResolver.resolve(reference: reference, platform: platform) } catch {
            throw SnapshotError(.other, "\(error)")
        }
        guard !image.layers.isEmpty else {
            throw SnapshotError(.other, "image \(reference) has no layers: nothing to import (prepare a snapshot without a parent instead)")
        }
        return try transaction(.change) { metadata in
            if metadata.snapshots[name] != nil {
                throw SnapshotError(.alreadyExists, "snapshot \"\(name)\" already exists")
            }
            // Chain IDs name snapshots other images share, so they come only from diff_ids
            // verified here: each layer is indexed (from the image's own blob, so a lying
            // image leaves nothing in the store), which checks its digest and its diff_id.
            let cache = try self.cache
            for (i, layer) in image.layers.enumerated() {
                do {
                    try layer.descriptor.digest.requireVerifiable("layer \(layer.descriptor.digest)")
                    _ = try cache.index(LayerBlob(location: image.layerLocation(i), descriptor: layer.descriptor,
                                                  format: layer.format, diffID: DiffIDClaim(number: i, digest: layer.diffID)))
                } catch {
                    throw SnapshotError(.other, "image \(reference): \(error)")
                }
            }
            let chainIDs = Self.chainIDs(image.layers.map(\.diffID))
            let keys = chainIDs.dropLast().map(\.description) + [name]
            let writer = try ensureLayout()
            var parent: String?
            for (i, layer) in image.layers.enumerated() {
                let key = keys[i]
                if let existing = metadata.snapshots[key] {
                    // A chain ID names exactly this stack of layers: reuse it when it is that.
                    guard existing.kind == .committed, existing.diffID == layer.diffID, existing.parent == parent else {
                        throw SnapshotError(.alreadyExists, "snapshot \"\(key)\" already exists and is not layer \(i) of \(reference)")
                    }
                    parent = key
                    continue
                }
                let stored = try storeBlob(layer.descriptor, from: image.layerLocation(i))
                // The store's copy has the digest just verified: its index is the one made above.
                do { _ = try cache.index(try layerBlob(stored, diffID: layer.diffID, number: i)) } catch {
                    throw SnapshotError(.other, "image \(reference): \(error)")
                }
                let id = metadata.nextID
                var chainImage = i == image.layers.count - 1
                    ? try ChainImage.copy(of: image, writer: writer)
                    : try ChainImage.prefix(of: image, count: i + 1, writer: writer)
                try writer.tag(chainImage, as: SnapshotRecord.tag(id: id))
                chainImage.annotations = nil
                metadata.nextID = id + 1
                metadata.snapshots[key] = SnapshotRecord(id: id, kind: .committed, parent: parent, created: Self.now,
                                                         layer: stored, diffID: layer.diffID, image: chainImage)
                parent = key
            }
            return keys
        }
    }

    /// The blob in the store: an existing one is kept, else a hard link, else a copy (always a
    /// copy of an archive's member).
    private func storeBlob(_ d: Descriptor, from source: BlobLocation) throws -> Descriptor {
        try d.digest.requireVerifiable("layer \(d.digest)")
        let target = "\(paths.layout)/blobs/sha256/\(d.digest.hex)"
        var layer = ChainImage.ociLayer(d)
        layer.urls = nil
        if FileIO.exists(target) { return layer }
        let from = source.path
        if source.isWholeFile && link(from, target) == 0 { return layer }
        let copied = try ImageLayoutWriter(path: paths.layout).writeBlob(fromFile: from, mediaType: layer.mediaType,
                                                                         range: source.isWholeFile ? nil : (source.offset, source.size))
        guard copied.digest == d.digest, copied.size == d.size else {
            throw SnapshotError(.other, "layer \(d.digest): \(from) holds \(copied.size) bytes of digest \(copied.digest)")
        }
        return layer
    }

    /// Image-spec chain IDs: ChainID(L0) = DiffID(L0); ChainID(L0|...|Ln) =
    /// sha256(ChainID(L0|...|Ln-1) + " " + DiffID(Ln)).
    static func chainIDs(_ diffIDs: [Digest]) -> [Digest] {
        var result: [Digest] = []
        for diffID in diffIDs {
            if let last = result.last {
                result.append(Digest.sha256(of: Array("\(last) \(diffID)".utf8)))
            } else {
                result.append(diffID)
            }
        }
        return result
    }
}
