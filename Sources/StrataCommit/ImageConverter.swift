import StrataCodec
import StrataHash
import StrataOCI
import StrataSeekable
import StrataSystem
import StrataTar

public struct ConvertResult: Sendable {
    public var manifest: Descriptor
    public var config: Descriptor
    public var layers: [Descriptor]
    public var diffIDs: [Digest]
    /// Layers written anew (the others were already in the wanted encoding and are reused).
    public var rewritten: Int
}

/// `strata convert`: rewrites an image's layers in another encoding (eStargz, zstd:chunked,
/// gzip, zstd, none) into the same layout, with a new manifest (and a new config when diff_ids
/// change: the seekable writers re-write the tar headers and eStargz adds its TOC entry), tagged.
/// Like commit, blobs go first and index.json last.
public enum ImageConverter {
    public static func convert(_ image: ResolvedImage, to encoding: LayerEncoding, tag: String) throws -> ConvertResult {
        let writer = try ImageLayoutWriter(path: image.layoutPath)
        var layers: [Descriptor] = []
        var diffIDs: [Digest] = []
        var rewritten = 0
        for (i, layer) in image.layers.enumerated() {
            if isAlready(layer, encoding) {
                layers.append(ImageCommitter.ociLayer(layer.descriptor))
                diffIDs.append(layer.diffID)
                continue
            }
            let (descriptor, diffID) = try convertLayer(layer, at: image.layerLocation(i), to: encoding, layout: image.layoutPath)
            layers.append(descriptor)
            diffIDs.append(diffID)
            rewritten += 1
        }

        var config = image.configDescriptor
        config.mediaType = MediaType.ociConfig
        if diffIDs != image.layers.map(\.diffID) {
            let bytes = try ConfigEditor.replacingDiffIDs(base: image.configBytes, diffIDs: diffIDs)
            config = try writer.writeBlob(bytes, mediaType: MediaType.ociConfig)
        }
        let manifest = Manifest(config: config, layers: layers, annotations: image.manifest.annotations)
        var manifestDescriptor = try writer.writeJSON(manifest, mediaType: MediaType.ociManifest)
        manifestDescriptor.platform = image.platform
        try writer.tag(manifestDescriptor, as: tag)
        return ConvertResult(manifest: manifestDescriptor, config: config, layers: layers, diffIDs: diffIDs,
                             rewritten: rewritten)
    }

    /// Already in the wanted encoding: reused as is (converting twice gives the same image).
    static func isAlready(_ layer: LayerDescriptor, _ encoding: LayerEncoding) -> Bool {
        let annotations = layer.descriptor.annotations ?? [:]
        let estargz = annotations[EStargz.tocDigestAnnotation] != nil
        let chunked = ZstdChunked.Dialect.allCases.contains { annotations[$0.manifestChecksumKey] != nil }
        switch encoding {
        case .plain(let c): return !estargz && !chunked && compression(of: layer.format) == c
        case .seekable(.estargz): return layer.format == .gzip && estargz
        case .seekable(.zstdChunked): return layer.format == .zstd && chunked
        }
    }

    static func compression(of format: LayerFormat) -> LayerCompression {
        switch format {
        case .tar: .none
        case .gzip: .gzip
        case .zstd: .zstd
        }
    }

    /// The source tar is hashed as it is read and must match the layer's diff_id: a damaged
    /// source is refused rather than converted.
    private static func convertLayer(_ layer: LayerDescriptor, at location: BlobLocation, to encoding: LayerEncoding,
                                     layout: String) throws -> (Descriptor, Digest) {
        let name = "layer \(layer.descriptor.digest)"
        let input = try TarSourceFile(location: location, compression: compression(of: layer.format))
        defer { input.close() }
        let hashing = HashingTarSource(input.source)
        let blob = try BlobFile.create(layout: layout)
        do {
            let (diffID, annotations) = try encoding.encode(tar: TarSourceFile(file: input.file, source: hashing), into: blob.fd)
            try hashing.drain()
            let sourceDiffID = Digest(sha256Hex: hashing.hasher.finalizeHex())
            guard sourceDiffID == layer.diffID else {
                throw CommitError("\(name): its tar has sha256 \(sourceDiffID), not the diff_id \(layer.diffID) the config names")
            }
            var descriptor = try blob.adopt(mediaType: encoding.mediaType)
            if !annotations.isEmpty { descriptor.annotations = annotations }
            return (descriptor, diffID)
        } catch {
            blob.discard()
            if let error = error as? CommitError { throw error }
            throw CommitError("\(name): converting to \(encoding) failed: \(error)")
        }
    }
}

/// Passes a tar source through, hashing every byte (the source's diff_id).
final class HashingTarSource: TarSource {
    let inner: TarSource
    let hasher = SHA256Hasher()
    private var scratch = [UInt8](repeating: 0, count: 1 << 16)
    init(_ inner: TarSource) { self.inner = inner }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        return n
    }
    /// Reads what the tar reader left (padding after the end-of-archive blocks).
    func drain() throws {
        while try scratch.withUnsafeMutableBytes({ try read(into: $0) }) > 0 {}
    }
}
