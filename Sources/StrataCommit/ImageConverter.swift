#if canImport(Glibc)
import Glibc
#endif
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
    /// With a read record: files moved to the front of their layer, and the record's distinct
    /// paths no rewritten layer holds (where its layerIndex, or any layer, says).
    public var prioritizedFiles = 0
    public var unknownRecordPaths = 0
}

/// `strata convert`: rewrites an image's layers in another encoding (eStargz, zstd:chunked,
/// gzip, zstd, none) into the same layout, with a new manifest (and a new config when diff_ids
/// change: the seekable writers re-write the tar headers and eStargz adds its TOC entry), tagged.
/// Like commit, blobs go first and index.json last.
public enum ImageConverter {
    /// `record` (estargz and zstd:chunked only): the files a workload reads, put first in their
    /// layers (`Prioritization`). A record entry's layerIndex names its layer; without one, the
    /// topmost layer holding the path. Layers are then converted top layer first.
    public static func convert(_ image: ResolvedImage, to encoding: LayerEncoding, tag: String,
                               record: ReadRecord? = nil) throws -> ConvertResult {
        if record != nil, case .plain = encoding {
            throw CommitError("a read record orders eStargz and zstd:chunked layers only, not \(encoding)")
        }
        let writer = try ImageLayoutWriter(path: image.layoutPath)
        var layers = [Descriptor?](repeating: nil, count: image.layers.count)
        var diffIDs = [Digest?](repeating: nil, count: image.layers.count)
        var rewritten = 0
        var claimed: Set<String> = []      // unindexed record paths an upper layer holds
        var known: Set<String> = []        // record paths found where the record says
        var moved = 0
        let order = record == nil ? Array(image.layers.indices) : image.layers.indices.reversed()
        for i in order {
            let layer = image.layers[i]
            // With a record every layer is rewritten: one already seekable is reordered too.
            if record == nil, isAlready(layer, encoding) {
                layers[i] = ImageCommitter.ociLayer(layer.descriptor)
                diffIDs[i] = layer.diffID
                continue
            }
            func mine(_ e: ReadRecord.Entry) -> Bool {
                if let index = e.layerIndex { return index == i }
                return !claimed.contains(e.path)
            }
            var paths: [String]?
            if let record {
                var seen: Set<String> = []
                paths = record.entries.compactMap { e in mine(e) && seen.insert(e.path).inserted ? e.path : nil }
            }
            let (descriptor, diffID, result) = try convertLayer(layer, at: image.layerLocation(i), to: encoding,
                                                                layout: image.layoutPath, prioritized: paths)
            if let record, let result {
                for e in record.entries where result.present.contains(e.path) && mine(e) { known.insert(e.path) }
                for e in record.entries where e.layerIndex == nil && result.present.contains(e.path) { claimed.insert(e.path) }
                moved += result.moved.count
            }
            layers[i] = descriptor
            diffIDs[i] = diffID
            rewritten += 1
        }
        let unknown = record.map { Set($0.entries.map(\.path)).subtracting(known).count } ?? 0
        return try finish(image, writer: writer, layers: layers.map { $0! }, diffIDs: diffIDs.map { $0! }, tag: tag,
                          rewritten: rewritten, prioritized: moved, unknown: unknown)
    }

    private static func finish(_ image: ResolvedImage, writer: ImageLayoutWriter, layers: [Descriptor], diffIDs: [Digest],
                               tag: String, rewritten: Int, prioritized: Int, unknown: Int) throws -> ConvertResult {
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
                             rewritten: rewritten, prioritizedFiles: prioritized, unknownRecordPaths: unknown)
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
    /// source is refused rather than converted. With `prioritized` paths the source is read
    /// twice (`PrioritizedTarInput`), each pass checked so.
    private static func convertLayer(_ layer: LayerDescriptor, at location: BlobLocation, to encoding: LayerEncoding,
                                     layout: String, prioritized: [String]? = nil) throws -> (Descriptor, Digest, PrioritizationResult?) {
        let name = "layer \(layer.descriptor.digest)"
        let compression = compression(of: layer.format)
        let input = try TarSourceFile(location: location, compression: compression)
        defer { input.close() }
        let hashing = HashingTarSource(input.source)
        let blob = try BlobFile.create(layout: layout)
        var second: (file: TarSourceFile, hashing: HashingTarSource)?
        var spool: FileDescriptor?
        defer { second?.file.close(); spool?.close() }
        func check(_ hashing: HashingTarSource) throws {
            try hashing.drain()
            let sourceDiffID = Digest(sha256Hex: hashing.hasher.finalizeHex())
            guard sourceDiffID == layer.diffID else {
                throw CommitError("\(name): its tar has sha256 \(sourceDiffID), not the diff_id \(layer.diffID) the config names")
            }
        }
        do {
            var prioritization: Prioritization?
            if let prioritized {
                spool = try spoolFile(layout: layout)
                prioritization = Prioritization(paths: prioritized, reopen: {
                    let file = try TarSourceFile(location: location, compression: compression)
                    let h = HashingTarSource(file.source)
                    second = (file, h)
                    return h
                }, spool: spool!)
            }
            let (diffID, annotations, result) = try encoding.encode(tar: TarSourceFile(file: input.file, source: hashing), into: blob.fd,
                                                                    prioritized: prioritization)
            try check(hashing)
            if let second { try check(second.hashing) }
            var descriptor = try blob.adopt(mediaType: encoding.mediaType)
            if !annotations.isEmpty { descriptor.annotations = annotations }
            return (descriptor, diffID, result)
        } catch {
            blob.discard()
            if let error = error as? CommitError { throw error }
            throw CommitError("\(name): converting to \(encoding) failed: \(error)")
        }
    }

    /// An unlinked temporary file beside the layout's blobs (where there is room for a layer).
    private static func spoolFile(layout: String) throws -> FileDescriptor {
        let path = AtomicFile.temporaryPath(in: "\(layout)/blobs/sha256", prefix: ".tmp.spool.")
        let fd = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
        unlink(path)
        return fd
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
