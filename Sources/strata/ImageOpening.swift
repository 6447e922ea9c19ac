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

    /// Each layer's blob: a layout's blob file, or its range in an image archive (read in place).
    static func blobs(of image: ResolvedImage) throws -> [LayerBlob] {
        try image.layers.enumerated().map { i, layer in
            try layer.descriptor.digest.requireVerifiable("layer \(layer.descriptor.digest)")
            // Indexing (or the cached index's record) checks the layer's diff_id.
            return LayerBlob(location: image.layerLocation(i), descriptor: layer.descriptor, format: layer.format,
                             diffID: DiffIDClaim(number: i, digest: layer.diffID))
        }
    }

    static func cache(_ directory: String?) throws -> LayerCache {
        try LayerCache(directory: directory ?? LayerCache.defaultDirectory)
    }

    /// The reference with its path made absolute (daemons run from "/"); the `:TAG`, `@DIGEST`
    /// suffix and an `oci-archive:` / `docker-archive:` / `oci:` transport stay as they are.
    static func absoluteReference(_ reference: String) -> String {
        for prefix in ["oci-archive:", "docker-archive:", "oci:"] where reference.hasPrefix(prefix) {
            let rest = String(reference.dropFirst(prefix.count))
            return prefix + (rest.hasPrefix("/") ? rest : MountCommand.absolute(rest))
        }
        return reference.hasPrefix("/") ? reference : MountCommand.absolute(reference)
    }
}
