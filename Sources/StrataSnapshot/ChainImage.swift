import StrataCommit
import StrataOCI

/// Chain images: a manifest (and config) listing a committed snapshot's layers from the root
/// down to it, so the existing mount path serves the snapshot without knowing about the store.
enum ChainImage {
    /// The layerless image parentless snapshots are mounted on; written once, tagged
    /// `strata-empty`. Its bytes are fixed, so writing it again changes nothing.
    static func ensureEmpty(_ writer: ImageLayoutWriter) throws -> Descriptor {
        let host = Platform.host
        let config = ImageConfig(architecture: host.architecture, os: host.os, rootfs: .init(diffIDs: []))
        let configDescriptor = try writer.writeJSON(config, mediaType: MediaType.ociConfig)
        var manifest = try writer.writeJSON(Manifest(config: configDescriptor, layers: []), mediaType: MediaType.ociManifest)
        manifest.platform = Platform(os: host.os, architecture: host.architecture, variant: host.variant)
        let existing = try writer.layout.index().manifests.first { $0.refName == StorePaths.emptyImageTag }
        if existing?.digest != manifest.digest { try writer.tag(manifest, as: StorePaths.emptyImageTag) }
        return manifest
    }

    /// The first `count` layers of `image` as an image of their own: the config keeps
    /// everything but has only those diff_ids and the history entries up to them, so the
    /// image stays valid (history's non-empty entries match the layers).
    static func prefix(of image: ResolvedImage, count: Int, writer: ImageLayoutWriter) throws -> Descriptor {
        guard case .object(var config) = try JSONCoding.decode(JSONValue.self, from: image.configBytes,
                                                                what: "config \(image.configDescriptor.digest)") else {
            throw SnapshotError(.other, "config \(image.configDescriptor.digest): not a JSON object")
        }
        var rootfs: [String: JSONValue] = ["type": .string("layers")]
        if case .object(let existing)? = config["rootfs"] { rootfs = existing }
        rootfs["diff_ids"] = .array(image.layers.prefix(count).map { .string($0.diffID.description) })
        config["rootfs"] = .object(rootfs)
        if case .array(let history)? = config["history"] {
            var kept: [JSONValue] = []
            var layers = 0
            for entry in history {
                var empty = false
                if case .object(let fields) = entry, case .bool(let flag)? = fields["empty_layer"] { empty = flag }
                if !empty && layers == count { break }
                kept.append(entry)
                if !empty { layers += 1 }
            }
            config["history"] = .array(kept)
        }
        let bytes = try JSONCoding.encode(JSONValue.object(config))
        let configDescriptor = try writer.writeBlob(bytes, mediaType: MediaType.ociConfig)
        let layers = image.manifest.layers.prefix(count).map(ociLayer)
        var manifest = try writer.writeJSON(Manifest(config: configDescriptor, layers: Array(layers)),
                                            mediaType: MediaType.ociManifest)
        manifest.platform = image.platform
        return manifest
    }

    /// An image's own manifest and config, stored byte for byte in the store's layout.
    static func copy(of image: ResolvedImage, writer: ImageLayoutWriter) throws -> Descriptor {
        try writer.writeBlob(image.configBytes, mediaType: image.configDescriptor.mediaType)
        var manifest = try writer.writeBlob(image.manifestBytes, mediaType: image.manifestDescriptor.mediaType)
        manifest.platform = image.platform
        return manifest
    }

    /// Docker layer media types under their OCI names (same bytes), for manifests we write.
    static func ociLayer(_ d: Descriptor) -> Descriptor {
        let names = [
            MediaType.dockerLayerGzip: MediaType.ociLayerGzip, MediaType.dockerLayerTar: MediaType.ociLayerTar,
            MediaType.dockerLayerZstd: MediaType.ociLayerZstd,
            MediaType.dockerForeignLayerGzip: MediaType.ociLayerNondistributableGzip,
            MediaType.dockerForeignLayerTar: MediaType.ociLayerNondistributableTar,
        ]
        var d = d
        d.mediaType = names[d.mediaType] ?? d.mediaType
        d.annotations = nil
        return d
    }
}
