import Foundation
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
        guard var config = try JSONSerialization.jsonObject(with: Data(image.configBytes)) as? [String: Any] else {
            throw SnapshotError(.other, "config \(image.configDescriptor.digest): not a JSON object")
        }
        var rootfs = config["rootfs"] as? [String: Any] ?? ["type": "layers"]
        rootfs["diff_ids"] = image.layers.prefix(count).map { $0.diffID.description }
        config["rootfs"] = rootfs
        if let history = config["history"] as? [[String: Any]] {
            var kept: [[String: Any]] = []
            var layers = 0
            for entry in history {
                let empty = entry["empty_layer"] as? Bool ?? false
                if !empty && layers == count { break }
                kept.append(entry)
                if !empty { layers += 1 }
            }
            config["history"] = kept
        }
        let bytes = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .withoutEscapingSlashes])
        let configDescriptor = try writer.writeBlob(Array(bytes), mediaType: MediaType.ociConfig)
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
