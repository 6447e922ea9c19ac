extension ResolvedImage {
    /// Builds the image from its manifest and config, both already read and verified against
    /// their digests by the caller (a layout, an archive or a registry): checks the config
    /// against the manifest, maps layer media types to formats and, when `explicitPlatform` is
    /// given, enforces it. `source` is the layout path or reference; `place` ends the names in
    /// errors (" in DIR", or "" when the source is already in the name).
    public static func assemble(source: String, place: String, manifestDescriptor: Descriptor, manifestBytes: [UInt8],
                                manifest: Manifest, configBytes: [UInt8], explicitPlatform: Platform?,
                                indexChain: [Digest]) throws -> ResolvedImage {
        let name = "manifest \(manifestDescriptor.digest)\(place)"
        guard MediaType.isConfig(manifest.config.mediaType) else {
            throw OCIError("\(name): config media type \"\(manifest.config.mediaType)\" is not an image config")
        }
        let configName = "config \(manifest.config.digest)\(place)"
        let config = try ImageConfig.decodeChecked(configBytes, name: configName, owner: name,
                                                   layerCount: manifest.layers.count,
                                                   configReference: manifest.config.digest.description)
        var layers: [LayerDescriptor] = []
        for (i, layer) in manifest.layers.enumerated() {
            let format: LayerFormat
            do {
                format = try MediaType.layerFormat(layer.mediaType)
            } catch let error as OCIError {
                throw OCIError("\(name): layer \(i) (\(layer.digest)): \(error.message)")
            }
            layers.append(LayerDescriptor(descriptor: layer, format: format, diffID: config.rootfs.diffIDs[i]))
        }
        var platform = config.platform
        if platform.variant == nil { platform.variant = manifestDescriptor.platform?.variant }
        // Only a platform asked for is enforced: mounting a foreign image to look inside is fine.
        if let wanted = explicitPlatform, !wanted.matches(platform) {
            throw OCIError("\(name): image is for \(platform), not \(wanted)")
        }
        return ResolvedImage(layoutPath: source, manifestDescriptor: manifestDescriptor, manifest: manifest,
                             manifestBytes: manifestBytes, config: config, configBytes: configBytes,
                             layers: layers, platform: platform, indexChain: indexChain)
    }
}
