/// One platform's image, resolved from a reference: its manifest and config (decoded, and the
/// exact verified bytes) and its layers in order, lowest first.
public struct ResolvedImage: Sendable {
    public var layoutPath: String
    /// The descriptor that led to the manifest (from index.json or a nested index).
    public var manifestDescriptor: Descriptor
    public var manifestDigest: Digest { manifestDescriptor.digest }
    public var manifest: Manifest
    public var manifestBytes: [UInt8]
    public var configDescriptor: Descriptor { manifest.config }
    public var config: ImageConfig
    /// The config exactly as stored: unknown keys survive only here.
    public var configBytes: [UInt8]
    /// Same bytes as `configBytes`, under the name later commands use for re-serialisation.
    public var rawJSON: [UInt8] { configBytes }
    public var layers: [LayerDescriptor]
    public var platform: Platform
    /// The digests of the image indexes followed from index.json down to the manifest.
    public var indexChain: [Digest]
    /// Where each layer's blob is (same order as `layers`): in an archive, a member's range.
    public var layerLocations: [BlobLocation] = []
    /// What `layoutPath` is: a layout directory or an image archive (read in place).
    public var transport: ImageTransport = .layout

    /// The location of layer `i`'s blob.
    public func layerLocation(_ i: Int) -> BlobLocation {
        if i < layerLocations.count { return layerLocations[i] }
        let d = layers[i].descriptor
        return BlobLocation(path: "\(layoutPath)/blobs/\(d.digest.algorithm)/\(d.digest.hex)", offset: 0,
                            size: UInt64(max(d.size, 0)), isWholeFile: true)
    }

    public init(layoutPath: String, manifestDescriptor: Descriptor, manifest: Manifest, manifestBytes: [UInt8],
                config: ImageConfig, configBytes: [UInt8], layers: [LayerDescriptor], platform: Platform,
                indexChain: [Digest] = []) {
        self.layoutPath = layoutPath
        self.manifestDescriptor = manifestDescriptor
        self.manifest = manifest
        self.manifestBytes = manifestBytes
        self.config = config
        self.configBytes = configBytes
        self.layers = layers
        self.platform = platform
        self.indexChain = indexChain
    }
}

/// A layer of a resolved image with its storage format and its uncompressed digest.
public struct LayerDescriptor: Hashable, Sendable {
    public var descriptor: Descriptor
    public var format: LayerFormat
    /// `rootfs.diff_ids[i]`: the sha256 of the uncompressed tar.
    public var diffID: Digest

    public init(descriptor: Descriptor, format: LayerFormat, diffID: Digest) {
        self.descriptor = descriptor
        self.format = format
        self.diffID = diffID
    }
}
