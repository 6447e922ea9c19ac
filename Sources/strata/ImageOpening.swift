import StrataCodec
import StrataFS
import StrataIndex
import StrataOCI

/// The steps every command shares: reference → resolved image → layer blobs → indexes.
enum ImageOpening {
    static func resolve(_ reference: String, platform: String?) throws -> ResolvedImage {
        let p = try platform.map { try Platform(parsing: $0) }
        return try ImageResolver.resolve(reference: reference, platform: p)
    }

    static func blobs(of image: ResolvedImage) throws -> [LayerBlob] {
        let layout = try ImageLayout(path: image.layoutPath)
        return try image.layers.enumerated().map { i, layer in
            try layer.descriptor.digest.requireVerifiable("layer \(layer.descriptor.digest)")
            // Indexing (or the cached index's record) checks the layer's diff_id.
            return LayerBlob(path: layout.blobPath(layer.descriptor.digest), descriptor: layer.descriptor, format: layer.format,
                             diffID: DiffIDClaim(number: i, digest: layer.diffID))
        }
    }

    static func cache(_ directory: String?) throws -> LayerCache {
        try LayerCache(directory: directory ?? LayerCache.defaultDirectory)
    }
}
