import StrataCommit
import StrataOCI
import StrataSeekable
import StrataSystem

enum ConvertCommand {
    static let help = """
    usage: strata convert --compression estargz|zstd:chunked|gzip|zstd|none [--platform OS/ARCH[/VARIANT]]
                          [--record-in FILE] [--json] IMAGE NEWTAG

    Rewrites the layers of IMAGE (DIR, DIR:TAG or DIR@sha256:HEX of an OCI image layout) in
    another format and tags the result NEWTAG in the same layout. The new layer blobs, config
    (only if a diff_id changed) and manifest are written first, index.json last, so IMAGE and
    every other tag stay as they were.

    estargz and zstd:chunked layers carry their own table of contents, so lazy pullers (strata
    mount of a docker:// image, stargz-snapshotter, containers/storage partial pulls) can start
    without reading the whole layer; tools that do not know them read an ordinary tar+gzip or
    tar+zstd layer (media types application/vnd.oci.image.layer.v1.tar+gzip and +zstd).
      estargz        a gzip member per file and per 4 MiB chunk, the TOC as the last tar entry
                     stargz.index.json, a 51-byte footer; annotations
                     containerd.io/snapshot/stargz/toc.digest and
                     io.containers.estargz.uncompressed-size. The TOC entry is part of the
                     layer's tar, so its diff_id changes.
      zstd:chunked   a zstd frame per file and per 4 MiB chunk, the TOC in a zstd skippable frame
                     and a 64-byte footer; annotations
                     io.github.containers.zstd-chunked.manifest-checksum and -manifest-position,
                     and the same under io.containers.zstd-chunked. (what containers/storage 1.43
                     reads). Tar headers are re-written (PAX), so the diff_id may change.
      gzip, zstd, none   plain compression of the same tar bytes (diff_ids unchanged).
    A layer already in the wanted format is reused as is. Each source layer's tar is checked
    against its diff_id while it is read. Sparse files become ordinary files (holes as zeros).
    Prints the new manifest's digest.

      --compression C    the layers' new format (required)
      --platform P       platform to pick from an image index (default: this host's)
      --record-in FILE   estargz and zstd:chunked only: the files a workload reads at start, in
                         order, put first in their layers so lazy pullers fetch them in one go
                         right after mounting (stargz's "optimized" images). FILE is what
                         `strata mount --record-reads` and `ctr-remote image optimize
                         --record-out` write (nerdctl's --estargz-record-in): one JSON object a
                         line, {"path":"usr/bin/python3","layerIndex":2} (layerIndex: the
                         manifest's layer holding the file, 0 = bottom; without it, the topmost
                         layer holding the path), or plain text, one path a line. Each layer
                         then holds, in record order, its recorded files, each after its parent
                         directory entries, then (estargz) the 1-byte .prefetch.landmark entry
                         (.no.prefetch.landmark first in a layer holding none of them; as
                         stargz), then its other entries in their original order. zstd:chunked
                         layers get the annotation org.strata.prefetch-end (where the recorded
                         files' frames end), which strata mounts prefetch. Only regular files
                         that are not hardlinks and whose path occurs once in the layer's tar
                         move (whiteouts never; a parent that is not first a directory keeps
                         the file in place), so the layer's tree is unchanged. Paths the image
                         does not hold are counted on stderr; a malformed line is an error.
                         Every layer is rewritten, even one already in the format.
      --json             print one JSON object: reference, tag, manifestDigest, configDigest,
                         rewritten, layers (digest, size, mediaType, diffID, annotations); with
                         --record-in also prioritizedFiles (files moved to the front)
    """

    static let spec = Arguments.Spec(valued: ["--compression", "--platform", "--record-in"], flags: ["--json"])
    static let prioritizedFormats: Set<String> = [SeekableLayerFormat.estargz.rawValue, SeekableLayerFormat.zstdChunked.rawValue]

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(args, spec: spec)
        guard a.positionals.count == 2 else { throw CLIError("convert needs IMAGE and NEWTAG (see strata convert --help)") }
        let (reference, tag) = (a.positionals[0], a.positionals[1])
        guard let name = a["--compression"] else {
            throw CLIError("convert needs --compression estargz, zstd:chunked, gzip, zstd or none", usage: true)
        }
        guard let encoding = LayerEncoding(name: name) else {
            throw CLIError("unknown compression \"\(name)\" (estargz, zstd:chunked, gzip, zstd or none)", usage: true)
        }
        var record: ReadRecord?
        if let file = a["--record-in"] {
            guard Self.prioritizedFormats.contains(name) else {
                throw CLIError("--record-in orders estargz and zstd:chunked layers only, not \(name)", usage: true)
            }
            let bytes: [UInt8]
            do { bytes = try FileIO.readAll(file) } catch { throw CLIError("\(file): cannot read the record: \(error)") }
            do { record = try ReadRecord.parse(bytes, file: file) } catch { throw CLIError("\(error)") }
        }
        let image = try ImageOpening.resolve(reference, platform: a["--platform"])
        guard image.transport == .layout else {
            throw CLIError("\(reference): convert writes into an OCI layout directory, not an archive; make one with `skopeo copy \(reference) oci:DIR:TAG`")
        }
        let result = try ImageConverter.convert(image, to: encoding, tag: tag, record: record)
        if record != nil, result.unknownRecordPaths > 0 {
            writeStandardError("strata: convert: \(result.unknownRecordPaths) recorded paths not in \(reference)\n")
        }
        if a.has("--json") {
            let layers = zip(result.layers, result.diffIDs).map { d, diffID in
                ConvertReport.Layer(digest: d.digest.description, size: d.size, mediaType: d.mediaType,
                                    diffID: diffID.description, annotations: d.annotations ?? [:])
            }
            try JSONOutput.print(ConvertReport(reference: reference, tag: tag,
                                               manifestDigest: result.manifest.digest.description,
                                               configDigest: result.config.digest.description,
                                               rewritten: result.rewritten, layers: layers,
                                               prioritizedFiles: record == nil ? nil : result.prioritizedFiles))
            return
        }
        print(result.manifest.digest)
    }
}

/// `convert --json`.
struct ConvertReport: Encodable {
    struct Layer: Encodable {
        var digest: String
        var size: Int64
        var mediaType: String
        var diffID: String
        var annotations: [String: String]
    }
    var reference: String
    var tag: String
    var manifestDigest: String
    var configDigest: String
    var rewritten: Int
    var layers: [Layer]
    /// With --record-in: files moved to the front of their layers.
    var prioritizedFiles: Int?
}
