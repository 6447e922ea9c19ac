import StrataCodec
import StrataOCI
import StrataSystem

/// A layer written but not yet part of the layout: its blob is still a temporary file.
public struct PendingLayer {
    let blob: BlobFile
    public let diffID: Digest
    public let mediaType: String
    /// Entries that could not be stored (sockets), one line each.
    public let warnings: [String]
    /// For the layer's descriptor (eStargz and zstd:chunked: where the TOC is and its digest).
    public var annotations: [String: String] = [:]
}

public struct CommitResult: Sendable {
    public var layer: Descriptor
    public var diffID: Digest
    public var config: Descriptor
    public var manifest: Descriptor
    public var warnings: [String]
}

/// `strata commit`: an overlayfs upper directory becomes a new layer on top of a base image,
/// with a new config and manifest, tagged in the base image's layout.
///
/// Two steps, so the caller can release the lower view (a strata mount) between them:
/// `writeLayer` reads the upper (and the lower where needed) into a temporary blob;
/// `publish` then writes, in this order, the layer blob, the config, the manifest, and last
/// index.json. Each is atomic (write, fsync, rename) and the blobs are referenced by nothing
/// until index.json names the manifest, so an interruption at any point leaves every existing
/// tag as it was.
public enum ImageCommitter {
    /// Whether `writeLayer` will need a view of the lower image for this upper.
    public static func needsLower(upper: String) throws -> Bool {
        try checkUpper(upper)
        return try OverlayUpper.needsLower(root: upper)
    }

    public static func writeLayer(upper: String, lowerRoot: String?, layoutPath: String,
                                  compression: LayerCompression) throws -> PendingLayer {
        try writeLayer(upper: upper, lowerRoot: lowerRoot, layoutPath: layoutPath, encoding: .plain(compression))
    }

    /// A seekable encoding writes the tar uncompressed to a temporary file first, then the
    /// format's writer turns it into the blob (it cuts members/frames at file boundaries).
    public static func writeLayer(upper: String, lowerRoot: String?, layoutPath: String,
                                  encoding: LayerEncoding) throws -> PendingLayer {
        if case .plain(let compression) = encoding {
            return try writePlainLayer(upper: upper, lowerRoot: lowerRoot, layoutPath: layoutPath, compression: compression)
        }
        let tar = try writePlainLayer(upper: upper, lowerRoot: lowerRoot, layoutPath: layoutPath, compression: .none)
        defer { tar.blob.discard() }
        let blob = try BlobFile.create(layout: layoutPath)
        do {
            let size = try tar.blob.fd.stat().st_size
            let (diffID, annotations) = try encoding.encode(tar: TarSourceFile(descriptor: tar.blob.fd, size: UInt64(size)),
                                                            into: blob.fd)
            var layer = PendingLayer(blob: blob, diffID: diffID, mediaType: encoding.mediaType, warnings: tar.warnings)
            layer.annotations = annotations
            return layer
        } catch {
            blob.discard()
            if let error = error as? CommitError { throw error }
            throw CommitError("\(layoutPath): writing the \(encoding) layer failed: \(error)")
        }
    }

    private static func writePlainLayer(upper: String, lowerRoot: String?, layoutPath: String,
                                        compression: LayerCompression) throws -> PendingLayer {
        try checkUpper(upper)
        var walker = UpperWalker(upperRoot: upper, lowerRoot: lowerRoot)
        let items = try walker.walk()
        let blob = try BlobFile.create(layout: layoutPath)
        do {
            // One gzip member / zstd frames of 4 MiB: strata indexes a zstd layer at frame
            // starts, so frames keep random reads of the new image cheap.
            let compressor = try CompressingWriter(compression: compression, file: blob.fd, level: nil,
                                                   zstdFrameSize: compression == .zstd ? 4 << 20 : nil)
            let stream = TarStream(compressor: compressor)
            var writer = LayerWriter(stream: stream)
            try writer.write(items)
            let diffID = Digest(sha256Hex: try stream.finish())
            CrashPoint.reached(.layer)
            return PendingLayer(blob: blob, diffID: diffID, mediaType: mediaType(compression), warnings: walker.warnings)
        } catch {
            blob.discard()
            if let error = error as? CommitError { throw error }
            throw CommitError("\(layoutPath): writing the layer failed: \(error)")
        }
    }

    /// Drops a layer that will not be published.
    public static func discard(_ layer: PendingLayer) { layer.blob.discard() }

    /// Stores the layer, config and manifest, then points `tag` at the manifest.
    /// `created` is an RFC 3339 time for the config and its history entry.
    public static func publish(_ layer: PendingLayer, base: ResolvedImage, tag: String,
                               message: String?, created: String) throws -> CommitResult {
        let writer = try ImageLayoutWriter(path: base.layoutPath)
        var layerDescriptor = try layer.blob.adopt(mediaType: layer.mediaType)
        if !layer.annotations.isEmpty { layerDescriptor.annotations = layer.annotations }
        CrashPoint.reached(.blob)

        let configBytes = try ConfigEditor.committed(base: base.configBytes, diffID: layer.diffID,
                                                     created: created, message: message)
        let config = try writer.writeBlob(configBytes, mediaType: MediaType.ociConfig)
        CrashPoint.reached(.config)

        var annotations = ["org.opencontainers.image.base.digest": base.manifestDigest.description]
        if let name = base.manifestDescriptor.refName { annotations["org.opencontainers.image.base.name"] = name }
        let manifest = Manifest(config: config, layers: base.manifest.layers.map(ociLayer) + [layerDescriptor],
                                annotations: annotations)
        var manifestDescriptor = try writer.writeJSON(manifest, mediaType: MediaType.ociManifest)
        CrashPoint.reached(.manifest)

        manifestDescriptor.platform = base.platform
        try writer.tag(manifestDescriptor, as: tag)
        return CommitResult(layer: layerDescriptor, diffID: layer.diffID, config: config,
                            manifest: manifestDescriptor, warnings: layer.warnings)
    }

    static func mediaType(_ compression: LayerCompression) -> String {
        switch compression {
        case .gzip: MediaType.ociLayerGzip
        case .zstd: MediaType.ociLayerZstd
        case .none: MediaType.ociLayerTar
        }
    }

    /// The new manifest is an OCI one; a Docker base's layers are the same bytes under the OCI
    /// names, so only the media type changes.
    static func ociLayer(_ d: Descriptor) -> Descriptor {
        var d = d
        d.mediaType = MediaType.ociLayerType(d.mediaType)
        return d
    }

    private static func checkUpper(_ upper: String) throws {
        guard FileIO.isDirectory(upper) else { throw CommitError("\(upper): upper directory not found or not a directory") }
    }
}
