import StrataCodec
import StrataFS
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataSystem

/// The steps every command shares: reference → resolved image → layer blobs → indexes.
enum ImageOpening {
    static func resolve(_ reference: String, platform: String?) throws -> ResolvedImage {
        let p = try platform.map { try Platform(parsing: $0) }
        return try ImageResolver.resolve(reference: reference, platform: p)
    }

    /// A resolved image and, for a `docker://` reference, the registry it comes from.
    struct Source {
        var image: ResolvedImage
        var remote: (reference: RegistryReference, client: RegistryClient)?

        /// The reference with the manifest digest it resolved to, so that a mount started from
        /// here (bundle) serves exactly this image even if the tag moves meanwhile.
        var pinnedReference: String? {
            guard let remote else { return nil }
            var r = remote.reference
            r.tag = nil
            r.digest = image.manifestDigest
            return r.description
        }
    }

    /// Resolves a local reference or a `docker://` one (the manifest fetched once: its digest is
    /// what everything after uses). `cache`: the strata cache directory whose manifest store
    /// serves what is named by digest (nil: the default cache's); a tag is asked of the
    /// registry as `--pull` says (every time by default).
    static func open(_ reference: String, platform: String?, registry: RegistryFlags, cache: String? = nil) throws -> Source {
        let p = try platform.map { try Platform(parsing: $0) }
        if let remote = try RegistryReference.parse(reference) {
            let client = try RegistryClient(remote, options: registry.options)
            let store = ManifestStore(cacheDirectory: cache ?? LayerCache.defaultDirectory)
            return Source(image: try RemoteImage.resolve(remote, client: client, platform: p, store: store, pull: registry.pull),
                          remote: (remote, client))
        }
        return Source(image: try ImageResolver.resolve(reference: reference, platform: p), remote: nil)
    }

    static func isRemote(_ reference: String) -> Bool { reference.hasPrefix("docker://") }

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
    /// suffix and an `oci-archive:` / `docker-archive:` / `oci:` transport stay as they are. A
    /// `docker://` reference names no path and stays as it is.
    static func absoluteReference(_ reference: String) -> String {
        if isRemote(reference) { return reference }
        for prefix in ["oci-archive:", "docker-archive:", "oci:"] where reference.hasPrefix(prefix) {
            let rest = String(reference.dropFirst(prefix.count))
            return prefix + FileIO.absolute(rest)
        }
        return FileIO.absolute(reference)
    }
}
